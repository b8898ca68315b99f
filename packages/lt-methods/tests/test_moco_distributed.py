"""MoCo v2 and v3 under torch.distributed (two CPU processes, gloo): keys are gathered."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from lt_core import EmbeddingModel
from lt_methods import MoCoV2, MoCoV3

WORLD, B, D = 2, 4, 8


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(WORLD * B, D, generator=gen), torch.randn(WORLD * B, D, generator=gen)


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    from conftest import TinyWrapper

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        q, k = _data()
        mine = slice(rank * B, (rank + 1) * B)
        v3 = MoCoV3(EmbeddingModel(TinyWrapper()), {"hidden_dim": 8, "output_dim": D})
        v3_loss = v3.contrastive_loss(q[mine], k[mine])
        v2 = MoCoV2(
            EmbeddingModel(TinyWrapper()), {"hidden_dim": 8, "output_dim": D, "queue_length": 32}
        )
        v2.criterion(q[mine].clone().requires_grad_(), k[mine])
        torch.save(
            {"v3_loss": v3_loss.detach(), "bank": v2.queue.clone()}, Path(out_dir) / f"{rank}.pt"
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_keys_are_gathered_over_processes(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"{r}.pt") for r in range(WORLD)]
    q, k = _data()
    # MoCo v3: each process's queries against the keys of all processes; the mean over
    # processes equals the loss of the whole batch on one process.
    from conftest import TinyWrapper

    one = MoCoV3(EmbeddingModel(TinyWrapper()), {"hidden_dim": 8, "output_dim": D})
    single = one.contrastive_loss(q, k)
    mean = sum(float(r["v3_loss"]) for r in results) / WORLD
    assert mean == pytest.approx(float(single), rel=1e-5)
    # MoCo v2: both processes enqueue the gathered keys, in rank order. (The rest of the
    # queue is each process's random start; DDP broadcasts rank 0's buffers in training.)
    expected = nn.functional.normalize(k, dim=1)
    for r in results:
        assert torch.allclose(r["bank"][: WORLD * B], expected, atol=1e-6)
