"""``lightly_train.embed``: embed images with a trained model and write them to a file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from torch import nn

from lt_core import ConfigError, closest_match_hint
from lt_train import embed as _embed

__all__ = ["embed"]

PathLike = str | os.PathLike[str]
_OPTIONS = (
    "out",
    "data",
    "checkpoint",
    "format",
    "image_size",
    "batch_size",
    "num_workers",
    "accelerator",
    "overwrite",
    "precision",
    "model",
)


def embed(
    *,
    out: PathLike,
    data: PathLike | Sequence[PathLike],
    checkpoint: PathLike,
    format: Literal["torch", "csv", "lightly_csv", "parquet"] = "torch",
    image_size: int | tuple[int, int] | None = None,
    batch_size: int = 128,
    num_workers: int | Literal["auto"] = "auto",
    accelerator: Literal["auto", "cpu", "cuda", "gpu", "mps"] = "auto",
    overwrite: bool = False,
    precision: Literal["32-true", "bf16-mixed", "16-mixed"] = "32-true",
    model: str | nn.Module | None = None,
    **unknown: Any,
) -> Path:
    """Embed images with the embedding model of a checkpoint and write them to one file.

    Every image is decoded like in training (EXIF orientation, RGB, the shorter side
    resized to ``image_size`` and a center crop), scaled to 0-1, normalized with the run's
    mean and std, and passed through the embedding model (wrapper, pooling, ``embed_dim``
    layer) in eval mode. An image that cannot be decoded is skipped and named in a
    warning; the others are embedded. The output is streamed to disk batch by batch.

    Args:
        out: The file to write; its folder is created. The file is written atomically.
        data: An image folder (walked recursively), an image file, a list of both, or
            WebDataset shards (``"shards/train-{000000..000009}.tar"``, a list, URLs).
        checkpoint: The run's ``checkpoints/last.ckpt``.
        format: The file layout:

            - ``"torch"``: ``torch.save({"filenames": list[str], "embeddings":
              Tensor(N, D)})``; load with ``torch.load(out, weights_only=True)``;
            - ``"csv"``: header ``filename,embedding_0,...,embedding_{D-1}``, one row per
              image;
            - ``"lightly_csv"``: header ``filenames,embedding_0,...,embedding_{D-1},labels``
              with labels 0 (the Lightly platform's format);
            - ``"parquet"``: columns ``filename`` and ``embedding`` (a fixed-size list of
              D float32); needs ``pip install "lightly-train[parquet]"``.

            File names are relative to ``data`` when it is one folder; with a list, files
            are named as given and a folder's images as ``<folder as given>/<relative
            path>``; a shard's samples as ``<shard>/<key>.<extension>``. Rows follow the
            sorted file listing (shards: their order, with batches of several workers'
            shards taking turns).
        image_size: ``(height, width)``, or an int for a square; ``None`` takes the size
            of the training views. The CLI takes a list: ``image_size=[224,224]``.
        batch_size: Images per forward pass.
        num_workers: Decoding processes; ``"auto"`` uses the CPU cores minus one.
        accelerator: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``,
            ``"cuda"``/``"gpu"`` or ``"mps"``. One device.
        overwrite: Replace ``out`` if it exists; otherwise an existing ``out`` is an error.
        precision: ``"32-true"``, ``"bf16-mixed"`` or ``"16-mixed"`` (GPU only); the
            written embeddings are float32 in every case.
        model: The model wrapper (or model name) to load the weights into, needed when the
            run trained a wrapper object: pass one built the same way (it is copied, not
            changed). Runs of a named model rebuild it without this.

    Returns:
        The written file.

    Raises:
        ConfigError: An unknown option or format, an existing ``out`` without
            ``overwrite=True``, a missing or foreign checkpoint, or a wrapper object run
            without ``model=``.
        DataError: ``data`` does not exist or holds no images.
        ImportError: ``format="parquet"`` without pyarrow.
    """
    if unknown:
        key = next(iter(unknown))
        raise ConfigError(
            f"Unknown option '{key}' of embed.{closest_match_hint(key, _OPTIONS)} Valid "
            f"options: {', '.join(_OPTIONS)}."
        )
    return _embed(
        out=out,
        data=data,
        checkpoint=checkpoint,
        format=format,
        image_size=image_size,
        batch_size=batch_size,
        num_workers=num_workers,
        accelerator=accelerator,
        overwrite=overwrite,
        precision=precision,
        model=model,
    )
