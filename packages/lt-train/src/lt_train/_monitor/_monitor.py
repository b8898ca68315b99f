"""The run's health monitors: a fixed sample of the user's own images, embedded every
``monitor_every_n_steps`` in eval mode without augmentation, measured by RankMe,
alpha-ReQ and the embedding spread (see :mod:`._spectrum`), with a collapse rule; and the
online kNN probe on ``val_data`` (see :mod:`._knn`).

All processes take part in every check: each embeds its share of the images and the
embeddings are gathered (:mod:`._images`); process 0 computes the measures, logs them and
writes the files under ``<out>/monitor/``, then tells the others whether the collapse rule
fired. Nothing here draws from the random state of the run, and the model's train/eval
modes are restored after a check, so a fixed-seed run trains the same weights with
monitors on or off.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lt_train._atomic import atomic_torch_save
from lt_train._monitor._args import MonitorArgs, ValArgs
from lt_train._monitor._images import (
    ImageSet,
    embed,
    eval_mode,
    first_shard_samples,
    gather_rows,
    preserved_rng,
    share,
)
from lt_train._monitor._knn import knn_accuracy
from lt_train._monitor._spectrum import alpha_req, embedding_std, rankme
from lt_train._monitor._val_data import ValListing

logger = logging.getLogger(__name__)

__all__ = ["Monitor", "auto_sample_size"]

THUMBNAIL = 64  # side of the sample's thumbnails in sample.pt
VIEW_IMAGES = 6  # images of the first batch whose views go to views.pt


def auto_sample_size(embed_dim: int, num_images: int | None) -> int:
    """``sample_size="auto"``: the embedding dimension (RankMe can reach it), within 256
    to 2048, at most the dataset."""
    size = max(256, min(embed_dim, 2048))
    return size if num_images is None else max(2, min(size, num_images))


class Monitor:
    """The monitors and the kNN probe of one run (every process has one).

    Args:
        args: ``monitor_args``.
        every: ``monitor_every_n_steps``: an int, or ``"auto"`` (as often as
            ``args.budget`` of the wall time allows, at logging steps).
        val: The labeled images of ``val_data``, or ``None`` (no kNN probe).
        val_args: ``val_args``.
        val_every: ``val_every_n_epochs``.
        fabric: The run's Fabric.
        folder: ``<out>/monitor``.
        plan: The run's plan (data, view recipe, memory format, batch, workers).
    """

    def __init__(
        self,
        *,
        args: MonitorArgs,
        every: int | Literal["auto"],
        val: ValListing | None,
        val_args: ValArgs,
        val_every: int,
        fabric: Any,
        folder: Path,
        plan: Any,
    ) -> None:
        self.t0 = time.perf_counter()
        self.args, self.every, self.val, self.val_args = args, every, val, val_args
        self.val_every = val_every
        self.fabric, self.folder, self.plan = fabric, folder, plan
        view = plan.recipe[0]  # the first (global) view: its size and normalization
        self.size: tuple[int, int] = (int(view.size[0]), int(view.size[1]))
        self.mean, self.std = view.mean, view.std
        micro = plan.config.batch_size // plan.world_size
        self.batch = args.batch_size or micro
        self.val_batch = val_args.batch_size or micro
        self.log_every = plan.config.log_every_n_steps
        self.spent = 0.0  # seconds of monitor and probe work in this process's session
        self.last_cost = 0.0
        # Saved in checkpoints (state_dict):
        self.first_std: float | None = None
        self.count = 0  # collapsed checks in a row
        self.collapsed_at: int | None = None
        self.last_step: int | None = None  # the step of the last check
        self.last_knn_step: int | None = None

    @property
    def enabled(self) -> bool:
        return self.args.enabled

    # -- the images, read once ---------------------------------------------------------

    def prepare(self, embed_dim: int) -> None:
        """Read this process's share of the monitor sample and of the kNN images."""
        start = time.perf_counter()
        fabric, plan = self.fabric, self.plan
        rank, world = fabric.global_rank, fabric.world_size
        workers = min(plan.num_workers, 2)
        if self.enabled:
            n = (
                auto_sample_size(embed_dim, plan.data.num_images)
                if self.args.sample_size == "auto"
                else self.args.sample_size
            )
            items = plan.data.items
            if plan.data.describe() == "files":
                total = len(items)
                n = min(n, total)
                self.names = [items[i * total // n] for i in range(n)]
                self.sample: Any = ImageSet(
                    [self.names[i] for i in share(n, rank, world)], self.size, workers
                )
                self.offset = share(n, rank, world).start
            else:
                self.names, images, skipped = first_shard_samples(items, n, self.size)
                if skipped:
                    logger.warning("Monitor sample: left out %d unreadable sample(s).", skipped)
                part = share(len(self.names), rank, world)
                self.sample = _Preloaded(images[part.start : part.stop])
                self.offset = part.start
            count = len(self.names) - len(self.sample.skipped)
            bound = (
                f"RankMe is bounded by it: fewer than the {embed_dim} embedding dimensions"
                if count < embed_dim
                else f"at least the {embed_dim} embedding dimensions"
            )
            when = (
                f"every {self.every} steps"
                if self.every != "auto"
                else f"at logging steps within {self.args.budget:.1%} of the wall time"
            )
            logger.info(
                "Monitors: a fixed sample of %d images (%s), checked %s.", count, bound, when
            )
        if self.val is not None:
            bank, query = self.val.split(
                self.val_args.bank_size, self.val_args.query_size, self.val_args.seed
            )
            self.val_sets = []
            for indices in (bank, query):
                mine = [indices[i] for i in share(len(indices), rank, world)]
                labels = torch.tensor([self.val.labels[i] for i in mine], dtype=torch.int64)
                image_set = ImageSet(
                    [self.val.paths[i] for i in mine], self.size, workers, what="kNN probe"
                )
                self.val_sets.append((image_set, labels))
            logger.info(
                "kNN probe: %d bank and %d query images of %d classes (k=%d, temperature=%g), "
                "every %d epoch(s).",
                len(bank), len(query), len(self.val.classes), self.val_args.k,
                self.val_args.temperature, self.val_every,
            )  # fmt: skip
        self._name_skipped()
        self.spent += time.perf_counter() - start

    def _name_skipped(self) -> None:
        """Process 0 names the images the other processes could not read (each process
        named its own; only process 0 writes train.log). Sets too large to keep in memory
        are read at the first check, and name theirs on their own process only."""
        if self.fabric.world_size == 1:
            return
        sets = [s for s, _ in getattr(self, "val_sets", [])]
        sets += [self.sample] if self.enabled else []
        mine = [(s.what, path, error) for s in sets for path, error in s.skipped]
        gathered: list[Any] = [None] * self.fabric.world_size
        torch.distributed.all_gather_object(gathered, mine)
        if self.fabric.is_global_zero:
            for rank, items in enumerate(gathered[1:], start=1):
                for what, path, error in items:
                    logger.warning(
                        "%s: left out the unreadable image %s: %s (process %d)",
                        what, path, error, rank,
                    )  # fmt: skip

    # -- when ----------------------------------------------------------------------------

    def due(self, step: int) -> bool:
        """This process's opinion whether a check is due after ``step`` (with
        ``"auto"``, only process 0 has one: the trainer takes the maximum over
        processes, so all check at the same steps)."""
        if not self.enabled or step == self.last_step:
            return False
        if self.every != "auto":
            return step % self.every == 0
        if not self.fabric.is_global_zero or step % self.log_every != 0:
            return False
        elapsed = time.perf_counter() - self.t0
        return self.spent + self.last_cost <= self.args.budget * elapsed

    def knn_due(self, epochs_done: int) -> bool:
        return self.val is not None and epochs_done % self.val_every == 0

    # -- checks --------------------------------------------------------------------------

    def check(self, model: nn.Module, step: int, loggers: Any) -> str | None:
        """Embed the sample with ``model`` (the embedding model that is exported), log
        the measures (process 0) and return the reason when the collapse rule fires for
        the first time, on every process; else ``None``."""
        start = time.perf_counter()
        fabric = self.fabric
        z, _ = self._embed(model, self.sample.batches(self.batch))
        reason: str | None = None
        if fabric.is_global_zero:
            reason = self._measure(z, step, loggers)
        if fabric.world_size > 1:
            reason = fabric.broadcast(reason, src=0)
        self.last_step = step
        if reason is not None:
            self.collapsed_at = step
        self.last_cost = time.perf_counter() - start
        self.spent += self.last_cost
        return reason

    def _embed(self, model: nn.Module, batches: Any) -> tuple[Tensor, Tensor]:
        """The embeddings of all processes' images, in order, and this process's local
        indices of the images it read."""
        fabric = self.fabric
        with preserved_rng(fabric.device), eval_mode(model):
            z, kept = embed(
                model, batches, fabric.device, self.mean, self.std, self.plan.memory_format,
                fabric.autocast,
            )  # fmt: skip
        return gather_rows(fabric, z), kept

    def _measure(self, z: Tensor, step: int, loggers: Any) -> str | None:
        rule = self.args.collapse
        std = embedding_std(z)
        if self.first_std is None:
            self.first_std = std
        ratio = std / max(self.first_std, 1e-12)
        rank = rankme(z)
        metrics = {
            "monitor/rankme": rank,
            "monitor/alpha_req": alpha_req(z),
            "monitor/embedding_std": std,
            "monitor/std_ratio": ratio,
        }
        low = [f"RankMe {rank:.2f} < {rule.min_rank:g}"] if rank < rule.min_rank else []
        if ratio < rule.std_fraction:
            low.append(
                f"embedding std {std:.4f} is {ratio:.1%} of its first value {self.first_std:.4f} "
                f"(< {rule.std_fraction:.0%})"
            )
        self.count = self.count + 1 if low else 0
        collapsed = self.count >= rule.patience
        metrics["monitor/collapsed"] = int(collapsed)
        if loggers is not None:
            loggers.log(metrics, step)
        self._save_embeddings(z, step)
        if not collapsed or self.collapsed_at is not None:
            return None
        reason = (
            f"the embeddings collapsed: {' and '.join(low)} for {self.count} check(s) in a row "
            f"(monitor_args.collapse.patience={rule.patience})"
        )
        logger.warning("Step %d: %s.", step, reason)
        if loggers is not None and loggers.jsonl is not None:
            loggers.jsonl.write({"event": "collapse", "step": step, "reason": reason + "."})
        return reason

    def _save_embeddings(self, z: Tensor, step: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"step": step, "embeddings": z.half()}
        if step == 0 and not (self.folder / "embeddings_start.pt").exists():
            atomic_torch_save(record, self.folder / "embeddings_start.pt")
        atomic_torch_save(record, self.folder / "embeddings_last.pt")

    def knn(self, model: nn.Module, step: int, loggers: Any) -> None:
        """kNN top-1/top-5 of ``model`` on the bank and queries of ``val_data`` (all
        processes take part; process 0 logs)."""
        start = time.perf_counter()
        assert self.val is not None
        results = []
        for image_set, labels in self.val_sets:
            z, kept = self._embed(model, image_set.batches(self.val_batch))
            results.append((z, gather_rows(self.fabric, labels[kept])))
        (bank, labels_b), (query, labels_q) = results
        if self.fabric.is_global_zero and len(bank) and len(query):
            top1, top5 = knn_accuracy(
                bank, labels_b, query, labels_q, len(self.val.classes), self.val_args.k,
                self.val_args.temperature,
            )  # fmt: skip
            if loggers is not None:
                loggers.log({"val/knn_top1": top1, "val/knn_top5": top5}, step)
        self.last_knn_step = step
        self.spent += time.perf_counter() - start

    # -- files written once --------------------------------------------------------------

    def write_sample(self) -> None:
        """``monitor/sample.pt``: the sample's names and 64x64 thumbnails (all processes
        take part; process 0 writes)."""
        start = time.perf_counter()
        thumbs, kept = [], []
        for images, indices in self.sample.batches(self.batch):
            small = F.interpolate(
                images.float(), size=(THUMBNAIL, THUMBNAIL), mode="bilinear", antialias=True
            )
            thumbs.append(small.round_().clamp_(0, 255).to(torch.uint8))
            kept.append(indices + self.offset)
        local = (
            torch.cat(thumbs)
            if thumbs
            else torch.empty((0, 3, THUMBNAIL, THUMBNAIL), dtype=torch.uint8)
        )
        index = torch.cat(kept) if kept else torch.empty(0, dtype=torch.int64)
        local, index = gather_rows(self.fabric, local), gather_rows(self.fabric, index)
        if self.fabric.is_global_zero:
            self.folder.mkdir(parents=True, exist_ok=True)
            names = [str(self.names[int(i)]) for i in index]
            atomic_torch_save({"names": names, "thumbnails": local}, self.folder / "sample.pt")
        self.spent += time.perf_counter() - start

    def write_views(self, views: list[Tensor], recipe: list[Any]) -> None:
        """``monitor/views.pt``: the views of the first images of the first batch, as the
        method's recipe made them (``views``: the view transform's output, normalized),
        back in [0, 255] (process 0)."""
        if not self.fabric.is_global_zero:
            return
        groups, at = [], 0
        for i, group in enumerate(recipe):
            mine = views[at : at + group.num_views]
            at += group.num_views
            mean = torch.tensor(group.mean, device=mine[0].device).view(1, 3, 1, 1)
            std = torch.tensor(group.std, device=mine[0].device).view(1, 3, 1, 1)
            stack = torch.stack([(v[:VIEW_IMAGES].float() * std + mean) for v in mine], dim=1)
            images = (stack * 255).round_().clamp_(0, 255).to(torch.uint8).cpu()
            groups.append(
                {"name": _group_name(recipe, i), "size": list(group.size), "images": images}
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"groups": groups}, self.folder / "views.pt")

    # -- state ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "first_std": -1.0 if self.first_std is None else float(self.first_std),
            "count": self.count,
            "collapsed_at": -1 if self.collapsed_at is None else self.collapsed_at,
            "last_step": -1 if self.last_step is None else self.last_step,
            "last_knn_step": -1 if self.last_knn_step is None else self.last_knn_step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        def opt(key: str, kind: type) -> Any:
            value = state.get(key, -1)
            return None if value is None or value < 0 else kind(value)

        self.first_std = opt("first_std", float)
        self.count = int(state.get("count", 0))
        self.collapsed_at = opt("collapsed_at", int)
        self.last_step = opt("last_step", int)
        self.last_knn_step = opt("last_knn_step", int)

    def log_cost(self, wall_s: float) -> None:
        if self.enabled or self.val is not None:
            logger.info(
                "Monitors and kNN probe took %.1f s, %.2f%% of the run's %.1f s.",
                self.spent, 100 * self.spent / max(wall_s, 1e-9), wall_s,
            )  # fmt: skip


class _Preloaded:
    """Images already decoded (the first samples of shards), batched like ImageSet."""

    def __init__(self, images: Tensor) -> None:
        self.images = images
        self.what = "Monitor sample"
        self.skipped: list[tuple[str, str]] = []

    def batches(self, batch_size: int) -> Any:
        for start in range(0, len(self.images), batch_size):
            stop = min(start + batch_size, len(self.images))
            yield self.images[start:stop], torch.arange(start, stop)


def _group_name(recipe: list[Any], index: int) -> str:
    """``"views"`` for a recipe of one group; else the groups at the largest size are
    global (``"global view i"`` for one view, ``"global views"``), the others local."""
    if len(recipe) == 1:
        return "views"
    largest = max(g.size[0] * g.size[1] for g in recipe)
    group = recipe[index]
    if group.size[0] * group.size[1] == largest:
        same = [i for i, g in enumerate(recipe) if g.size[0] * g.size[1] == largest]
        if group.num_views == 1:
            return f"global view {same.index(index)}"
        return "global views"
    return "local views"
