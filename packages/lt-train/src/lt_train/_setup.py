"""Everything checked and resolved before training starts (no files are written here)."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import MISSING, dataclass
from typing import Any

import torch
from torch import nn

from lt_core import ConfigError, DataError, ViewConfig, from_dict, to_dict
from lt_data import (
    IMAGE_MEMBER_SUFFIXES,
    count_samples,
    is_webdataset_source,
    list_image_files,
    list_shards,
    probe_short_side,
    resolve_decode_size,
)
from lt_methods import DEFAULT_METHOD, Method, get_method
from lt_train._checkpoint import (
    CHECKPOINT_FORMAT,
    changed_options,
    files_digest,
    load_checkpoint,
    run_fingerprint,
)
from lt_train._config import TrainConfig
from lt_train._dry_run import dry_run
from lt_train._loggers import check_logger_packages
from lt_train._models import get_model_wrapper
from lt_train._optim import scaled_lr
from lt_train._run_dir import RunDir, check_out_dir

logger = logging.getLogger(__name__)

__all__ = ["Plan", "plan_run", "resolve_model"]


@dataclass
class Plan:
    """The resolved run: everything a run needs, decided before any file is written.

    ``config.json`` is written from the plan alone (:meth:`record`). ``resume`` is the
    checkpoint of the interrupted run to continue (``resume_interrupted=True``);
    ``init_weights`` the weights to start from (``checkpoint=``).
    """

    config: TrainConfig
    method_cls: type[Method]
    method_args: Any
    transform_args: Any
    files: Any  # the image paths (a FileList), or the shard URLs of a WebDataset source
    num_images: int
    streaming: bool  # files are WebDataset shards
    wrapper: nn.Module
    recipe: list[ViewConfig]
    image_size: tuple[int, int]
    decode_size: tuple[int, int]  # the images are decoded at this size, crops cut from it
    decode: str  # "cpu" (PIL in the workers) or "gpu" (nvjpeg in batches)
    accelerator: str
    precision: str
    num_workers: int
    optimizer: str
    base_lr: float
    lr: float
    weight_decay: float
    memory_format: torch.memory_format
    epochs: int  # resolved from "auto"
    fingerprint: dict[str, Any]
    resume: dict[str, Any] | None = None
    init_weights: dict[str, Any] | None = None

    def resolved(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "accelerator": self.accelerator,
            "precision": self.precision,
            "num_workers": self.num_workers,
            "num_images": self.num_images,
            "decode_size": list(self.decode_size),
            "decode": self.decode,
            "epochs": self.epochs,
            "source": f"{len(self.files)} WebDataset shards" if self.streaming else "files",
            "memory_format": str(self.memory_format).removeprefix("torch."),
        }

    def record(self) -> dict[str, Any]:
        """The content of config.json: every option, with the resolved defaults."""
        config = self.config
        record = {k: v for k, v in to_dict(config).items() if k != "model"}
        record["model"] = (
            config.model if isinstance(config.model, str) else type(config.model).__qualname__
        )
        record.update(
            method=self.method_cls.name,
            method_args=to_dict(self.method_args),
            transform_args=to_dict(self.transform_args),
            resolved=self.resolved(),
        )
        return record


def resolve_model(model: Any, model_args: dict[str, Any] | None = None) -> nn.Module:
    """A model name or import path becomes its wrapper; a wrapper passes through
    (validated later)."""
    if isinstance(model, str):
        return get_model_wrapper(model, model_args)
    if model_args:
        raise ConfigError(
            "model_args are the constructor arguments of a named model (model='torchvision/"
            "resnet18' or 'my_package.module:MyWrapper'); a model object is already built. "
            "Fix: drop model_args or pass the model by name."
        )
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model must be a model name, an import path 'package.module:Wrapper' or an "
            f"nn.Module wrapper, got {type(model).__name__}."
        )
    return model


def _accelerator(name: str) -> str:
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "cpu"
    if name in ("cuda", "gpu") and not torch.cuda.is_available():
        raise ConfigError(
            f"accelerator='{name}' but no CUDA device is available. Use accelerator='cpu' or "
            "'auto', or install a CUDA build of torch."
        )
    return "cuda" if name == "gpu" else name


def _precision(name: str, accelerator: str) -> str:
    if name == "auto":
        if accelerator == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16-mixed"
        return "32-true"
    if name == "16-mixed" and accelerator == "cpu":
        raise ConfigError(
            "precision='16-mixed' needs a GPU; on the CPU use precision='bf16-mixed' or '32-true'."
        )
    return name


def _decode(name: str, accelerator: str) -> str:
    """``"auto"`` decodes with PIL in the workers until GPU decoding is benchmarked."""
    if name == "gpu" and accelerator != "cuda":
        raise ConfigError(
            f"decode='gpu' decodes JPEGs with nvjpeg on a CUDA GPU, but the run trains on "
            f"'{accelerator}'. Fix: decode='cpu' or 'auto'."
        )
    return "cpu" if name == "auto" else name


def _num_workers(
    value: int | str,
    devices: int | list[int] | str,
    accelerator: str,
    batches_per_epoch: int | None = None,
) -> int:
    """``"auto"``: the cores this process may use, shared by the processes of this machine,
    minus one for each training process itself (no fixed cap: decoding is what limits a
    fast GPU), and at most one worker fewer than the batches a process reads an epoch
    (``batches_per_epoch``, the same on every process as ``batch_size`` is global;
    ``None``: unknown, no limit). The main process waits for its first batch however it is
    read; workers only help by reading the next ones during the steps. A run of one batch
    an epoch reads it in the main process and starts no worker: no fork, and no
    copy-on-write of the model's pages while it trains."""
    if isinstance(value, int):
        return value
    try:
        cores = len(os.sched_getaffinity(0))  # respects taskset, cgroups and SLURM bindings
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    processes = local_processes(devices, accelerator)
    if cores < int(os.environ.get("SLURM_CPUS_ON_NODE", "0") or 0):
        processes = 1  # srun bound this task to its own CPUs (--cpus-per-task): its share
    workers = max(1, cores // processes - 1)
    if batches_per_epoch is not None:
        workers = min(workers, max(0, batches_per_epoch - 1))
    return workers


def local_processes(devices: int | list[int] | str, accelerator: str) -> int:
    """Training processes on this machine for a ``devices`` option (``"auto"``: every
    CUDA GPU, or one process on another accelerator)."""
    if isinstance(devices, int):
        return max(1, devices)
    if isinstance(devices, list):
        return max(1, len(devices))
    if devices != "auto":  # "0,1"
        return max(1, len([d for d in devices.split(",") if d.strip()]))
    return max(1, torch.cuda.device_count()) if accelerator == "cuda" else 1


def plan_run(config: TrainConfig) -> Plan:
    """Check every option, the out folder, the data and the model; resolve defaults.

    Runs before any heavy work and leaves nothing behind, so a bad input fails fast and an
    existing out folder stays untouched.
    """
    method_cls = get_method(config.method or DEFAULT_METHOD)
    method_args = from_dict(method_cls.Args, config.method_args, "method_args")
    transform_args = from_dict(method_cls.TransformArgs, config.transform_args, "transform_args")
    checkpoints = config.callbacks.model_checkpoint.dirpath  # type: ignore[union-attr]
    check_out_dir(config.out, config.overwrite, config.resume_interrupted, checkpoints)
    check_logger_packages(config.loggers)  # type: ignore[arg-type]
    streaming = is_webdataset_source(config.data)
    files, num_images = _list_data(config) if streaming else (list_image_files(config.data), 0)
    num_images = num_images or len(files)
    step_images = config.batch_size * config.gradient_accumulation_steps
    if num_images < step_images:
        what = (
            f"batch_size={config.batch_size} is larger than the dataset"
            if config.gradient_accumulation_steps == 1
            else f"One optimizer step (batch_size x gradient_accumulation_steps = {step_images} "
            "images) is larger than the dataset"
        )
        raise DataError(
            f"{what} ({num_images} images in {config.data}). Lower batch_size"
            f"{' or gradient_accumulation_steps' if config.gradient_accumulation_steps > 1 else ''}"
            " or add images."
        )
    epochs = auto_epochs(num_images, step_images) if config.epochs == "auto" else config.epochs
    # Automatic method options (e.g. DINO's head size) follow the dataset and run length.
    method_args = method_cls.resolve_args(
        method_args,
        num_images=num_images,
        total_steps=epochs * (num_images // step_images),
    )
    accelerator = _accelerator(config.accelerator)
    precision = _precision(config.precision, accelerator)
    decode = _decode(config.decode, accelerator)
    recipe = method_cls.view_recipe(transform_args)
    image_size = (int(transform_args.image_size[0]), int(transform_args.image_size[1]))
    decode_size = _decode_size(config.decode_size, recipe, image_size, files, streaming)
    optimizer = method_cls.default_optimizer if config.optim == "auto" else config.optim
    o = config.optim_args
    base_lr = o.lr if o.lr is not None else method_cls.default_lr
    weight_decay = o.weight_decay if o.weight_decay is not None else method_cls.default_weight_decay
    lr = scaled_lr(  # to the effective batch of an optimizer step
        base_lr,
        step_images,
        getattr(method_args, "lr_scale_method", "linear"),
        getattr(method_args, "reference_batch_size", 256),
    )
    fingerprint = run_fingerprint(
        config,
        {
            "method": method_cls.name,
            "method_args": to_dict(method_args),
            "transform_args": to_dict(transform_args),
            "optimizer": optimizer,
            "lr": lr,
            "weight_decay": weight_decay,
            "accelerator": accelerator,
            "precision": precision,
            "num_images": num_images,
            "epochs_resolved": epochs,
            "images_digest": files_digest(files),
        },
    )
    resume = _load_resume(config, fingerprint) if config.resume_interrupted else None
    init_weights = _load_init_weights(config.checkpoint) if config.checkpoint else None
    # Named models draw their initial weights from the seed.
    torch.manual_seed(config.seed)
    wrapper = resolve_model(config.model, config.model_args)
    sizes = sorted({v.size for v in recipe}, key=lambda s: s[0] * s[1])
    memory_format = dry_run(
        wrapper, [sizes[0], sizes[-1]] if len(sizes) > 1 else sizes, config.channels_last
    )
    return Plan(
        config=config,
        method_cls=method_cls,
        method_args=method_args,
        transform_args=transform_args,
        files=files,
        num_images=num_images,
        streaming=streaming,
        wrapper=wrapper,
        recipe=recipe,
        image_size=image_size,
        decode_size=decode_size,
        decode=decode,
        accelerator=accelerator,
        precision=precision,
        num_workers=_num_workers(
            config.num_workers,
            config.devices,
            accelerator,
            # Micro-batches of each process an epoch; a stream's epoch is split by worker,
            # so its workers stay as they are.
            None if streaming else (num_images // step_images) * config.gradient_accumulation_steps,
        ),
        optimizer=optimizer,
        base_lr=base_lr,
        lr=lr,
        weight_decay=weight_decay,
        memory_format=memory_format,
        epochs=epochs,
        fingerprint=fingerprint,
        resume=resume,
        init_weights=init_weights,
    )


def _decode_size(
    value: int | str,
    recipe: list[ViewConfig],
    image_size: tuple[int, int],
    files: Any,
    streaming: bool,
) -> tuple[int, int]:
    """The size the images are decoded at (the ``decode_size`` option ``value``), logged
    with the reason."""
    side = probe_short_side(files, streaming) if value == "auto" else None
    size = resolve_decode_size(value, recipe, image_size, side)
    if size == image_size:
        why = "the image size"
        if value == "auto" and side is not None and side < 1.05 * min(image_size):
            why += f": the source images are about {side:.0f} px, larger adds no detail"
    elif value == "auto":
        sources = f", sources about {side:.0f} px" if side else ""
        why = f"auto: the smallest crops keep their detail, within 2x the image size{sources}"
    else:
        why = "decode_size"
    logger.info("Decoding the images at %dx%d (%s).", size[0], size[1], why)
    return size


#: ``epochs="auto"`` aims at this many optimizer steps, within the epoch bounds below.
AUTO_STEPS = 50_000
AUTO_EPOCHS = (100, 1000)


def auto_epochs(num_images: int, step_images: int) -> int:
    """Epochs for ``epochs="auto"``: enough for about 50,000 optimizer steps, at least 100
    epochs (large datasets: ImageNet gets 100) and at most 1,000 (small ones: CIFAR-10 at
    batch 512 gets 512)."""
    steps_per_epoch = max(1, num_images // step_images)
    lo, hi = AUTO_EPOCHS
    return max(lo, min(hi, math.ceil(AUTO_STEPS / steps_per_epoch)))


def _list_data(config: TrainConfig) -> tuple[list[str], int]:
    """The shards of a WebDataset source and the images per epoch (``epoch_size``, or
    the samples counted in the local shards' tar headers)."""
    shards = list_shards(config.data)  # type: ignore[arg-type]
    if config.epoch_size is not None:
        return shards, config.epoch_size
    logger.info("Counting the samples of %d shard(s)...", len(shards))
    count = count_samples(shards, images_only=True)
    if count is None:
        raise ConfigError(
            f"The WebDataset source {config.data!r} has remote shards, whose samples cannot "
            "be counted before training. Fix: pass epoch_size=<images per epoch>."
        )
    if count == 0:
        samples = count_samples(shards)
        found = (
            f"hold {samples} sample(s), none with an image member (a member name ending in "
            f".{', .'.join(IMAGE_MEMBER_SUFFIXES)})"
            if samples
            else "hold no samples"
        )
        raise DataError(
            f"The shards of {config.data!r} {found}. Fix: check them (tar tf <shard>) or "
            "write them from a folder of images with lightly_train.make_shards."
        )
    return shards, count


def _load_resume(config: TrainConfig, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The interrupted run's checkpoint, after checking that the options still match."""
    path = RunDir(config.out, config.callbacks.model_checkpoint.dirpath).last_checkpoint  # type: ignore[union-attr]
    state = load_checkpoint(path, mmap=True)
    if state.get("format") != CHECKPOINT_FORMAT or "run" not in state:
        raise ConfigError(
            f"'{path}' is not a resumable lightly-train checkpoint (format "
            f"{state.get('format')!r}, expected {CHECKPOINT_FORMAT}). Fix: start a new run "
            "from its weights with checkpoint=... and a new out folder."
        )
    defaults = {
        f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not MISSING
    }
    changed = changed_options(state["run"], fingerprint, defaults)
    if changed:
        raise ConfigError(
            f"resume_interrupted=True continues the run in '{config.out}' as it was started, "
            f"but these options differ from it: {'; '.join(changed)}. Fix: pass the options "
            "of the interrupted run (see its config.json), or start a new run from its weights "
            f"with checkpoint='{path}' and a new out folder."
        )
    return state


def _load_init_weights(path: str) -> dict[str, Any]:
    """Weights to start a new run from: a lightly-train checkpoint (its ``"method"``
    state) or an exported ``state_dict`` of the model."""
    state = load_checkpoint(path, mmap=True)
    if "method" in state and isinstance(state["method"], dict):
        return {"kind": "checkpoint", "state": state["method"]}
    if state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return {"kind": "model", "state": state}
    raise ConfigError(
        f"checkpoint='{path}' is neither a lightly-train checkpoint (checkpoints/*.ckpt) nor "
        "a model state_dict (exported_models/exported_last.pt). Fix: pass one of those."
    )
