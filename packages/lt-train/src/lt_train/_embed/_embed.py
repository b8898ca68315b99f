"""Embed images with a trained model: one embedding per image, written to one file."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn
from tqdm import tqdm

from lt_core import ConfigError, ConfigTypeError, EmbeddingModel
from lt_train._atomic import atomic_write, check_free_space
from lt_train._devices import resolve_accelerator
from lt_train._embed._data import EmbedImages, open_images
from lt_train._embed._writers import EMBED_FORMATS, check_writer, open_writer
from lt_train._export._source import (
    build_embedding_model,
    check_choice,
    check_out_file,
    read_source,
    run_image_size,
    run_normalization,
)
from lt_train._logs import run_log

__all__ = ["EMBED_FORMATS", "embed"]

logger = logging.getLogger(__name__)

_ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")
_PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")

PathLike = str | os.PathLike[str]


@dataclass(kw_only=True)
class EmbedConfig:
    """The options of :func:`embed`, checked when made (before any heavy work).

    Attributes:
        out: The file to write (its folder is created), atomically.
        data: An image folder (recursive), an image file, a list of both, or WebDataset
            shards (a brace pattern, a shard list, URLs).
        checkpoint: The run's ``checkpoints/last.ckpt``.
        format: ``"torch"``, ``"csv"``, ``"lightly_csv"`` or ``"parquet"`` (see
            :mod:`lt_train._embed._writers` for the layouts).
        image_size: ``(height, width)`` or an int for a square; ``None`` takes the size of
            the training views.
        batch_size: Images per forward pass.
        num_workers: Decoding processes; ``"auto"`` uses the CPU cores minus one.
        accelerator: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``,
            ``"cuda"``/``"gpu"`` or ``"mps"``.
        overwrite: Replace ``out`` if it exists.
        precision: ``"32-true"``, ``"bf16-mixed"`` or ``"16-mixed"`` (GPU only); the
            embeddings are float32 in every case.
        model: The model wrapper or model name to load the weights into, when the run
            trained a wrapper object (the checkpoint then cannot rebuild it).
    """

    out: PathLike
    data: PathLike | Sequence[PathLike]
    checkpoint: PathLike
    format: str = "torch"
    image_size: int | Sequence[int] | None = None
    batch_size: int = 128
    num_workers: int | str = "auto"
    accelerator: str = "auto"
    overwrite: bool = False
    precision: str = "32-true"
    model: str | nn.Module | None = None

    def __post_init__(self) -> None:
        self.format = check_choice("format", self.format, EMBED_FORMATS)
        check_writer(self.format)
        _check_int("batch_size", self.batch_size)
        if self.num_workers != "auto":
            _check_int("num_workers", self.num_workers, minimum=0)
        check_choice("accelerator", self.accelerator, _ACCELERATORS)
        check_choice("precision", self.precision, _PRECISIONS)


def embed(config: EmbedConfig | None = None, /, **options: Any) -> Path:
    """Embed every image of ``config.data`` with the embedding model of a checkpoint.

    Takes an :class:`EmbedConfig`, or its fields as keyword arguments.

    Images are decoded like in training (EXIF orientation, RGB, shorter side resized to
    ``image_size`` and center-cropped), scaled to 0-1 and normalized with the run's mean
    and std; the model runs in eval mode under ``torch.inference_mode()``. An image that
    cannot be decoded is skipped and named in a warning; the run goes on.

    Returns:
        The written file.
    """
    if config is None:
        config = EmbedConfig(**options)
    elif options:
        raise ConfigTypeError("Pass an EmbedConfig or keyword options, not both.")
    path = check_out_file(config.out, config.overwrite)
    source = read_source(config.checkpoint)
    if not source.is_checkpoint:
        raise ConfigError(
            f"checkpoint='{config.checkpoint}' holds a model's weights only; embed needs the "
            "run's checkpoint (out/checkpoints/last.ckpt), which also has the embedding layer "
            "and the normalization."
        )
    size = _image_size(config.image_size) or run_image_size(source)
    device = torch.device(resolve_accelerator(config.accelerator))
    if config.precision == "16-mixed" and device.type == "cpu":
        raise ConfigError("precision='16-mixed' needs a GPU; on the CPU use '32-true'.")
    with run_log(console=True):
        embedding_model = build_embedding_model(source, config.model).to(device)
        images = open_images(
            config.data, size, config.batch_size, config.num_workers, device.type == "cuda"
        )
        mean, std = (
            torch.tensor(v, device=device).view(1, 3, 1, 1) for v in run_normalization(source)
        )

        def write(f: IO[bytes]) -> None:
            _embed_all(f, path, config, images, embedding_model, (mean, std))

        if images.count is not None:  # float32 embeddings; the names and format add little
            needed = images.count * embedding_model.embed_dim * 4
            check_free_space(path.parent, needed, f"the embeddings {path}")
        atomic_write(path, write)
    return path


def _embed_all(
    f: IO[bytes],
    path: Path,
    config: EmbedConfig,
    images: EmbedImages,
    model: EmbeddingModel,
    normalize: tuple[torch.Tensor, torch.Tensor],
) -> None:
    device, precision = normalize[0].device, config.precision
    autocast: Any = contextlib.nullcontext()
    if precision != "32-true":
        dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
        autocast = torch.autocast(device.type, dtype=dtype)
    writer = open_writer(config.format, f, path, model.embed_dim)
    done, skipped = 0, 0
    try:
        with torch.inference_mode(), tqdm(total=images.count, unit="img", desc="Embedding") as bar:
            for batch in images.loader:
                for bad, error in batch["skipped"]:
                    logger.warning("Skipping the unreadable image '%s': %s", bad, error)
                skipped += len(batch["skipped"])
                bar.update(len(batch["paths"]) + len(batch["skipped"]))
                if not batch["paths"]:
                    continue
                x = batch["images"].to(device, non_blocking=True).float().div_(255)
                x = (x - normalize[0]) / normalize[1]
                with autocast:
                    emb = model(x)
                emb = emb.flatten(start_dim=1).float().cpu()
                writer.write([images.name(p) for p in batch["paths"]], emb)
                done += len(emb)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    logger.info(
        "Embedded %d images to %s%s.",
        done,
        path,
        f"; skipped {skipped} unreadable image(s), named above" if skipped else "",
    )


def _check_int(name: str, value: object, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigTypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}.")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}.")


def _image_size(value: object) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ConfigError(
            f"image_size must be an int or (height, width) with two positive ints, got "
            f"{value!r}. Fix: pass for example image_size=224 or image_size=(224, 224)."
        )
    return int(value[0]), int(value[1])
