#!/usr/bin/env python3
"""Quality benchmark: every registered SSL method on the same budget, one table.

Each row pretrains a CIFAR-stem ResNet (``tools/quality_models.py``, the same wrapper class
and seed-0 initial weights for ours and the peer ``lightly-train==0.18.0``) on a class-
balanced subset of ``../shared/data/cifar10-train`` at 32x32 px, in a subprocess of the
implementation's own interpreter, and is then scored on frozen features of held-out images
that no run trains on (``tools/quality_eval.py``): weighted kNN top-1 at k=200 and k=20 and
a linear probe. The kNN bank and the probe's training set are the training images with
their folder labels.

Rows (``--methods`` picks methods; a method adds its rows):

* every method in ``lt_methods.list_methods()`` (and the planned ones, shown as skipped
  until they are registered) with our defaults on the base model;
* ``simclr``: also our SimCLR with the peer's optimizer settings (SGD lr 0.3 per 256
  images, weight decay 1e-4), and the peer's SimCLR;
* ``dino``: also the peer's DINO (both with the same local views: 6 of 14 px);
* ``distillation``: our distillation into the smaller student model with our DINO run as
  the teacher, the same student trained with our SimCLR (distillation must beat it), and
  the peer's distillation (v3, its default) with the same teacher: 0.18 accepts a model
  wrapper object as ``method_args.teacher``, so no download is needed.
* floors: raw pixels, the untrained seed-0 base and student models.

Results go to ``WORK_DIR/results.json`` and ``WORK_DIR/results.md``. A row whose settings
equal those of a row in an earlier ``results.json`` of the same work dir is reused (not
retrained) unless ``--force``, so a long table can be built in pieces.

Usage (from the repository root; prefix with ``nice -n 10`` on a shared machine)::

    .venv/bin/python tools/quality_benchmark.py                           # full table
    .venv/bin/python tools/quality_benchmark.py --methods simclr --skip-peer
    .venv/bin/python tools/quality_benchmark.py --epochs 1 --limit-images 200  # smoke

Only the standard library is imported at module import time: the same file runs inside
the peer's venv as the training worker (``--worker SPEC.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import quality_eval as qe
import quality_rows as qr

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CIFAR_DIR = REPO_ROOT.parent / "shared" / "data" / "cifar10-train"
DEFAULT_WORK_DIR = Path("/tmp/lt_quality")
DEFAULT_OURS_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
DEFAULT_PEER_PYTHON = Path("/work/peer-venv/bin/python")
PEER_HINT = (
    "create it with: uv venv -p 3.11 /work/peer-venv && VIRTUAL_ENV=/work/peer-venv "
    "uv pip install lightly-train==0.18.0 torch==2.14.1 torchvision==0.29.1"
)


# --------------------------------------------------------------------------------------
# Training worker: runs inside the implementation's own interpreter.
# --------------------------------------------------------------------------------------


def run_worker(spec_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    result: dict[str, Any] = {"row": spec["row"]}
    result_path = Path(spec["result_path"])
    try:
        import quality_models as qm
        import torch
        import torchvision

        import lightly_train
    except Exception as ex:
        result["error"] = f"cannot import in {sys.executable}: {type(ex).__name__}: {ex}"
        result_path.write_text(json.dumps(result, indent=2))
        print(result["error"], file=sys.stderr)
        return 2

    result["versions"] = {
        "python": platform.python_version(),
        "lightly_train": getattr(lightly_train, "__version__", "unknown"),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torch_num_threads": torch.get_num_threads(),
    }
    wrapper = qm.build_wrapper(spec["model"], init_weights=Path(spec["init_weights"]))
    kwargs = dict(spec["train_kwargs"])
    teacher = spec.get("teacher")
    if teacher is not None:
        method_args = dict(kwargs.get("method_args") or {})
        if teacher["source"] == "out":
            method_args["teacher"] = teacher["out"]
        else:
            method_args["teacher"] = qm.build_wrapper(
                teacher["model"], init_weights=Path(teacher["weights"])
            )
        kwargs["method_args"] = method_args
    print(f"[worker] {spec['row']}: lightly_train.train({kwargs})", flush=True)

    start = time.perf_counter()
    lightly_train.train(model=wrapper, **kwargs)
    end = time.perf_counter()
    result["train_wall_s"] = end - start
    if "first" in qm.STEP_TIMES:
        result["setup_s"] = qm.STEP_TIMES["first"] - start
        result["steps_wall_s"] = qm.STEP_TIMES["last"] - qm.STEP_TIMES["first"]
    exported = Path(kwargs["out"]) / "exported_models" / "exported_last.pt"
    result["exported"] = str(exported) if exported.is_file() else None
    if result["exported"] is None:
        result["error"] = f"training finished but {exported} does not exist"
    result_path.write_text(json.dumps(result, indent=2))
    print(f"[worker] done in {result['train_wall_s']:.1f} s", flush=True)
    return 0 if result["exported"] else 3


def run_training(row: dict[str, Any], args: argparse.Namespace, spec: dict[str, Any]) -> dict:
    """Train one row in a subprocess; returns the worker's result (or an ``error``)."""
    impl = row["impl"]
    python = Path(args.ours_python if impl == "ours" else args.peer_python)
    run_dir = args.work_dir / "runs" / row["id"]
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "row": row["id"], "result_path": str(run_dir / "worker_result.json")}
    spec_path = run_dir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    result_path = Path(spec["result_path"])
    result_path.unlink(missing_ok=True)
    log_path = run_dir / "train.log"
    if not python.is_file():
        hint = PEER_HINT if impl == "peer" else "run `uv sync` in the repository root"
        return {"error": f"interpreter not found: {python} ({hint})"}

    env = dict(os.environ)
    env["LIGHTLY_TRAIN_EVENTS_DISABLED"] = "1"  # peer: no usage analytics over the network
    env["LIGHTLY_TRAIN_CACHE_DIR"] = str(args.work_dir / "cache" / impl)
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [str(python), str(Path(__file__).resolve()), "--worker", str(spec_path)]
    print(f"  [{row['id']}] training ... (log: {log_path})", flush=True)
    start = time.perf_counter()
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log_path.open("w") as log:
        proc = subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=run_dir, check=False
        )
    elapsed = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    result["subprocess_wall_s"] = elapsed
    # CPU seconds of the worker and its loader processes: on a shared machine a steadier
    # measure of the work than wall time (an idle 2-core machine needs about half of it).
    result["subprocess_cpu_s"] = (usage.ru_utime - usage_before.ru_utime) + (
        usage.ru_stime - usage_before.ru_stime
    )
    result["log"] = str(log_path)
    if proc.returncode != 0 and "error" not in result:
        result["error"] = f"worker exited with code {proc.returncode}"
    if "error" in result:
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        print(f"  [{row['id']}] FAILED: {result['error']}", file=sys.stderr)
        print("    " + "\n    ".join(tail), file=sys.stderr)
    else:
        print(f"  [{row['id']}] train() {result['train_wall_s']:.1f} s", flush=True)
    return result


