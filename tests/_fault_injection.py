"""Run the lightly-train CLI with a fault: this process SIGKILLs itself halfway through
writing the N-th checkpoint or the N-th export (at each epoch end but the last, and at the end),
as a power cut or an OOM killer would.

Usage: python _fault_injection.py {checkpoint|export} N train key=value ...
"""

from __future__ import annotations

import io
import os
import signal
import sys
from typing import IO, Any

import torch

from lt_train import _atomic, _checkpointer, _trainer


def main() -> int:
    target, n, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    module: Any = _checkpointer if target == "checkpoint" else _trainer
    original = module.atomic_torch_save
    calls = 0

    def dying_save(obj: Any, path: Any, needed: int | None = None) -> None:
        nonlocal calls
        calls += 1
        if calls < n:
            return original(obj, path, needed)

        def write_half_and_die(f: IO[bytes]) -> None:
            buffer = io.BytesIO()
            torch.save(obj, buffer)
            f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        _atomic.atomic_write(path, write_half_and_die)

    module.atomic_torch_save = dying_save
    from lightly_train._cli import main as cli

    return cli(args)


if __name__ == "__main__":
    sys.exit(main())
