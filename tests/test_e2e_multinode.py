"""Multi-node runs as users launch them (torchrun, srun), simulated on this machine: two
"nodes" of one CPU process each, started concurrently over localhost and writing into one
out folder, as on a cluster's shared filesystem."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from conftest import QUICKSTART_DATA, cli_train_command
from torchvision.models import resnet18

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc to kill processes")

BIN = Path(sys.executable).parent  # torchrun and lightly-train of this environment
AUDIT = Path(__file__).parent / "_write_audit"  # a sitecustomize that logs file writes
# Variables of a launcher around this test run (a CI job under SLURM, a torchrun): each
# simulated node gets only those its own launcher sets.
_LAUNCH_VARS = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")
_LAUNCH_VARS += ("MASTER_ADDR", "MASTER_PORT")
_LAUNCH_PREFIXES = ("SLURM_", "TORCHELASTIC_", "PMI_", "OMPI_")


def _node_env(audit: Path, out: Path, **variables: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _LAUNCH_VARS and not k.startswith(_LAUNCH_PREFIXES)
    }
    env["OMP_NUM_THREADS"] = "1"  # two "nodes" share this machine's cores
    env["PYTHONPATH"] = os.pathsep.join([str(AUDIT), *filter(None, [env.get("PYTHONPATH")])])
    env["WRITE_AUDIT_OUT"] = str(out)
    env["WRITE_AUDIT_LOG"] = str(audit)
    env.update(variables)
    return env


def _free_port(low: int = 20000, high: int = 30000) -> int:
    for _ in range(100):
        port = random.randrange(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


class _Nodes:
    """The processes of one launch, one per simulated node, each in its own session with
    its output in a file. torchrun starts its workers in sessions of their own, so a
    node is killed with every descendant, as a preempted machine would be."""

    def __init__(self, logs: list[Path]) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, command: list[str], env: dict[str, str]) -> None:
        with open(self.logs[len(self.procs)], "wb") as log:
            self.procs.append(
                subprocess.Popen(
                    command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )

    def output(self, node: int) -> str:
        return self.logs[node].read_text(errors="replace")

    def running(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def wait(self, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        try:
            return [p.wait(timeout=max(0.1, deadline - time.monotonic())) for p in self.procs]
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                "\n".join(f"node {i}:\n{self.output(i)[-3000:]}" for i in range(len(self.logs)))
            ) from None

    def kill(self) -> None:
        pids = [q for p in self.procs if p.poll() is None for q in (p.pid, *_descendants(p.pid))]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.procs:
            p.wait()


@contextmanager
def _launch(tmp_path: Path, name: str) -> Iterator[_Nodes]:
    nodes = _Nodes([tmp_path / f"{name}.node{i}.log" for i in range(2)])
    try:
        yield nodes
    finally:
        nodes.kill()  # whatever still runs, also when the test failed


def _losses(out: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert len(steps) == len(set(steps))  # each step once, whoever wrote it
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def _check_only_rank_zero_wrote(audit: Path, out: Path) -> None:
    """Rank 0 wrote the run's files (the hook saw it), rank 1 touched nothing in ``out``."""
    ours = Path(f"{audit}.0").read_text().splitlines()
    theirs = Path(f"{audit}.1").read_text().splitlines()
    assert ours[0].startswith("armed") and theirs[0].startswith("armed")
    assert theirs[1:] == []
    written = "\n".join(ours)
    for name in ("metrics.jsonl", "train.log", "run.json", "last.ckpt", "exported_last.pt"):
        assert os.path.realpath(out) in written and name in written, name


def _check_quiet(output: str) -> None:
    """The second node prints none of lightly-train's messages (node 0 prints them)."""
    assert "[lightly-train]" not in output, output
    assert "Traceback" not in output, output