# --------------------------------------------------------------------------------------
# Orchestration.
# --------------------------------------------------------------------------------------


def registered_methods(python: Path) -> list[str]:
    """``lt_methods.list_methods()`` as seen by our training interpreter."""
    code = "import json, lt_methods; print(json.dumps(lt_methods.list_methods()))"
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(
            f"error: cannot list our methods with {python}: {proc.stderr.strip()[-500:]} "
            "(run `uv sync` in the repository root, or pass --ours-python)"
        )
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


#: Run-config keys that must match for an earlier row outside this invocation's plan to
#: stay in the table (the rows of other methods, e.g. after ``--methods dino``).
SAME_TABLE_KEYS = (
    "train_images", "heldout_images", "image_size", "epochs", "batch_size", "accelerator",
    "precision", "models", "knn", "linear_probe",
)  # fmt: skip


def load_results(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
    return data


def carried_rows(
    earlier: dict[str, Any], config: dict[str, Any], planned: set[str]
) -> list[dict[str, Any]]:
    """Rows of the ``earlier`` results that this invocation did not plan, kept when the
    earlier table had the same budget, split, models and evaluation (else they belong to
    another table)."""
    old_config = earlier.get("config", {})
    if any(old_config.get(key) != config.get(key) for key in SAME_TABLE_KEYS):
        return []
    return [
        {**r, "reused": True}
        for r in earlier.get("rows", [])
        if r.get("id") not in planned and qr.ok(r)
    ]


def evaluate_row(row: dict[str, Any], args: argparse.Namespace, data: dict[str, Any]) -> None:
    import quality_models as qm
    import torch

    model = qm.build_model(args.models[row["model"]])
    model.load_state_dict(torch.load(row["exported"], map_location="cpu", weights_only=True))
    wrapper = qm.CifarResNetWrapper(model)
    row.update(
        qe.scores(
            qe.embed(wrapper, data["train_x"]),
            data["train_y"],
            qe.embed(wrapper, data["heldout_x"]),
            data["heldout_y"],
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = qr.parse_args(
        argv, DEFAULT_CIFAR_DIR, DEFAULT_WORK_DIR, DEFAULT_OURS_PYTHON, DEFAULT_PEER_PYTHON
    )
    qr.ensure_torch(DEFAULT_OURS_PYTHON)
    import quality_models as qm
    import torch

    t_start = time.perf_counter()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    plan = qe.plan_split(args.cifar_dir, args.limit_images // 10, args.heldout_per_class)
    data_dir = args.work_dir / "data"
    print(f"Preparing data in {data_dir} from {args.cifar_dir} ...", flush=True)
    qe.materialize(args.cifar_dir, data_dir, plan)
    classes = sorted(plan["train"])

    registered = registered_methods(args.ours_python)
    qr.check_methods(args, registered)
    rows = qr.plan_rows(args, registered)
    init_paths = {}
    for name, spec in args.models.items():
        # Identical starting weights for both sides and the random-init floor, saved once
        # so that differing torch versions in the two venvs cannot change them.
        init_paths[name] = args.work_dir / f"init_{name}_{qr.spec_tag(spec)}.pt"
        torch.save(qm.build_model(spec, seed=0).state_dict(), init_paths[name])

    results_path = args.work_dir / "results.json"
    earlier = load_results(results_path)
    previous = {r["id"]: r for r in earlier.get("rows", []) if "id" in r}
    done: dict[str, dict[str, Any]] = {}
    for row in rows:
        row["settings"] = qr.row_settings(row, args, len(classes) * (args.limit_images // 10))
        if row.get("skip"):
            continue
        teacher = None
        if row.get("teacher"):
            teacher_row = done.get("dino")
            if not teacher_row or not teacher_row.get("exported") or teacher_row.get("error"):
                row["skip"] = "needs our DINO row as its teacher: add dino to --methods"
                continue
            teacher_path = Path(teacher_row["exported"])
            if not teacher_path.is_file():
                row["skip"] = f"teacher export {teacher_path} is gone: rerun the dino row"
                continue
            source = "object" if row["impl"] == "peer" else args.teacher_source
            teacher = {
                "model": args.models["base"],
                "weights": str(teacher_path),
                "out": str(teacher_path.parents[1]),
                "source": source,
            }
            row["settings"]["teacher"] = {
                "digest": qm.file_digest(teacher_path),
                "source": source,
                "model": qr.model_label(args.models["base"]),
            }
        old = previous.get(row["id"])
        if not args.force and old and old.get("settings") == row["settings"] and qr.ok(old):
            print(f"  [{row['id']}] reused from {old.get('measured_at')}", flush=True)
            row.update(old)
            row["reused"] = True
            done[row["id"]] = row
            continue
        if row["id"] not in args.selected:
            continue
        spec = {
            "model": args.models[row["model"]],
            "init_weights": str(init_paths[row["model"]]),
            "train_kwargs": qr.train_kwargs(
                row, args, data_dir / "train", args.work_dir / "runs" / row["id"] / "out"
            ),
            "teacher": teacher,
        }
        result = run_training(row, args, spec)
        row.update(result)
        row["measured_at"] = time.strftime("%Y-%m-%d %H:%M")
        n_images = row["settings"]["train_images"]
        if "train_wall_s" in row:
            row["images_per_s"] = n_images * args.epochs / row["train_wall_s"]
            if row.get("steps_wall_s"):
                row["images_per_s_steps"] = n_images * args.epochs / row["steps_wall_s"]
        done[row["id"]] = row

    print("Evaluating frozen features ...", flush=True)
    data = {}
    data["train_x"], data["train_y"] = qe.load_split(data_dir / "train", classes)
    data["heldout_x"], data["heldout_y"] = qe.load_split(data_dir / "heldout", classes)
    for row in rows:
        if row["id"] in done and not row.get("reused") and row.get("exported"):
            evaluate_row(row, args, data)
    floors = qr.floors(args, data, init_paths)
    config = qr.run_config(args, plan, torch.__version__)
    results = {
        "config": config,
        # Every planned row that was trained, reused, skipped or failed; a row that was
        # neither selected nor found in the earlier file with the same settings is left
        # out. Earlier rows of methods outside this plan stay (same table only).
        "rows": [r for r in rows if r["id"] in done or r.get("skip")]
        + carried_rows(earlier, config, {r["id"] for r in rows}),
        "floors": floors,
        "total_wall_s": time.perf_counter() - t_start,
    }
    results_path.write_text(json.dumps(results, indent=2))
    table = qr.markdown_table(results)
    (args.work_dir / "results.md").write_text(table)
    print()
    print(table)
    print(f"Results: {results_path} (total {results['total_wall_s']:.0f} s)")
    return 1 if any(r.get("error") for r in results["rows"]) else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(run_worker(Path(sys.argv[2])))
    sys.exit(main())
