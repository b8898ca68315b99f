from __future__ import annotations

import io
import os
import shutil
import signal
import sys
import tarfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART_DATA = ROOT / "docs" / "quickstart_data"
sys.path.insert(0, str(Path(__file__).parent))


# The seed-style wrapper of the README, from the quick-start script that README runs.
sys.path.insert(0, str(ROOT / "docs" / "examples"))
from quickstart import MyModelWrapper as ResNet18Wrapper  # noqa: E402


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """A tar file at ``path`` holding ``members`` (name, bytes): a hand-made shard."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def cli_train_command(out: Path, data: Path, *options: str) -> list[str]:
    """``lightly-train train`` as a subprocess, with the fast settings of these tests;
    ``options`` (``key=value``) are added, replacing a default of the same key."""
    defaults = [
        f"out={out}",
        f"data={data}",
        "model=torchvision/resnet18",
        "method=simclr",
        "epochs=1",
        "batch_size=64",
        "num_workers=0",
        "accelerator=cpu",
        "transform_args.image_size=[32,32]",
        "progress_bar=false",
    ]
    given = {option.split("=", 1)[0] for option in options}
    kept = [d for d in defaults if d.split("=", 1)[0] not in given]
    return [sys.executable, "-m", "lightly_train._cli", "train", *kept, *options]


@pytest.fixture
def wrapper() -> ResNet18Wrapper:
    torch.manual_seed(0)
    return ResNet18Wrapper(resnet18())


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A copy of the bundled 300 real CIFAR-10 images."""
    dst = tmp_path / "images"
    shutil.copytree(QUICKSTART_DATA, dst)
    return dst


@pytest.fixture(autouse=True)
def _sigint_handler_unchanged(request: pytest.FixtureRequest) -> Iterator[None]:
    """Warn, naming the test, when a test leaves another SIGINT handler in this process
    (a CI run once found SIG_IGN after the end-to-end tests; the trainer restores it)."""
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        warnings.warn(
            f"{request.node.nodeid} changed the SIGINT handler from {before!r} to {after!r}",
            stacklevel=1,
        )


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, read from /proc (Linux; elsewhere none)."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def kill_descendants() -> list[int]:
    """SIGKILL every process this test process started, and theirs (a ``lightly-train``
    subprocess, its DDP children and loader workers); return their ids."""
    killed, todo = [], _children(os.getpid())
    while todo:
        pid = todo.pop()
        todo += _children(pid)  # before the kill: an orphan would move to init
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except OSError:
            pass
    return killed


def pytest_configure(config: pytest.Config) -> None:
    """An interrupted ``nox`` (Ctrl-C: SIGINT to the whole group, then nox's SIGTERM and
    SIGKILL within a second) leaves no test subprocess behind: SIGTERM kills the
    subprocesses at once, then interrupts pytest like Ctrl-C."""

    def on_sigterm(signum: int, frame: object) -> None:
        kill_descendants()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After Ctrl-C (or any end), no subprocess of the tests outlives the session."""
    kill_descendants()
