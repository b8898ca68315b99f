"""Start-up hook for the multi-node tests: which process writes into the out folder.

Python imports ``sitecustomize`` at start-up from the first folder on its path that holds
one; the tests put this folder on ``PYTHONPATH``. With ``WRITE_AUDIT_OUT`` (a folder) and
``WRITE_AUDIT_LOG`` (a file prefix) set, a training process, one that its launcher gave a
rank (``RANK`` from torchrun, ``SLURM_PROCID`` from srun), appends a line to
``<WRITE_AUDIT_LOG>.<rank>`` for every file or folder under ``WRITE_AUDIT_OUT`` that it
opens for writing, creates, renames or deletes. The first line, ``armed``, shows that the
hook ran. The out folder check's probe folders (``.lightly-train-probe-*``, created and
removed by every process before training) are left out.
"""

from __future__ import annotations

import os
import sys

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# Audit events that change the file system, and which of their arguments are paths.
_PATH_ARGS = {
    "os.rename": (0, 1),  # also os.replace
    "os.remove": (0,),  # also os.unlink
    "os.mkdir": (0,),
    "os.rmdir": (0,),
    "os.truncate": (0,),
    "os.link": (0, 1),
    "os.symlink": (0, 1),
    "shutil.rmtree": (0,),
    "shutil.copyfile": (1,),
    "shutil.move": (1,),
}


def _install() -> None:
    watched = os.environ.get("WRITE_AUDIT_OUT")
    log = os.environ.get("WRITE_AUDIT_LOG")
    rank = os.environ.get("RANK", os.environ.get("SLURM_PROCID"))
    if not watched or not log or rank is None:
        return
    root = os.path.realpath(watched) + os.sep
    fd = os.open(f"{log}.{rank}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, f"armed pid {os.getpid()}\n".encode())

    def record(event: str, path: object) -> None:
        if isinstance(path, int):
            return  # a file descriptor
        name = os.path.realpath(os.fsdecode(path))  # type: ignore[arg-type]
        if name.startswith(root) and ".lightly-train-probe-" not in name:
            os.write(fd, f"{event} {name}\n".encode())  # os.write raises no audit event

    def hook(event: str, args: tuple[object, ...]) -> None:
        try:
            if event == "open":
                path, _mode, flags = args
                if isinstance(flags, int) and flags & _WRITE_FLAGS:
                    record(event, path)
            elif event in _PATH_ARGS:
                for i in _PATH_ARGS[event]:
                    record(event, args[i])
        except Exception:  # never break the process under test
            pass

    sys.addaudithook(hook)


_install()
