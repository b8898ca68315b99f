#!/usr/bin/env python3
"""Benchmark our lightly-train against the published ``lightly-train==0.18.0``.

Both implementations pretrain the same torchvision ResNet-18 (through the same wrapper
class, defined below, and from the same seed-0 initial weights) with SimCLR and DINO on
a 5,000-image CIFAR-10 bank at 32x32 px on the CPU. Each training run happens in a
subprocess of its own interpreter:

* ours: the repository venv (``.venv/bin/python`` by default),
* peer: a separate venv holding ``lightly-train==0.18.0`` (``/work/peer-venv`` by
  default; create it with
  ``uv venv -p 3.11 /work/peer-venv && VIRTUAL_ENV=/work/peer-venv uv pip install
  lightly-train==0.18.0 torch==2.14.1 torchvision==0.29.1``).

The exported ResNet-18 weights are then evaluated here with plain torch: features are
the global-average-pooled layer4 output (512-d), L2-normalised, and classified with a
weighted kNN (k=200 and k=20, temperature 0.1) of 1,000 held-out query images against
the bank, with labels taken from the class folder names. Two floors are reported as
well: raw pixels, and the untrained seed-0 ResNet-18.

Usage (from the repository root)::

    .venv/bin/python tools/benchmark_cifar.py                     # full benchmark
    .venv/bin/python tools/benchmark_cifar.py --skip-ours         # peer + floors only
    .venv/bin/python tools/benchmark_cifar.py --limit-images 500 --epochs 1   # smoke

Run time on the 2-core CPU machine, per implementation and epoch of the 5,000 images:
about 75 s for SimCLR and 4.5-6 min for DINO (several times longer when other work
shares the CPU, so keep the machine otherwise idle). The full benchmark (10 epochs, both
methods, both implementations) therefore takes about two hours.

A run that skips one side reuses that side's rows from an earlier ``results.json`` in the
same work dir when they were made with the same settings, so the full peer run does not
have to be repeated to compare a new version of ours against it.

Only the standard library is imported at module import time: the same file is run
inside the peer venv as the training worker (``--worker SPEC.json``), and ``--help``
works without torch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CIFAR_DIR = REPO_ROOT.parent / "shared" / "data" / "cifar10-train"
DEFAULT_WORK_DIR = Path("/tmp/lt_bench")
DEFAULT_OURS_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
DEFAULT_PEER_PYTHON = Path("/work/peer-venv/bin/python")

IMAGE_SIZE = 32
BANK_PER_CLASS = 500
QUERY_PER_CLASS = 100
# Our DINO default local view is the 224-px recipe's 96 px scaled to the image size:
# round(32 * 96 / 224) = 14. The peer keeps 96-px local views unless told otherwise,
# so it is given the same size explicitly.
LOCAL_VIEW_SIZE = round(IMAGE_SIZE * 96 / 224)
NUM_LOCAL_VIEWS = 6
KNN_KS = (200, 20)
KNN_TEMPERATURE = 0.1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMPLS = ("ours", "peer")
METHODS = ("simclr", "dino")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


# --------------------------------------------------------------------------------------
# The model wrapper shared by both implementations (torch imported lazily).
# --------------------------------------------------------------------------------------

_WRAPPER_CLS: Any = None
# Wall-clock times of the first and last forward pass that builds a graph (a training
# step), over all wrapper instances: DINO trains a deep copy of the wrapper, so the
# times cannot live on the instance. Used for the "excluding setup" throughput only.
STEP_TIMES: dict[str, float] = {}


def wrapper_class() -> Any:
    """Return the ResNet-18 wrapper class, defining it on first use.

    The wrapper follows the model-wrapper protocol that both implementations accept:
    ``get_model``, ``forward_features`` -> ``{"features": (B, 512, H, W)}`` (everything up
    to and including layer4, no avgpool/fc), ``forward_pool`` -> ``{"pooled_features":
    (B, 512, 1, 1)}`` and ``feature_dim``.
    """
    global _WRAPPER_CLS
    if _WRAPPER_CLS is not None:
        return _WRAPPER_CLS

    import torch
    from torch import nn

    class ResNet18Wrapper(nn.Module):
        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self._model = model
            self._features = nn.Sequential(
                model.conv1,
                model.bn1,
                model.relu,
                model.maxpool,
                model.layer1,
                model.layer2,
                model.layer3,
                model.layer4,
            )
            self._pool = nn.AdaptiveAvgPool2d(1)

        def get_model(self) -> nn.Module:
            return self._model

        def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            if torch.is_grad_enabled() and not torch.compiler.is_compiling():
                now = time.perf_counter()
                STEP_TIMES.setdefault("first", now)
                STEP_TIMES["last"] = now
            return {"features": self._features(x)}

        def forward_pool(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {"pooled_features": self._pool(x["features"])}

        def feature_dim(self) -> int:
            return 512

    # Publish the class under its plain name in this module so that pickle can find it:
    # the peer's Lightning checkpoints pickle the training module, wrapper included.
    ResNet18Wrapper.__qualname__ = "ResNet18Wrapper"
    globals()["ResNet18Wrapper"] = ResNet18Wrapper
    _WRAPPER_CLS = ResNet18Wrapper
    return ResNet18Wrapper


def build_resnet18(init_weights: Path | None = None, seed: int = 0) -> Any:
    """A plain torchvision ``resnet18()``: seed-``seed`` init, or ``init_weights``."""
    import torch
    from torchvision.models import resnet18

    torch.manual_seed(seed)
    model = resnet18()
    if init_weights is not None:
        model.load_state_dict(torch.load(init_weights, map_location="cpu", weights_only=True))
    return model


def build_wrapper(init_weights: Path | None = None, seed: int = 0) -> Any:
    return wrapper_class()(build_resnet18(init_weights=init_weights, seed=seed))


# --------------------------------------------------------------------------------------
# Training worker: runs inside the implementation's own interpreter.
# --------------------------------------------------------------------------------------


def run_worker(spec_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    result: dict[str, Any] = {"impl": spec["impl"], "method": spec["train_kwargs"]["method"]}
    result_path = Path(spec["result_path"])

    try:
        import lightly_train
    except Exception as ex:
        result["error"] = (
            f"cannot import lightly_train in {sys.executable}: {type(ex).__name__}: {ex}"
        )
        result_path.write_text(json.dumps(result, indent=2))
        print(result["error"], file=sys.stderr)
        return 2

    import torch
    import torchvision

    result["versions"] = {
        "python": platform.python_version(),
        "lightly_train": getattr(lightly_train, "__version__", "unknown"),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torch_num_threads": torch.get_num_threads(),
    }
    wrapper = build_wrapper(init_weights=Path(spec["init_weights"]))
    kwargs = dict(spec["train_kwargs"])
    print(f"[worker] {spec['impl']}: lightly_train.train({kwargs})", flush=True)

    start = time.perf_counter()
    lightly_train.train(model=wrapper, **kwargs)
    end = time.perf_counter()

    result["train_wall_s"] = end - start
    if "first" in STEP_TIMES:
        result["setup_s"] = STEP_TIMES["first"] - start
        result["steps_wall_s"] = STEP_TIMES["last"] - STEP_TIMES["first"]
    exported = Path(kwargs["out"]) / "exported_models" / "exported_last.pt"
    result["exported"] = str(exported) if exported.is_file() else None
    if result["exported"] is None:
        result["error"] = f"training finished but {exported} does not exist"
    result_path.write_text(json.dumps(result, indent=2))
    print(f"[worker] done in {result['train_wall_s']:.1f} s", flush=True)
    return 0 if result["exported"] else 3


# --------------------------------------------------------------------------------------
# Data preparation.
# --------------------------------------------------------------------------------------


def list_class_images(cifar_dir: Path) -> dict[str, list[str]]:
    if not cifar_dir.is_dir():
        raise SystemExit(f"error: CIFAR-10 folder not found: {cifar_dir} (see --cifar-dir)")
    classes = sorted(p.name for p in cifar_dir.iterdir() if p.is_dir())
    if not classes:
        raise SystemExit(f"error: no class subfolders in {cifar_dir}")
    files = {
        c: sorted(p.name for p in (cifar_dir / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for c in classes
    }
    for c, names in files.items():
        if len(names) < BANK_PER_CLASS + QUERY_PER_CLASS:
            raise SystemExit(
                f"error: class {c!r} in {cifar_dir} has {len(names)} images, "
                f"need {BANK_PER_CLASS + QUERY_PER_CLASS}"
            )
    return files


def prepare_data(cifar_dir: Path, data_dir: Path, bank_per_class: int) -> dict[str, Any]:
    """Copy the bank and query images into ``data_dir`` (the source is never written).

    bank: the first ``bank_per_class`` sorted files of each class (500 by default),
    query: files 500..599 of each class (never in the bank, whatever the limit).
    """
    files = list_class_images(cifar_dir)
    plan = {
        "bank": {c: names[:bank_per_class] for c, names in files.items()},
        "query": {
            c: names[BANK_PER_CLASS : BANK_PER_CLASS + QUERY_PER_CLASS]
            for c, names in files.items()
        },
    }
    manifest_path = data_dir / "manifest.json"
    manifest = {"cifar_dir": str(cifar_dir), "plan": plan}
    if manifest_path.is_file() and json.loads(manifest_path.read_text()) == manifest:
        return plan
    if data_dir.exists():
        shutil.rmtree(data_dir)
    for split, per_class in plan.items():
        for c, names in per_class.items():
            dst = data_dir / split / c
            dst.mkdir(parents=True)
            for name in names:
                shutil.copyfile(cifar_dir / c / name, dst / name)
    manifest_path.write_text(json.dumps(manifest))
    return plan


# --------------------------------------------------------------------------------------
# Training orchestration.
# --------------------------------------------------------------------------------------


def train_kwargs(impl: str, method: str, args: argparse.Namespace, data: Path, out: Path) -> dict:
    transform_args: dict[str, Any] = {"image_size": [IMAGE_SIZE, IMAGE_SIZE]}
    kwargs: dict[str, Any] = {
        "out": str(out),
        "data": str(data),
        "method": method,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "accelerator": "cpu",
        "devices": 1,
        "precision": "32-true",
        "seed": 0,
        "transform_args": transform_args,
        "overwrite": True,
    }
    if impl == "peer" and method == "dino":
        # The peer's global views follow image_size, but its local views stay 96 px
        # unless set: give it our defaults (14 px, 6 local views).
        transform_args["local_view"] = {
            "view_size": [LOCAL_VIEW_SIZE, LOCAL_VIEW_SIZE],
            "num_views": NUM_LOCAL_VIEWS,
        }
    return kwargs


def run_training(
    impl: str, method: str, args: argparse.Namespace, bank_dir: Path, init_weights: Path
) -> dict[str, Any]:
    python = Path(args.ours_python if impl == "ours" else args.peer_python)
    run_dir = args.work_dir / "runs" / f"{impl}_{method}"
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "impl": impl,
        "init_weights": str(init_weights),
        "result_path": str(run_dir / "worker_result.json"),
        "train_kwargs": train_kwargs(impl, method, args, bank_dir, run_dir / "out"),
    }
    spec_path = run_dir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    result_path = Path(spec["result_path"])
    result_path.unlink(missing_ok=True)
    log_path = run_dir / "train.log"
    base: dict[str, Any] = {"impl": impl, "method": method, "log": str(log_path)}
    if not python.is_file():
        hint = (
            "create it with: uv venv -p 3.11 /work/peer-venv && VIRTUAL_ENV=/work/peer-venv "
            "uv pip install lightly-train==0.18.0 torch==2.14.1 torchvision==0.29.1"
            if impl == "peer"
            else "run `uv sync` in the repository root"
        )
        return {**base, "error": f"interpreter not found: {python} ({hint})"}

    env = dict(os.environ)
    env["LIGHTLY_TRAIN_EVENTS_DISABLED"] = "1"  # peer: no usage analytics over the network
    env["LIGHTLY_TRAIN_CACHE_DIR"] = str(args.work_dir / "cache" / impl)
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [str(python), str(Path(__file__).resolve()), "--worker", str(spec_path)]
    print(f"  [{impl} {method}] training ... (log: {log_path})", flush=True)
    start = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=run_dir, check=False
        )
    elapsed = time.perf_counter() - start
    result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    result.update(base)
    result["subprocess_wall_s"] = elapsed
    if proc.returncode != 0 and "error" not in result:
        result["error"] = f"worker exited with code {proc.returncode}"
    if "error" in result:
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        print(f"  [{impl} {method}] FAILED: {result['error']}", file=sys.stderr)
        print("    " + "\n    ".join(tail), file=sys.stderr)
    else:
        print(
            f"  [{impl} {method}] train() {result['train_wall_s']:.1f} s (process {elapsed:.1f} s)",
            flush=True,
        )
    return result


# --------------------------------------------------------------------------------------
# Evaluation (plain torch, in this process).
# --------------------------------------------------------------------------------------


def load_split(split_dir: Path, classes: list[str]) -> tuple[Any, Any]:
    import torch
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    images, labels = [], []
    for label, c in enumerate(classes):
        for path in sorted((split_dir / c).iterdir()):
            with Image.open(path) as im:
                im = im.convert("RGB")
                if im.size != (IMAGE_SIZE, IMAGE_SIZE):
                    im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
                images.append(pil_to_tensor(im))
            labels.append(label)
    x = torch.stack(images).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std, torch.tensor(labels)


def embed(model: Any, x: Any, batch_size: int = 500) -> Any:
    import torch

    wrapper = wrapper_class()(model).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            feats = wrapper.forward_features(x[i : i + batch_size])
            out.append(wrapper.forward_pool(feats)["pooled_features"].flatten(1))
    return torch.cat(out)


def knn_top1(bank: Any, bank_labels: Any, query: Any, query_labels: Any, k: int) -> float:
    """Weighted kNN top-1 accuracy in % (votes exp(cos / T), as in InstDisc / DINO)."""
    import torch
    import torch.nn.functional as F

    bank = F.normalize(bank, dim=1)
    query = F.normalize(query, dim=1)
    k = min(k, len(bank))
    num_classes = int(bank_labels.max()) + 1
    sim, idx = (query @ bank.T).topk(k, dim=1)
    weights = (sim / KNN_TEMPERATURE).exp()
    votes = torch.zeros(len(query), num_classes).scatter_add_(1, bank_labels[idx], weights)
    return 100.0 * (votes.argmax(1) == query_labels).float().mean().item()


def knn_scores(bank: Any, bank_labels: Any, query: Any, query_labels: Any) -> dict[str, float]:
    return {f"knn{k}": knn_top1(bank, bank_labels, query, query_labels, k) for k in KNN_KS}


# --------------------------------------------------------------------------------------
# Reporting.
# --------------------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".1f") -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, spec)
    )


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def print_table(results: dict[str, Any]) -> None:
    cfg = results["config"]
    print()
    print(
        f"CIFAR-10 SSL benchmark: {cfg['bank_images']} bank / {cfg['query_images']} query "
        f"images, {cfg['image_size']}x{cfg['image_size']} px, {cfg['epochs']} epochs, "
        f"batch {cfg['batch_size']}, {cfg['num_workers']} workers, CPU"
    )
    header = (
        f"{'method':<8} {'impl':<6} {'img/s':>8} {'img/s*':>8} {'train s':>9} "
        f"{'kNN200 %':>9} {'kNN20 %':>8}  note"
    )
    print(header)
    print("-" * len(header))
    for method in cfg["methods"]:
        rows = {r["impl"]: r for r in results["runs"] if r["method"] == method}
        for impl in IMPLS:
            r = rows.get(impl)
            if r is None:
                continue
            note = r.get("error", "")
            if r.get("reused"):
                when = r.get("measured_at")
                note = f"from an earlier run{f' ({when})' if when else ''} {note}".strip()
            print(
                f"{method:<8} {impl:<6} {fmt(r.get('images_per_s')):>8} "
                f"{fmt(r.get('images_per_s_steps')):>8} {fmt(r.get('train_wall_s')):>9} "
                f"{fmt(r.get('knn200')):>9} {fmt(r.get('knn20')):>8}  {note}"
            )
        if "ours" in rows and "peer" in rows:
            o, p = rows["ours"], rows["peer"]
            print(
                f"{method:<8} {'o/p':<6} "
                f"{fmt(ratio(o.get('images_per_s'), p.get('images_per_s')), '.2f'):>8} "
                f"{fmt(ratio(o.get('images_per_s_steps'), p.get('images_per_s_steps')), '.2f'):>8} "
                f"{'':>9} {fmt(ratio(o.get('knn200'), p.get('knn200')), '.3f'):>9} "
                f"{fmt(ratio(o.get('knn20'), p.get('knn20')), '.3f'):>8}  ratio ours/peer"
            )
    for name, floor in results["floors"].items():
        print(
            f"{'floor':<8} {name:<6} {'':>8} {'':>8} {'':>9} "
            f"{fmt(floor['knn200']):>9} {fmt(floor['knn20']):>8}  {floor['description']}"
        )
    print()
    print(
        "img/s = bank images x epochs / wall time of the train() call (source images, not "
        "views); img/s* = the same over the span from the first to the last training step "
        "(excludes setup and export)."
    )


def config_key(cfg: dict[str, Any]) -> dict[str, Any]:
    keys = ("bank_images", "query_images", "epochs", "batch_size", "num_workers", "image_size")
    return {k: cfg.get(k) for k in keys}


# --------------------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Pretrain a torchvision ResNet-18 with SimCLR and DINO on 5,000 CIFAR-10 images "
            "at 32x32 on the CPU, with our lightly-train and with lightly-train==0.18.0 "
            "(the peer, from its own venv), and compare images/s and kNN top-1 accuracy."
        ),
        epilog="Example: .venv/bin/python tools/benchmark_cifar.py --skip-ours",
    )
    parser.add_argument(
        "--cifar-dir",
        type=Path,
        default=DEFAULT_CIFAR_DIR,
        help="CIFAR-10 train folder with one subfolder per class, read only (default: %(default)s)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK_DIR,
        help="where the bank/query copies, runs and results.json go (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=int, default=10, help="default: %(default)s")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help="comma-separated subset of simclr,dino (default: %(default)s)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="default: %(default)s")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=2,
        help="data loader workers for both sides (default: %(default)s)",
    )
    parser.add_argument(
        "--limit-images",
        type=int,
        default=None,
        help="use only this many bank images (split evenly over the "
        "classes) for a quick smoke test; the query set is unchanged",
    )
    parser.add_argument("--skip-ours", action="store_true", help="do not train ours")
    parser.add_argument("--skip-peer", action="store_true", help="do not train the peer")
    parser.add_argument(
        "--ours-python",
        type=Path,
        default=DEFAULT_OURS_PYTHON,
        help="interpreter that has our lightly_train (default: %(default)s)",
    )
    parser.add_argument(
        "--peer-python",
        type=Path,
        default=DEFAULT_PEER_PYTHON,
        help="interpreter that has lightly-train==0.18.0 (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        parser.error(f"--methods: unknown {bad or methods}; choose from {','.join(METHODS)}")
    args.methods = methods
    if args.epochs < 1:
        parser.error("--epochs must be >= 1")
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    if args.num_workers < 0:
        parser.error("--num-workers must be >= 0")
    if args.limit_images is not None:
        if not 10 <= args.limit_images <= 10 * BANK_PER_CLASS:
            parser.error(f"--limit-images must be between 10 and {10 * BANK_PER_CLASS}")
    args.cifar_dir = args.cifar_dir.resolve()
    args.work_dir = args.work_dir.resolve()
    if args.work_dir == args.cifar_dir or args.cifar_dir in args.work_dir.parents:
        parser.error("--work-dir must not be inside --cifar-dir (the data is read only)")
    return args


def ensure_torch() -> None:
    """Re-run under the repository venv when this interpreter has no torch."""
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        return
    venv_python = DEFAULT_OURS_PYTHON
    if venv_python.is_file() and Path(sys.executable).resolve() != venv_python.resolve():
        os.execv(str(venv_python), [str(venv_python), *sys.argv])
    raise SystemExit(
        "error: torch is not importable; run this script with the repository venv "
        f"({venv_python}) after `uv sync`"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_torch()
    import torch

    t_start = time.perf_counter()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    bank_per_class = (args.limit_images or 10 * BANK_PER_CLASS) // 10
    data_dir = args.work_dir / "data"
    print(f"Preparing data in {data_dir} from {args.cifar_dir} ...", flush=True)
    plan = prepare_data(args.cifar_dir, data_dir, bank_per_class)
    classes = sorted(plan["bank"])
    bank_dir, query_dir = data_dir / "bank", data_dir / "query"
    n_bank = sum(len(v) for v in plan["bank"].values())
    n_query = sum(len(v) for v in plan["query"].values())

    # Identical starting weights for both sides (and the random-init floor), saved once so
    # that differing torch versions in the two venvs cannot change the initialisation.
    init_weights = args.work_dir / "resnet18_seed0_init.pt"
    torch.save(build_resnet18(seed=0).state_dict(), init_weights)

    config = {
        "bank_images": n_bank,
        "query_images": n_query,
        "classes": classes,
        "image_size": IMAGE_SIZE,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "methods": args.methods,
        "dino_local_view_size": LOCAL_VIEW_SIZE,
        "dino_num_local_views": NUM_LOCAL_VIEWS,
        "knn_temperature": KNN_TEMPERATURE,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "eval_torch": torch.__version__,
    }
    results_path = args.work_dir / "results.json"
    previous: dict[str, Any] = {}
    if results_path.is_file():
        try:
            previous = json.loads(results_path.read_text())
        except json.JSONDecodeError:
            previous = {}

    impls = [
        i
        for i in IMPLS
        if not (i == "ours" and args.skip_ours) and not (i == "peer" and args.skip_peer)
    ]
    runs: list[dict[str, Any]] = []
    for method in args.methods:
        for impl in impls:
            r = run_training(impl, method, args, bank_dir, init_weights)
            r["measured_at"] = time.strftime("%Y-%m-%d %H:%M")
            if "train_wall_s" in r:
                # Throughput counts source images (each yields 2 views for SimCLR and
                # 2 global + 6 local views for DINO), not views. A loader that drops the
                # last partial batch still counts the bank size per epoch.
                r["images_per_s"] = n_bank * args.epochs / r["train_wall_s"]
                if r.get("steps_wall_s"):
                    r["images_per_s_steps"] = n_bank * args.epochs / r["steps_wall_s"]
            runs.append(r)
    # Rows this run did not measure (a skipped side, or a method left out) come from an
    # earlier run with the same settings, so one side or one method can be re-measured
    # without re-running the rest.
    if previous and config_key(previous.get("config", {})) == config_key(config):
        for old in previous.get("runs", []):
            not_measured = old["impl"] not in impls or old["method"] not in args.methods
            if not_measured and "error" not in old:
                runs.append({**old, "reused": True})
        config["methods"] = [
            m for m in METHODS if m in args.methods or any(r["method"] == m for r in runs)
        ]

    print("Evaluating (kNN on frozen features) ...", flush=True)
    bank_x, bank_y = load_split(bank_dir, classes)
    query_x, query_y = load_split(query_dir, classes)
    for r in runs:
        if r.get("reused") or not r.get("exported"):
            continue
        model = build_resnet18()
        state = torch.load(r["exported"], map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        r.update(knn_scores(embed(model, bank_x), bank_y, embed(model, query_x), query_y))

    floors = {
        "pixels": {
            "description": "raw normalised 32x32x3 pixels",
            **knn_scores(bank_x.flatten(1), bank_y, query_x.flatten(1), query_y),
        },
        "random": {
            "description": "untrained seed-0 ResNet-18",
            **knn_scores(
                embed(build_resnet18(init_weights), bank_x),
                bank_y,
                embed(build_resnet18(init_weights), query_x),
                query_y,
            ),
        },
    }
    results = {
        "config": config,
        "runs": runs,
        "floors": floors,
        "total_wall_s": time.perf_counter() - t_start,
    }
    results_path.write_text(json.dumps(results, indent=2))
    print_table(results)
    print(f"Results: {results_path} (total {results['total_wall_s']:.0f} s)")
    return 1 if any("error" in r for r in runs) else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(run_worker(Path(sys.argv[2])))
    sys.exit(main())
