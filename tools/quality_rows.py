"""Rows, settings, command line and table of the quality benchmark (standard library only).

A row is one training run: which implementation (``ours`` or the ``peer``), which method,
which model (``base`` or the smaller ``student``), and the options that differ from the
method's defaults. ``row_settings`` is what must be equal for an earlier result to be
reused.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
from pathlib import Path
from typing import Any

import quality_eval as qe

#: Methods the issue asks for; a name not (yet) registered in lt_methods gets a row that
#: says so. Registered methods not listed here are benchmarked too.
EXPECTED_METHODS = (
    "simclr",
    "dino",
    "byol",
    "mocov2",
    "mocov3",
    "vicreg",
    "barlowtwins",
    "swav",
    "densecl",
    "distillation",
)
#: Methods the peer 0.18 has that we compare with.
PEER_METHODS = ("simclr", "dino", "distillation")
#: The peer's SimCLR optimizer settings (SGD, lr per 256 images, weight decay).
PEER_SIMCLR_OPTIM = {"lr": 0.3, "weight_decay": 1e-4}
#: DINO local views for both sides: our default (the paper's 96 px at 224 scaled to 32 px,
#: round(32 * 96 / 224) = 14); the peer keeps 96 px at any image size unless told.
DINO_LOCAL_VIEW = {"view_size": [14, 14], "num_views": 6}
DEFAULT_EPOCHS = 10
DEFAULT_IMAGES = 5000
DEFAULT_BASE = "2,2,2,2:16"
DEFAULT_STUDENT = "1,1,1,1:16"


def spec_tag(spec: dict[str, Any]) -> str:
    return "l" + "".join(str(n) for n in spec["layers"]) + f"w{spec['width']}"


def model_label(spec: dict[str, Any]) -> str:
    return f"ResNet-{2 + 2 * sum(spec['layers'])} w{spec['width']}"


def parse_model(text: str, flag: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    try:
        layers_text, width_text = text.split(":")
        layers = [int(n) for n in layers_text.split(",")]
        width = int(width_text)
    except ValueError:
        parser.error(f"{flag}: expected BLOCKS:WIDTH such as 2,2,2,2:16, got {text!r}")
    if not layers or min(layers) < 1 or width < 1:
        parser.error(f"{flag}: blocks per stage and width must be >= 1, got {text!r}")
    return {"layers": layers, "width": width}


def plan_rows(args: argparse.Namespace, registered: list[str]) -> list[dict[str, Any]]:
    """All rows of the table in order; sets ``args.selected`` (the row ids to train now)."""
    methods = list(EXPECTED_METHODS) + sorted(set(registered) - set(EXPECTED_METHODS))
    rows: list[dict[str, Any]] = []

    def add(row_id: str, impl: str, method: str, model: str = "base", **extra: Any) -> None:
        rows.append({"id": row_id, "impl": impl, "method": method, "model": model, **extra})

    for m in methods:
        if m == "distillation":
            add("distillation", "ours", m, "student", teacher=True)
            add(
                "simclr-student",
                "ours",
                "simclr",
                "student",
                note="distillation baseline: the student trained with SimCLR alone",
            )
            add(
                "peer-distillation",
                "peer",
                m,
                "student",
                teacher=True,
                note="peer 0.18 distillation (v3) with our DINO teacher as a wrapper object",
            )
            continue
        add(m, "ours", m)
        if m == "simclr":
            add(
                "simclr-peer-hp",
                "ours",
                m,
                optim="sgd",
                optim_args=dict(PEER_SIMCLR_OPTIM),
                note="our SimCLR with the peer's optimizer settings",
            )
        if m in PEER_METHODS:
            add(f"peer-{m}", "peer", m)
    for row in rows:
        if row["method"] == "dino":
            row["transform_args"] = {"local_view": dict(DINO_LOCAL_VIEW)}
        if row["impl"] == "ours" and row["method"] not in registered:
            row["skip"] = (
                f"'{row['method']}' is not registered in lt_methods (list_methods() = "
                f"{', '.join(registered)})"
            )
    args.selected = {
        r["id"]
        for r in rows
        if r["method"] in args.methods
        or (r["id"] == "simclr-student" and "distillation" in args.methods)
        if not (r["impl"] == "peer" and args.skip_peer)
        if not (r["impl"] == "ours" and args.skip_ours)
    }
    if args.rows:
        args.selected &= set(args.rows)
    return rows


def train_kwargs(row: dict[str, Any], args: argparse.Namespace, data: Path, out: Path) -> dict:
    transform_args: dict[str, Any] = {"image_size": [qe.IMAGE_SIZE, qe.IMAGE_SIZE]}
    transform_args.update(row.get("transform_args") or {})
    kwargs: dict[str, Any] = {
        "out": str(out),
        "data": str(data),
        "method": row["method"],
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "accelerator": args.accelerator,
        "devices": 1,
        "precision": args.precision,
        "seed": 0,
        "transform_args": transform_args,
        "overwrite": True,
    }
    if row.get("method_args"):
        kwargs["method_args"] = dict(row["method_args"])
    if row.get("optim"):
        kwargs["optim"] = row["optim"]
    if row.get("optim_args"):
        kwargs["optim_args"] = dict(row["optim_args"])
    return kwargs


def row_settings(row: dict[str, Any], args: argparse.Namespace, n_train: int) -> dict[str, Any]:
    """Everything a row's result depends on (paths left out); equal settings -> reusable."""
    kwargs = train_kwargs(row, args, Path("."), Path("."))
    del kwargs["out"], kwargs["data"]
    return {
        "train_kwargs": kwargs,
        "model": args.models[row["model"]],
        "train_images": n_train,
        "heldout_per_class": args.heldout_per_class,
    }


