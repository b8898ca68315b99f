"""Faults of issue 23: a full disk, two runs in one out folder, non-finite weights behind a
finite loss, a second Ctrl-C during a checkpoint write, resume before the first
checkpoint. Tiny in-process runs (32 images of 16 px, 4 steps an epoch)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from _tiny import Tiny, tiny_config, write_images
from torch import Tensor

import lt_train._atomic as atomic
import lt_train._checkpointer as checkpointer
from lt_core import ConfigError, LossNotFiniteError
from lt_train import train
from lt_train._atomic import DiskFullError, atomic_torch_save, atomic_write
from lt_train._run_dir import LOCK_NAME, OutFolderLock, _process_start


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("images"), 32)


def _snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _run_json(out: Path) -> dict[str, Any]:
    return json.loads((out / "run.json").read_text())


def _no_temp_files(out: Path) -> bool:
    return not [p for p in out.rglob("*") if atomic.TEMP_MARKER in p.name]


# -- 1. a full disk ------------------------------------------------------------------


def _torch_disk_full(obj: object, f: Any) -> None:
    f.write(b"PK" * 1000)
    raise RuntimeError("[enforce fail at inline_container.cc:671] . unexpected pos 1024 vs 960")


def test_full_disk_is_one_line_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"a": torch.ones(2)}, path)
    # torch's zip writer reports a full disk as a RuntimeError: mapped when the disk is full
    monkeypatch.setattr(atomic.torch, "save", _torch_disk_full)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        atomic.shutil, "disk_usage", lambda p: usage._replace(free=58_000_000 // 20)
    )
    with pytest.raises(DiskFullError) as info:
        atomic_torch_save({"w": torch.zeros(25_500_000)}, path)
    message = str(info.value)
    assert message.startswith("No space left on /")
    assert f"while writing {path}: 102 MB needed, 2.90 MB free" in message
    assert info.value.errno == errno.ENOSPC and "\n" not in message
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    # ... but not when there is room: a real error stays what it is.
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda p: usage._replace(free=10**12))
    with pytest.raises(RuntimeError, match="unexpected pos"):
        atomic_torch_save({"w": torch.zeros(2)}, path)
    # An ENOSPC from a plain writer (embed's CSV, Parquet) is the same one line.

    def enospc(f: Any) -> None:
        f.write(b"x" * 10)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match=r"No space left on .* while writing .*embeddings\.csv"):
        atomic_write(tmp_path / "embeddings.csv", enospc)
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_full_disk_on_a_real_tmpfs(tmp_path: Path) -> None:
    folder = tmp_path / "small"
    folder.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        atomic_torch_save({"a": torch.ones(2)}, folder / "last.ckpt")
        with pytest.raises(DiskFullError, match=r"No space left on .*\(tmpfs\) while writing"):
            atomic_torch_save({"w": torch.zeros(600_000)}, folder / "last.ckpt")
        assert [p.name for p in folder.iterdir()] == ["last.ckpt"]
        assert torch.equal(torch.load(folder / "last.ckpt", weights_only=True)["a"], torch.ones(2))
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_run_on_a_full_disk_fails_with_one_line_and_keeps_its_checkpoint(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    real = checkpointer.atomic_torch_save
    writes: list[int] = []

    def fills_up(state: dict[str, Any], path: Path, needed: int | None = None) -> None:
        writes.append(state["step"])
        if len(writes) == 2:
            atomic_write(path, lambda f: _torch_disk_full(None, f))
        real(state, path, needed)

    monkeypatch.setattr(checkpointer, "atomic_torch_save", fills_up)
    real_usage = shutil.disk_usage
    monkeypatch.setattr(
        atomic.shutil,
        "disk_usage",
        lambda p: real_usage(p)._replace(free=1000) if len(writes) >= 2 else real_usage(p),
    )
    with pytest.raises(DiskFullError) as info:
        train(tiny_config(out, data, epochs=2, checkpoint_every_n_steps=2))
    message = str(info.value)
    assert "while writing" in message and "last.ckpt" in message and "0.00 MB free" in message
    assert message.endswith(
        f"the last complete checkpoint, {out}/checkpoints/last.ckpt (step 2), is kept"
    )
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["step"] == 2
    state = _run_json(out)
    assert state["status"] == "failed" and state["error"] == message
    assert f"Training stopped at step 4: {message}" in (out / "train.log").read_text()
    assert "Traceback" not in (out / "train.log").read_text()
    assert _no_temp_files(out) and not (out / LOCK_NAME).exists()


def test_low_space_warns_before_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from lt_train._checkpointer import Checkpointer
    from lt_train._run_args import ModelCheckpointArgs

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda p: usage._replace(free=1_000_000))
    ckpt = Checkpointer(ModelCheckpointArgs(), tmp_path, epochs=1)
    state = {"step": 1, "epoch": 0, "w": torch.zeros(500_000)}
    ckpt.write(state)
    ckpt.write(state)
    warnings = [r.getMessage() for r in caplog.records if "Low disk space" in r.getMessage()]
    assert len(warnings) == 1  # once, until there is room again
    assert "the checkpoint of step 1 needs about 2.00 MB" in warnings[0]


# -- 2 + 6. one run per out folder ---------------------------------------------------


def _lock_of(out: Path, pid: int, host: str | None = None, start: str | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "pid": pid,
        "host": host or socket.gethostname(),
        "process_start": start if start is not None else _process_start(pid),
        "started": "2024-05-01 10:00:00",
        "command": "lightly-train train out=out",
    }
    (out / LOCK_NAME).write_text(json.dumps(record))


def test_a_second_run_into_a_locked_folder_fails_before_anything_is_written(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    train(tiny_config(out, data))
    assert not (out / LOCK_NAME).exists()  # released after success
    log = (out / "train.log").read_text()
    assert "Epoch 1/1 done, step 4, mean loss " in log
    assert "Python 3." in log and "torch " in log and "lightning-fabric " in log
    assert "Options: {" in log and "Devices: 1 process(es)" in log
    # The logged options are config.json's, resolved values included (the memory format).
    logged = json.loads(log.split("Options: ", 1)[1].splitlines()[0])
    assert logged == json.loads((out / "config.json").read_text())
    assert 'model.load_state_dict(torch.load("' in log
    _lock_of(out, os.getppid())  # a live process of this host holds it
    before = _snapshot(out)
    for options in ({"overwrite": True}, {"resume_interrupted": True}):
        started = time.perf_counter()
        with pytest.raises(ConfigError) as info:
            train(tiny_config(out, data, **options))
        assert time.perf_counter() - started < 5
        message = str(info.value)
        assert f"is in use by another run (pid {os.getppid()} on host " in message
        assert "started 2024-05-01 10:00:00, command: lightly-train train out=out" in message
        assert "nothing was written" in message
        assert _snapshot(out) == before


def test_lock_of_another_host_is_refused_with_how_to_remove_it(tmp_path: Path) -> None:
    _lock_of(tmp_path, 12345, host="other-node-7", start="1")
    lock = OutFolderLock(tmp_path)
    with pytest.raises(ConfigError, match=r"pid 12345 on host other-node-7") as info:
        lock.acquire()
    assert f"delete {tmp_path / LOCK_NAME} and start again" in str(info.value)


def test_stale_lock_of_a_dead_pid_or_a_reused_pid_is_taken_over(
    data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock = OutFolderLock(tmp_path)
    _lock_of(tmp_path, gone.pid, start="1")
    lock.check()
    lock.acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert "Took over the lock" in caplog.text and f"pid {gone.pid}" in caplog.text
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()
    # Killed but not yet waited for (a zombie): gone too.
    zombie = subprocess.Popen(["true"])
    stat = Path(f"/proc/{zombie.pid}/stat")
    for _ in range(200):  # until it has exited (and is not waited for)
        if not stat.exists() or stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z":
            break
        time.sleep(0.05)
    _lock_of(tmp_path, zombie.pid)
    lock.acquire()
    lock.release()
    zombie.wait()
    # The pid lives, but it is another process than the one that wrote the lock.
    _lock_of(tmp_path, os.getppid(), start="1")
    lock.acquire()
    lock.release()
    # A whole run over a stale lock that SIGKILL left behind.
    out = tmp_path / "out"
    _lock_of(out, gone.pid, start="1")
    train(tiny_config(out, data))
    assert not (out / LOCK_NAME).exists()


def test_only_the_first_process_takes_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lt_train import _trainer

    _lock_of(tmp_path, os.getppid())
    monkeypatch.setattr(_trainer, "first_process", lambda: False)
    trainer = _trainer.Trainer.__new__(_trainer.Trainer)
    trainer.lock = OutFolderLock(tmp_path)
    trainer.release()  # holds nothing: leaves the lock of process 0 alone
    assert (tmp_path / LOCK_NAME).exists()


# -- 7. non-finite weights behind a finite loss --------------------------------------


class AtCall(Tiny):
    """Calls ``action(self)`` in training forward number ``at``."""

    def __init__(self, at: int, action: Callable[[Tiny], object]) -> None:
        super().__init__()
        self.at, self.calls, self.action = at, 0, action

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                self.action(self)
        return super().forward_features(x)


def InfBuffer(at: int) -> AtCall:
    """Batch norm's running variance becomes infinite in training forward ``at`` (the loss
    stays finite: training uses the batch statistics)."""
    return AtCall(at, lambda model: model.net[1].running_var.fill_(float("inf")))


def test_non_finite_buffers_are_never_checkpointed_or_exported(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = tiny_config(
        out, data, model=InfBuffer(at=5), epochs=2, checkpoint_every_n_steps=2, log_every_n_steps=1
    )
    with pytest.raises(LossNotFiniteError) as info:
        train(config)
    message = str(info.value)
    assert "weights or buffers became NaN or infinite by step 6 of 8" in message
    assert "checkpoint was not written" in message and "(step 4)" in message
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["method"].values() if v.is_floating_point())
    export = torch.load(out / "exported_models" / "exported_last.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in export.values() if v.is_floating_point())
    assert _run_json(out)["status"] == "failed"
    assert not (out / LOCK_NAME).exists()  # released after an error


# -- 8. a second Ctrl-C while a checkpoint is written --------------------------------


def CtrlC(at: int) -> AtCall:
    """Ctrl-C (a real SIGINT to this process) in training forward ``at``."""
    return AtCall(at, lambda model: os.kill(os.getpid(), signal.SIGINT))


def test_second_ctrl_c_during_the_checkpoint_write_waits_for_it(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    real = atomic.torch.save

    def slow_save(obj: Any, f: Any) -> None:
        if isinstance(obj, dict) and "method" in obj:  # a checkpoint (not a monitor file)
            os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, in the middle of the write
        time.sleep(0.05)
        real(obj, f)

    monkeypatch.setattr(atomic.torch, "save", slow_save)
    # Ctrl-C as in a terminal (a shell's background job starts with SIGINT ignored).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            train(tiny_config(out, data, model=CtrlC(at=3), epochs=2))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    state = _run_json(out)
    assert state["status"] == "interrupted" and state["step"] == 3
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["step"] == 3
    assert "Stopped at once by a second Ctrl-C at step 3" in (out / "train.log").read_text()
    assert _no_temp_files(out) and not (out / LOCK_NAME).exists()


def test_a_keyboard_interrupt_masked_by_the_zip_writer_comes_through(tmp_path: Path) -> None:
    def interrupted(f: Any) -> None:
        try:
            raise KeyboardInterrupt
        finally:
            raise RuntimeError("PytorchStreamWriter failed writing central directory")

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "last.ckpt", interrupted)
    assert not list(tmp_path.iterdir())


def test_first_ctrl_c_stops_after_a_checkpoint_and_releases_the_lock(
    data: Path, tmp_path: Path
) -> None:
    from lt_core import TrainingInterrupted

    out = tmp_path / "out"
    with pytest.raises(TrainingInterrupted):
        train(tiny_config(out, data, model=CtrlC(at=2)))
    assert _run_json(out)["status"] == "interrupted"
    assert not (out / LOCK_NAME).exists()


# -- 9. killed before the first checkpoint -------------------------------------------


def test_resume_without_a_checkpoint_starts_from_step_0_and_sweeps_temp_files(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / ".last.ckpt.tmp-4242-abcd").write_bytes(b"")  # killed while writing
    (out / "run.json").write_text(json.dumps({"status": "running", "step": 0, "max_steps": 4}))
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 9.0}\n')
    (out / "config.json").write_text("{}")
    train(tiny_config(out, data, resume_interrupted=True, log_every_n_steps=1))
    assert _run_json(out)["status"] == "finished"
    assert _no_temp_files(out)
    log = (out / "train.log").read_text()
    assert "there is no checkpoint" in log and "Starting from step 0." in log
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r.get("step") for r in lines if "monitor/rankme" not in r]  # (monitors: step 0)
    assert steps[:4] == [1, 2, 3, 4] and '"loss": 9.0' not in (out / "metrics.jsonl").read_text()
    # A requeue script that always passes it also starts a new folder.
    train(tiny_config(tmp_path / "new", data, resume_interrupted=True))
    assert _run_json(tmp_path / "new")["status"] == "finished"
