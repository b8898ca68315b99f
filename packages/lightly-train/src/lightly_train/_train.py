"""``lightly_train.train``: the Python entry point of pretraining."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Literal

from torch import nn

from lightly_train._peer import TOP_LEVEL, translate
from lt_core import ConfigError, closest_match_hint, from_dict
from lt_train import TrainConfig
from lt_train import train as _train

__all__ = ["pretrain", "train"]

PathLike = str | os.PathLike[str]


def train(
    *,
    out: PathLike,
    data: PathLike | list[PathLike],
    model: str | nn.Module,
    method: str | None = None,
    method_args: dict[str, Any] | None = None,
    embed_dim: int | None = None,
    epochs: int | Literal["auto"] = "auto",
    batch_size: int = 128,
    num_workers: int | Literal["auto"] = "auto",
    accelerator: Literal["auto", "cpu", "cuda", "gpu", "mps"] = "auto",
    devices: int | list[int] | str = "auto",
    num_nodes: int = 1,
    strategy: str = "auto",
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto",
    float32_matmul_precision: Literal["auto", "highest", "high", "medium"] = "auto",
    seed: int = 0,
    optim: str = "auto",
    optim_args: dict[str, Any] | None = None,
    transform_args: dict[str, Any] | None = None,
    loader_args: dict[str, Any] | None = None,
    model_args: dict[str, Any] | None = None,
    loggers: dict[str, Any] | list[str] | None = None,
    callbacks: dict[str, Any] | None = None,
    log_every_n_steps: int = 10,
    channels_last: bool = True,
    compile: bool = False,
    overwrite: bool = False,
    progress_bar: bool = True,
    gradient_accumulation_steps: int = 1,
    epoch_size: int | None = None,
    shuffle_buffer: int = 1000,
    data_cache: Literal["auto", "none", "ram", "device"] = "auto",
    decode: Literal["auto", "cpu", "gpu"] = "auto",
    decode_size: int | Literal["auto"] = "auto",
    checkpoint_every_n_steps: int | None = None,
    checkpoint_keep: int | None = None,
    resume_interrupted: bool = False,
    checkpoint: PathLike | None = None,
    monitor_every_n_steps: int | Literal["auto"] = "auto",
    monitor_args: dict[str, Any] | None = None,
    val_data: PathLike | None = None,
    val_args: dict[str, Any] | None = None,
    val_every_n_epochs: int = 1,
    resume: bool | None = None,
    trainer_args: dict[str, Any] | None = None,
    activation_checkpoint_args: dict[str, Any] | None = None,
    **unknown: Any,
) -> Path:
    """Pretrain a model with self-supervised learning on a folder of unlabeled images.

    Every option is checked, the data folder listed and the model wrapper validated (a dry
    run at the training resolution) before any file is written.

    Args:
        out: Output folder. Receives ``exported_models/exported_last.pt`` (the
            ``state_dict`` of ``wrapper.get_model()``), ``checkpoints/last.ckpt``,
            ``metrics.jsonl``, ``train.log``, ``config.json`` and ``tensorboard/``. Must be
            empty or new unless ``overwrite=True``.
        data: A folder of images (walked recursively), an image file, or a list of both;
            or WebDataset tar shards: a brace pattern
            (``"shards/train-{000000..000127}.tar"``), a list of shards, ``http(s)://`` or
            ``pipe:`` URLs (see docs/data.md).
        model: A model wrapper (see docs/custom_models.md) or a name such as
            ``"torchvision/resnet18"`` (``list_models()`` lists them; random weights).
        method: SSL method name (``list_methods()``); ``None`` takes the default.
        method_args: Options of the method, e.g. ``{"temperature": 0.2}``.
        embed_dim: ``None`` keeps the wrapper's ``feature_dim()``; an int adds a 1x1
            convolution projecting the pooled features to ``embed_dim`` channels.
        epochs: Passes over the data; ``"auto"`` aims at about 50,000 optimizer steps,
            within 100 to 1,000 epochs (100 for ImageNet-sized data).
        batch_size: Global batch size over all devices and nodes.
        num_workers: Data-loading processes per device; ``"auto"`` uses the CPU cores
            (the cores this process may use divided by the
            processes on this machine, minus one).
        accelerator: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``/``"gpu"``
            or ``"mps"``.
        devices: Devices per node: a count, a list of GPU indices (``[0, 1]``), a string
            (``"0,1"``), or ``"auto"`` (all GPUs, or one CPU process).
        num_nodes: Number of machines for multi-node training.
        strategy: ``"auto"`` (DDP when more than one device), ``"ddp"`` (=
            ``"ddp_find_unused_parameters_true"``), ``"ddp_find_unused_parameters_false"``
            or ``"ddp_spawn"``.
        precision: ``"auto"`` (bf16-mixed on GPUs that support it, else 32-true),
            ``"32-true"``, ``"bf16-mixed"`` or ``"16-mixed"`` (GPU only).
        float32_matmul_precision: ``torch.set_float32_matmul_precision`` for the run
            (``"high"`` uses TF32 on Ampere and newer GPUs); ``"auto"`` leaves it alone.
        seed: Random seed of initialization (named models too), data order and
            augmentations.
        optim: ``"auto"`` (the method's default), ``"sgd"``, ``"adamw"`` or ``"lars"``.
        optim_args: Optimizer options: ``lr`` (per ``method_args.reference_batch_size``
            images, 256 by default, scaled to the effective batch by
            ``method_args.lr_scale_method``, linearly by default), ``weight_decay``, ``momentum``, ``betas``, ``warmup_epochs``,
            ``min_lr_ratio``, ``gradient_clip_norm``, ``trust_coefficient`` (LARS's eta,
            default 0.02).
        transform_args: Options of the method's views, e.g. ``{"image_size": [32, 32]}``.
        loader_args: Extra ``torch.utils.data.DataLoader`` options (``pin_memory``,
            ``prefetch_factor``, ``persistent_workers``, ``timeout``,
            ``multiprocessing_context``...); the trainer keeps its sampler and collate.
        model_args: Constructor arguments of a named model (``model="torchvision/resnet50"``
            -> ``torchvision.models.get_model(name, **model_args)``; an import path
            ``"my_package.module:MyWrapper"`` -> ``MyWrapper(**model_args)``).
        loggers: A dict of logger name to its options, ``None`` turning one off:
            ``"jsonl"`` (metrics.jsonl) and ``"tensorboard"`` are on by default,
            ``"mlflow"`` and ``"wandb"`` when given (``{"wandb": {"project": "x"}}``; they
            need ``pip install "lightly-train[mlflow]"`` or ``[wandb]``). A list of names
            (``["jsonl"]``) enables exactly those. See docs/training.md.
        callbacks: A dict of callback name to its options, ``None`` turning one off:
            ``model_checkpoint`` (``every_n_train_steps``, ``every_n_epochs``,
            ``train_time_interval``, ``save_top_k``, ``dirpath``, ``filename``...),
            ``early_stopping`` (``monitor="train_loss"``, ``patience``, ``check_finite``,
            ``stop_on_collapse``: stop when the monitors flag a collapse, also spelled
            ``monitor="collapse"``),
            ``model_export`` (``every_n_epochs``), ``learning_rate_monitor`` and
            ``device_stats_monitor`` (off by default). See docs/training.md.
        log_every_n_steps: How often metrics are logged.
        channels_last: Train in channels-last memory format when the model runs in it
            (faster convolutions on CPUs and GPUs); models that do not are detected by a
            dry run and train in the default format.
        compile: Compile the model (``torch.compile``, in place: checkpoints and exports
            keep their keys). The first steps take longer while it compiles (on the CPU it
            needs a C++ compiler); it pays in long runs of models that compile without
            graph breaks. Off by default until measured per GPU.
        overwrite: Replace the files of an earlier run in ``out`` (other files are kept).
            They are moved aside and deleted only once the new run has written its first
            checkpoint.
        progress_bar: Show a progress bar with loss, throughput and data-wait share.
        gradient_accumulation_steps: Add up the gradients of this many batches of
            ``batch_size`` images before each optimizer step, so a large effective batch
            (``batch_size * gradient_accumulation_steps``, which also scales the learning
            rate) fits a small GPU. Contrastive methods (SimCLR) draw their negatives from
            each batch only.
        epoch_size: Images per epoch of a WebDataset source; ``None`` counts the samples of
            local shards from their tar headers (remote shards need it).
        shuffle_buffer: Samples in the shuffle buffer of a WebDataset source (the shard
            order is shuffled too); 0 reads the shards in order.
        data_cache: Keep the decoded images in memory after the first epoch, so later
            epochs skip reading and decoding: ``"ram"`` (host memory), ``"device"`` (the
            GPU's memory; on the CPU the same as ``"ram"``), ``"none"``, or ``"auto"``: a
            cache where it fits (device: 25% of the free GPU memory, ram: 50% of the
            available host memory, shared by the processes of a machine) and the run has
            more than one epoch; the log says which. Each process caches its own share, so
            from the second epoch on each process shuffles within its share.
        decode: Where JPEGs are decoded: ``"cpu"`` (PIL in the loader workers), ``"gpu"``
            (the workers read the bytes, nvjpeg decodes whole batches on the GPU; other
            formats and files nvjpeg rejects fall back to PIL), or ``"auto"``, which
            picks ``"cpu"`` for now (GPU decoding is opt-in until it is benchmarked).
        decode_size: Side in pixels at which images are decoded (center crop of a square);
            the random crops are cut from it. ``"auto"``: large enough that the smallest
            crop keeps the source's detail, bounded by twice the image size and by the
            typical size of the source images (sampled before training), at least the
            image size.
        checkpoint_every_n_steps: Write ``checkpoints/last.ckpt`` every this many steps,
            besides each epoch end (short for
            ``callbacks.model_checkpoint.every_n_train_steps``, default 1000).
        checkpoint_keep: How many checkpoints to keep (short for
            ``callbacks.model_checkpoint.save_top_k``, default 1); above 1 they are also kept
            as ``checkpoints/epoch=<epoch>-step=<step>.ckpt``.
        resume_interrupted: Continue the interrupted run in ``out`` from its last checkpoint,
            exactly where it stopped. The options must be those of the interrupted run.
        checkpoint: Start a new run from the weights of a checkpoint (``*.ckpt``) or of an
            exported model (``exported_last.pt``); optimizer and schedule start anew.
        monitor_every_n_steps: How often the label-free health monitors embed their fixed
            sample of your images (RankMe, alpha-ReQ, embedding spread, collapse check;
            also at step 0 and at the end). ``"auto"``: at logging steps, as often as
            ``monitor_args.budget`` (1.5%) of the wall time allows. See docs/training.md.
        monitor_args: Options of the monitors: ``enabled`` (True), ``sample_size``
            (``"auto"``: the embedding dimension within 256 to 2048; a smaller sample
            bounds RankMe), ``batch_size``, ``budget``, ``collapse`` (``min_rank`` 2,
            ``std_fraction`` 0.1, ``patience`` 2 checks in a row).
        val_data: Labeled images for an online kNN probe: a folder with one subfolder of
            images per class, or a CSV file of ``path,label`` rows. ``None``: no probe.
        val_args: Options of the kNN probe: ``k`` (20), ``temperature`` (0.1),
            ``bank_size`` (5000), ``query_size`` (1000), ``batch_size``, ``seed``.
        val_every_n_epochs: How often the kNN probe runs (also at step 0 and at the end).
        resume: lightly-train 0.18.0's name of ``resume_interrupted``.
        trainer_args: Lightning Trainer options of lightly-train 0.18.0; not supported here
            (this trainer runs on lightning-fabric): a non-empty dict is an error that names
            the top-level options to use instead.
        activation_checkpoint_args: ``{"enabled": False}`` only (lightly-train 0.18.0's
            option); activation checkpointing is not supported yet (an error says so).

    The options of lightly-train 0.18.0 that have no counterpart here (the last three
    above, and some keys of ``loggers`` and ``callbacks``) are translated or rejected by
    ``lightly_train._peer``; docs/migrating.md lists them.

    Returns:
        The out folder.
    """
    values = {name: value for name, value in locals().items() if name in _OPTIONS}
    if unknown:
        key = next(iter(unknown))
        raise ConfigError(
            f"Unknown option '{key}'.{closest_match_hint(key, list(_OPTIONS))} Valid options: "
            f"{', '.join(_OPTIONS)}."
        )
    for name in ("out", "checkpoint", "val_data"):
        if values[name] is not None:
            values[name] = os.fspath(values[name])
    if isinstance(data, list | tuple):
        values["data"] = [os.fspath(d) for d in data]
    else:
        values["data"] = os.fspath(data)
    # None means the defaults
    for name in ("method_args", "optim_args", "transform_args", "monitor_args", "val_args"):
        values[name] = values[name] or {}
    return _train(from_dict(TrainConfig, translate(values), ""))


#: The options of ``train``: the fields of ``TrainConfig``, in its order, then the peer's
#: top-level names that ``_peer.translate`` turns into them.
_OPTIONS = (*(f.name for f in dataclasses.fields(TrainConfig)), *TOP_LEVEL)


def pretrain(**options: Any) -> Path:
    """The same as :func:`train` (lightly-train 0.18.0's name for it)."""
    return train(**options)