def ok(row: dict[str, Any]) -> bool:
    exported = row.get("exported")
    return not row.get("error") and bool(exported) and Path(exported).is_file() and "knn200" in row


def floors(args: argparse.Namespace, data: dict[str, Any], init_paths: dict[str, Path]) -> dict:
    import quality_models as qm

    out = {
        "pixels": {
            "description": "raw normalized 32x32x3 pixels",
            **qe.scores(
                data["train_x"].flatten(1),
                data["train_y"],
                data["heldout_x"].flatten(1),
                data["heldout_y"],
            ),
        }
    }
    for name, spec in args.models.items():
        wrapper = qm.build_wrapper(spec, init_weights=init_paths[name])
        out[f"random-{name}"] = {
            "description": f"untrained seed-0 {model_label(spec)} ({name})",
            **qe.scores(
                qe.embed(wrapper, data["train_x"]),
                data["train_y"],
                qe.embed(wrapper, data["heldout_x"]),
                data["heldout_y"],
            ),
        }
    return out


def run_config(args: argparse.Namespace, plan: dict[str, Any], eval_torch: str) -> dict:
    return {
        "train_images": sum(len(v) for v in plan["train"].values()),
        "heldout_images": sum(len(v) for v in plan["heldout"].values()),
        "split": "per class, sorted file names: last heldout_per_class held out, "
        "first train_per_class of the rest trained on (and the kNN bank / probe train set)",
        "image_size": qe.IMAGE_SIZE,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "accelerator": args.accelerator,
        "precision": args.precision,
        "models": {k: {**v, "label": model_label(v)} for k, v in args.models.items()},
        "knn": {"ks": list(qe.KNN_KS), "temperature": qe.KNN_TEMPERATURE},
        "linear_probe": {"steps": qe.PROBE_STEPS, "weight_decay": qe.PROBE_WEIGHT_DECAY},
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "eval_torch": eval_torch,
    }


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def markdown_table(results: dict[str, Any]) -> str:
    cfg, fl = results["config"], results["floors"]
    models = cfg["models"]
    lines = [
        f"CIFAR-10, {cfg['train_images']} training images (also the kNN bank), "
        f"{cfg['heldout_images']} held-out test images, {cfg['image_size']} px, "
        f"{cfg['epochs']} epochs, batch {cfg['batch_size']}, {cfg['accelerator']}; base "
        f"{models['base']['label']}, student {models['student']['label']}.",
        "",
        "| Row | Impl | Method | Model | kNN k=200 | kNN k=20 | Linear | vs floor | "
        "Train s | CPU s | img/s | Notes |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results["rows"]:
        floor = max(fl["pixels"]["knn200"], fl[f"random-{r['model']}"]["knn200"])
        margin = r["knn200"] - floor if "knn200" in r else None
        settings = r.get("settings", {}).get("train_kwargs", {})
        notes = [r.get("note", "")]
        if settings.get("optim_args"):
            notes.append(f"optim_args={settings['optim_args']}")
        if r.get("skip"):
            notes.append(f"skipped: {r['skip']}")
        if r.get("error"):
            notes.append(f"FAILED: {r['error']} (log: {r.get('log')})")
        if r.get("reused"):
            notes.append(f"from an earlier invocation ({r.get('measured_at')})")
        note = "; ".join(n for n in notes if n).replace("|", "/")
        lines.append(
            f"| {r['id']} | {r['impl']} | {r['method']} | {models[r['model']]['label']} | "
            f"{_fmt(r.get('knn200'))} | {_fmt(r.get('knn20'))} | {_fmt(r.get('linear'))} | "
            f"{_fmt(margin, '+.1f')} | {_fmt(r.get('train_wall_s'), '.0f')} | "
            f"{_fmt(r.get('subprocess_cpu_s'), '.0f')} | "
            f"{_fmt(r.get('images_per_s'))} | {note} |"
        )
    for name, f in fl.items():
        lines.append(
            f"| floor: {name} | - | - | - | {_fmt(f['knn200'])} | {_fmt(f['knn20'])} | "
            f"{_fmt(f['linear'])} | | | | | {f['description']} |"
        )
    lines += [
        "",
        "vs floor: kNN k=200 minus the better floor of the row's model (raw pixels or its "
        "untrained seed-0 weights). img/s: training images x epochs / wall time of train(). "
        "CPU s: CPU seconds of the training process and its loader workers.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None, cifar: Path, work: Path, ours: Path, peer: Path) -> Any:
    p = argparse.ArgumentParser(
        description="Pretrain a CIFAR-stem ResNet with every registered SSL method (and the "
        "peer lightly-train 0.18's SimCLR, DINO and distillation) on the same budget; "
        "kNN and linear-probe top-1 on held-out CIFAR-10 images.",
    )
    p.add_argument("--cifar-dir", type=Path, default=cifar, help="default: %(default)s")
    p.add_argument("--work-dir", type=Path, default=work, help="default: %(default)s")
    p.add_argument(
        "--methods",
        default=None,
        help="comma-separated method names (default: every registered method and "
        f"the planned ones: {','.join(EXPECTED_METHODS)})",
    )
    p.add_argument("--rows", default=None, help="train only these row ids (comma-separated)")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="default: %(default)s")
    p.add_argument(
        "--limit-images",
        type=int,
        default=DEFAULT_IMAGES,
        help="training images, class-balanced (default: %(default)s)",
    )
    p.add_argument("--heldout-per-class", type=int, default=200, help="default: %(default)s")
    p.add_argument("--batch-size", type=int, default=128, help="default: %(default)s")
    p.add_argument("--num-workers", type=int, default=2, help="default: %(default)s")
    p.add_argument(
        "--base-model",
        default=DEFAULT_BASE,
        help="blocks per stage:width of the CIFAR-stem ResNet (default: %(default)s "
        "= ResNet-18 at a quarter width)",
    )
    p.add_argument(
        "--student-model",
        default=DEFAULT_STUDENT,
        help="the distillation student (default: %(default)s = ResNet-10)",
    )
    p.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    p.add_argument(
        "--teacher-source",
        default="object",
        choices=["object", "out"],
        help="how our distillation gets the DINO teacher: a wrapper object with "
        "the exported weights, or the DINO run's out folder (default: %(default)s; "
        "the peer always gets the object)",
    )
    p.add_argument("--skip-peer", action="store_true", help="do not train the peer's rows")
    p.add_argument("--skip-ours", action="store_true", help="do not train our rows")
    p.add_argument(
        "--force",
        action="store_true",
        help="retrain selected rows even if an earlier result has the same settings",
    )
    p.add_argument("--ours-python", type=Path, default=ours, help="default: %(default)s")
    p.add_argument("--peer-python", type=Path, default=peer, help="default: %(default)s")
    args = p.parse_args(argv)

    args.models = {
        "base": parse_model(args.base_model, "--base-model", p),
        "student": parse_model(args.student_model, "--student-model", p),
    }
    args.methods = (
        [m.strip().lower() for m in args.methods.split(",") if m.strip()] if args.methods else None
    )
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    if args.methods == []:
        p.error("--methods: give at least one method name")
    for name in ("epochs", "limit_images", "heldout_per_class", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.limit_images % 10:
        p.error("--limit-images must be a multiple of 10 (class-balanced over 10 classes)")
    if args.num_workers < 0:
        p.error("--num-workers must be >= 0")
    args.cifar_dir = args.cifar_dir.resolve()
    args.work_dir = args.work_dir.resolve()
    if args.work_dir == args.cifar_dir or args.cifar_dir in args.work_dir.parents:
        p.error("--work-dir must not be inside --cifar-dir (the data is read only)")
    return args


def check_methods(args: argparse.Namespace, registered: list[str]) -> None:
    """Resolve ``--methods``: default all; unknown names (not planned, not registered) fail."""
    if args.methods is None:
        args.methods = list(EXPECTED_METHODS) + sorted(set(registered) - set(EXPECTED_METHODS))
        return
    valid = sorted(set(EXPECTED_METHODS) | set(registered))
    unknown = [m for m in args.methods if m not in valid]
    if unknown:
        raise SystemExit(f"error: --methods: unknown {unknown}; choose from {','.join(valid)}")


def ensure_torch(venv_python: Path) -> None:
    """Re-run under the repository venv when this interpreter has no torch."""
    if importlib.util.find_spec("torch") is not None:
        return
    if venv_python.is_file() and Path(sys.executable).resolve() != venv_python.resolve():
        os.execv(str(venv_python), [str(venv_python), *sys.argv])
    raise SystemExit(
        f"error: torch is not importable; run this script with {venv_python} after `uv sync`"
    )