def test_two_nodes_srun_and_torchrun_resume_after_sigkill(tmp_path: Path) -> None:
    """Two nodes launched as srun does (SLURM's variables, Fabric's SLURM detection) train
    the reference run; two nodes launched by torchrun are SIGKILLed mid-epoch, relaunched
    with resume_interrupted=true and end with the reference's losses and weights."""
    data = tmp_path / "data"
    data.mkdir()
    for i, src in enumerate(sorted(QUICKSTART_DATA.rglob("*.jpg"))[:64]):
        shutil.copy(src, data / f"img_{i:02d}.jpg")
    # 64 images, global batch 16 over 2 processes of 8: 4 steps an epoch, 12 in all.
    options = (
        "num_nodes=2",
        "epochs=3",
        "batch_size=16",
        "log_every_n_steps=1",
        "checkpoint_every_n_steps=2",
        "devices=1",
    )

    def train(out: Path) -> list[str]:  # lightly-train train out=... (the console script)
        return [str(BIN / "lightly-train"), *cli_train_command(out, data, *options)[3:]]

    # srun: one task per node, each with the variables SLURM gives it; Fabric takes the
    # main address from the node list and the port from the job id.
    reference = tmp_path / "reference"
    port = _free_port(15000, 25000)
    slurm = {
        "SLURM_JOB_ID": f"7{port - 15000:04d}",
        "SLURM_JOB_NAME": "lightly-train",
        "SLURM_NODELIST": "127.0.0.1",
        "SLURM_NNODES": "2",
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_LOCALID": "0",
    }
    with _launch(tmp_path, "srun") as nodes:
        for rank in range(2):
            ids = {"SLURM_PROCID": str(rank), "SLURM_NODEID": str(rank)}
            env = _node_env(tmp_path / "srun_writes", reference, **slurm, **ids)
            nodes.start(train(reference), env)
        assert nodes.wait(timeout=300) == [0, 0], nodes.output(0)[-3000:] + nodes.output(1)[-3000:]
        assert "GLOBAL_RANK: 1, MEMBER: 2/2" in nodes.output(1)  # the rank of SLURM_PROCID
        _check_quiet(nodes.output(1))
        assert "[lightly-train] Done in" in nodes.output(0)
    _check_only_rank_zero_wrote(tmp_path / "srun_writes", reference)
    assert sorted(_losses(reference)) == list(range(1, 13))
    config = json.loads((reference / "config.json").read_text())
    assert (config["num_nodes"], config["resolved"]["num_images"]) == (2, 64)
    log = (reference / "train.log").read_text()
    assert "(12 steps of 16 images), cpu x2," in log  # world size 2
    assert log.count("Done in") == 1
    assert sorted(p.name for p in reference.iterdir()) == [
        "checkpoints",
        "config.json",
        "exported_models",
        "metrics.jsonl",
        "monitor",
        "report.html",
        "run.json",
        "tensorboard",
        "train.log",
    ]
    ref = torch.load(reference / "exported_models" / "exported_last.pt", weights_only=True)
    resnet18().load_state_dict(ref)

    # torchrun with a c10d rendezvous, killed (both nodes, workers included) after step 7:
    # the last checkpoint is that of step 6 (in the middle of the second epoch) or later.
    out = tmp_path / "out"
    torchrun = [str(BIN / "torchrun"), "--nnodes", "2", "--nproc_per_node", "1"]
    user_command = ["--no-python", *train(out)]
    with _launch(tmp_path, "killed") as nodes:
        endpoint = f"127.0.0.1:{_free_port()}"
        rdzv = ["--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "job1"]
        for _ in range(2):
            nodes.start(
                [*torchrun, *rdzv, *user_command], _node_env(tmp_path / "killed_writes", out)
            )
        deadline = time.monotonic() + 300
        metrics = out / "metrics.jsonl"
        while not (metrics.is_file() and metrics.read_text().count('"loss"') >= 7):
            assert nodes.running() and time.monotonic() < deadline, nodes.output(0)[-3000:]
            time.sleep(0.02)
        nodes.kill()
    assert len(_losses(out)) < 12

    # torchrun with a fixed node rank and main address, resumed.
    port = _free_port()
    with _launch(tmp_path, "resumed") as nodes:
        for rank in range(2):
            static = ["--node_rank", str(rank), "--master_addr", "127.0.0.1"]
            command = [*torchrun, *static, "--master_port", str(port), *user_command]
            env = _node_env(tmp_path / "torchrun_writes", out)
            nodes.start([*command, "resume_interrupted=true"], env)
        assert nodes.wait(timeout=300) == [0, 0], nodes.output(0)[-3000:] + nodes.output(1)[-3000:]
        _check_quiet(nodes.output(1))
        assert "[lightly-train] Resuming the interrupted run" in nodes.output(0)
    _check_only_rank_zero_wrote(tmp_path / "torchrun_writes", out)
    assert _losses(out) == _losses(reference)
    ours = torch.load(out / "exported_models" / "exported_last.pt", weights_only=True)
    assert all(torch.equal(ours[k], ref[k]) for k in ref)
