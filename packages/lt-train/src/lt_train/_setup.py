"""Everything checked and resolved before training starts (no files are written here)."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import MISSING, dataclass
from typing import Any

import torch
from torch import nn

from lt_core import ConfigError, DataError, ViewConfig, WrapperTypeError, from_dict, to_dict
from lt_data import DataListing, SourceOptions, auto_num_workers, list_data, resolve_decode_size
from lt_methods import DEFAULT_METHOD, Method, get_method
from lt_train._checkpoint import (
    CHECKPOINT_FORMAT,
    changed_options,
    files_digest,
    load_checkpoint,
    run_fingerprint,
)
from lt_train._config import TrainConfig
from lt_train._devices import local_processes, resolve_accelerator, resolve_precision
from lt_train._dry_run import dry_run
from lt_train._loggers import check_logger_packages
from lt_train._models import get_model_wrapper
from lt_train._models._family import model_family
from lt_train._models._known import KNOWN_CLASSES, looks_like_wrapper, wrap_known_model
from lt_train._optim import scaled_lr
from lt_train._run_dir import RunDir, check_out_dir
from lt_train._stop import ignore_stop_signals
from lt_train._teacher import args_record, check_teacher

logger = logging.getLogger(__name__)

__all__ = ["Plan", "check_model", "load_init_weights", "load_resume", "plan_run", "resolve_model"]


@dataclass
class Plan:
    """The resolved options of a run: every value derived from the config, computed once
    before any file is written. ``config.json`` is written from the plan (:meth:`record`).
    """

    config: TrainConfig
    method_cls: type[Method]
    method_args: Any
    transform_args: Any
    data: DataListing
    recipe: list[ViewConfig]
    decode_size: tuple[int, int]  # the images are decoded at this size, crops cut from it
    decode: str  # "cpu" (PIL in the workers) or "gpu" (nvjpeg in batches)
    accelerator: str
    precision: str
    world_size: int  # training processes over all machines
    num_workers: int
    steps_per_epoch: int  # optimizer steps
    epochs: int  # resolved from "auto"
    model_family: str  # "cnn" or "vit": which of the method's optimizer recipes applies
    optimizer: str
    base_lr: float
    lr: float
    weight_decay: float
    fingerprint: dict[str, Any]
    memory_format: torch.memory_format = torch.contiguous_format  # from the model's dry run

    @property
    def num_images(self) -> int:
        assert self.data.num_images is not None  # counted, or epoch_size (list_data)
        return self.data.num_images

    @property
    def max_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def local_processes(self) -> int:
        """Training processes on one machine."""
        return self.world_size // self.config.num_nodes

    def source_options(self, rank: int, device: torch.device) -> SourceOptions:
        """How process ``rank`` reads the data."""
        config = self.config
        return SourceOptions(
            decode_size=self.decode_size,
            micro_batch=config.batch_size // self.world_size,
            accumulation=config.gradient_accumulation_steps,
            rank=rank,
            world_size=self.world_size,
            num_workers=self.num_workers,
            seed=config.seed,
            shuffle_buffer=config.shuffle_buffer,
            device=device,
            decode_on_device=self.decode == "gpu",
            log_skipped=rank == 0,
            loader_args=config.loader_args,
            worker_init_fn=ignore_stop_signals,
        )

    def resolved(self) -> dict[str, Any]:
        return {
            "model_family": self.model_family,
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
            "source": self.data.describe(),
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
            method_args=args_record(self.method_args),
            transform_args=to_dict(self.transform_args),
            resolved=self.resolved(),
        )
        return record


def resolve_model(model: Any, model_args: dict[str, Any] | None = None) -> nn.Module:
    """A model name or import path becomes its wrapper; a plain model of a known class
    (torchvision's ``resnet18()``, a timm model) is wrapped like its named model; a
    wrapper passes through (validated later)."""
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
    if looks_like_wrapper(model):
        return model
    wrapper = wrap_known_model(model)
    if wrapper is not None:
        logger.info(
            "Wrapped the %s model like its named models; the export holds its weights.",
            type(model).__qualname__,
        )
        return wrapper
    raise WrapperTypeError(
        f"model is a {type(model).__module__}.{type(model).__qualname__}, which is neither a "
        "model wrapper (get_model, forward_features, forward_pool, feature_dim) nor a model "
        f"of a known class ({', '.join(KNOWN_CLASSES)}). Fix: wrap it in a class with those "
        "four methods (docs/custom_models.md) or pass a model name such as "
        "'torchvision/resnet18'."
    )


def check_model(wrapper: nn.Module, plan: Plan) -> None:
    """Validate the wrapper at the smallest and largest view size of the recipe and set
    the memory format it trains in (:func:`lt_train._dry_run.dry_run`)."""
    sizes = sorted({v.size for v in plan.recipe}, key=lambda s: s[0] * s[1])
    plan.memory_format = dry_run(
        wrapper, [sizes[0], sizes[-1]] if len(sizes) > 1 else sizes, plan.config.channels_last
    )


def _decode(name: str, accelerator: str) -> str:
    """``"auto"`` decodes with PIL in the workers until GPU decoding is benchmarked."""
    if name == "gpu" and accelerator != "cuda":
        raise ConfigError(
            f"decode='gpu' decodes JPEGs with nvjpeg on a CUDA GPU, but the run trains on "
            f"'{accelerator}'. Fix: decode='cpu' or 'auto'."
        )
    return "cpu" if name == "auto" else name


def _world_size(config: TrainConfig, accelerator: str) -> int:
    world_size = local_processes(config.devices, accelerator) * config.num_nodes
    if config.batch_size % world_size:
        raise ConfigError(
            f"batch_size={config.batch_size} is the global batch size and must be divisible "
            f"by the number of processes ({world_size})."
        )
    return world_size


def _check_min_batch(method_cls: type[Method], batch_size: int, world_size: int) -> None:
    """The batch that one forward of the method's loss sees must hold at least
    ``method_cls.min_batch_size`` images: the global batch when the loss gathers over
    processes (SimCLR), else each process's share."""
    need = method_cls.min_batch_size
    seen = batch_size if method_cls.gathers_batch else batch_size // world_size
    if seen >= need:
        return
    fix = -(-need // world_size) * world_size if method_cls.gathers_batch else need * world_size
    where = (
        f"batch_size={batch_size}"
        if world_size == 1 or method_cls.gathers_batch
        else f"{seen} per process (batch_size={batch_size} over {world_size} processes)"
    )
    raise ConfigError(
        f"method='{method_cls.name}' needs at least {need} images in a batch to learn "
        f"anything (its loss compares each image with the others of the batch"
        f"{', gathered over all processes' if method_cls.gathers_batch else ''}), got "
        f"{where}; it would train at a constant loss. Fix: batch_size={fix} or "
        "more (hundreds are typical)."
    )


def plan_run(config: TrainConfig) -> Plan:
    """Check every option, the out folder and the data; resolve every derived value.

    Runs before any heavy work and leaves nothing behind, so a bad input fails fast and an
    existing out folder stays untouched.
    """
    method_cls = get_method(config.method or DEFAULT_METHOD)
    method_args = from_dict(method_cls.Args, config.method_args, "method_args")
    transform_args = from_dict(method_cls.TransformArgs, config.transform_args, "transform_args")
    check_teacher(method_args)  # a method that learns from a teacher: is it there?
    checkpoints = config.callbacks.model_checkpoint.dirpath  # type: ignore[union-attr]
    check_out_dir(config.out, config.overwrite, config.resume_interrupted, checkpoints)
    check_logger_packages(config.loggers)  # type: ignore[arg-type]
    data = list_data(config.data, epoch_size=config.epoch_size)
    num_images = data.num_images
    assert num_images is not None
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
    accelerator = resolve_accelerator(config.accelerator)
    precision = resolve_precision(config.precision, accelerator)
    decode = _decode(config.decode, accelerator)
    world_size = _world_size(config, accelerator)
    _check_min_batch(method_cls, config.batch_size, world_size)
    reading = SourceOptions(
        decode_size=(1, 1),  # (not needed to count)
        micro_batch=config.batch_size // world_size,
        accumulation=config.gradient_accumulation_steps,
        world_size=world_size,
    )
    num_workers = (
        config.num_workers
        if isinstance(config.num_workers, int)
        else auto_num_workers(data.batches_per_process(reading), world_size // config.num_nodes)
    )
    steps_per_epoch = data.steps_per_epoch(dataclasses.replace(reading, num_workers=num_workers))
    epochs = auto_epochs(steps_per_epoch) if config.epochs == "auto" else config.epochs
    if config.epochs == "auto" and epochs > AUTO_EPOCHS[0]:
        logger.warning(
            "epochs='auto' runs %d epochs of %d steps on %d images (about %d optimizer steps, "
            "at least %d epochs); lightly-train 0.18.0 runs %d. Pass epochs=... to choose, "
            "e.g. epochs=%d for the peer's length.",
            epochs, steps_per_epoch, num_images, AUTO_STEPS, AUTO_EPOCHS[0], AUTO_EPOCHS[0],
            AUTO_EPOCHS[0],
        )  # fmt: skip
    # Automatic method options (e.g. DINO's head size) follow the dataset and run length.
    method_args = method_cls.resolve_args(
        method_args, num_images=num_images, total_steps=epochs * steps_per_epoch
    )
    recipe = method_cls.view_recipe(transform_args)
    image_size = (int(transform_args.image_size[0]), int(transform_args.image_size[1]))
    decode_size = _decode_size(config.decode_size, recipe, image_size, data)
    family = model_family(config.model)
    default_optimizer, default_lr, default_weight_decay = method_cls.optimizer_defaults(family)
    optimizer = default_optimizer if config.optim == "auto" else config.optim
    o = config.optim_args
    base_lr = o.lr if o.lr is not None else default_lr
    weight_decay = o.weight_decay if o.weight_decay is not None else default_weight_decay
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
            "method_args": args_record(method_args),
            "transform_args": to_dict(transform_args),
            "optimizer": optimizer,
            "lr": lr,
            "weight_decay": weight_decay,
            "accelerator": accelerator,
            "precision": precision,
            "num_images": num_images,
            "epochs_resolved": epochs,
            "images_digest": files_digest(data.items),
        },
    )
    return Plan(
        config=config,
        method_cls=method_cls,
        method_args=method_args,
        transform_args=transform_args,
        data=data,
        recipe=recipe,
        decode_size=decode_size,
        decode=decode,
        accelerator=accelerator,
        precision=precision,
        world_size=world_size,
        num_workers=num_workers,
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        model_family=family,
        optimizer=optimizer,
        base_lr=base_lr,
        lr=lr,
        weight_decay=weight_decay,
        fingerprint=fingerprint,
    )


def _decode_size(
    value: int | str, recipe: list[ViewConfig], image_size: tuple[int, int], data: DataListing
) -> tuple[int, int]:
    """The size the images are decoded at (the ``decode_size`` option ``value``), logged
    with the reason."""
    side = data.probe_short_side() if value == "auto" else None
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


def auto_epochs(steps_per_epoch: int) -> int:
    """Epochs for ``epochs="auto"``: enough for about 50,000 optimizer steps, at least 100
    epochs (large datasets: ImageNet gets 100) and at most 1,000 (small ones: CIFAR-10 at
    batch 512 gets 512)."""
    steps_per_epoch = max(1, steps_per_epoch)
    lo, hi = AUTO_EPOCHS
    return max(lo, min(hi, math.ceil(AUTO_STEPS / steps_per_epoch)))


def load_resume(config: TrainConfig, fingerprint: dict[str, Any]) -> dict[str, Any]:
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


def load_init_weights(path: str) -> dict[str, Any]:
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
