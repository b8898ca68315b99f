"""num_workers="auto" under srun: a task bound to its own CPUs does not share them."""

from __future__ import annotations

import os

import pytest

from lt_data import auto_num_workers


@pytest.mark.parametrize(
    ("affinity", "cpus_on_node", "workers"),
    [
        (12, None, 1),  # no SLURM: 12 cores shared by 8 processes, 1 worker each
        (12, "96", 11),  # srun, --cpus-per-task=12, tasks bound: the 12 are this task's
        (96, "96", 11),  # srun without CPU binding: the node's 96 shared by 8 tasks
    ],
)
def test_auto_workers_of_an_srun_task(
    monkeypatch: pytest.MonkeyPatch, affinity: int, cpus_on_node: str | None, workers: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(affinity)), raising=False)
    if cpus_on_node is None:
        monkeypatch.delenv("SLURM_CPUS_ON_NODE", raising=False)
    else:
        monkeypatch.setenv("SLURM_CPUS_ON_NODE", cpus_on_node)
    assert auto_num_workers(None, processes=8) == workers
