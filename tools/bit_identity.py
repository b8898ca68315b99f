"""Bit-identity check for refactors: six fixed-seed CPU runs, the hash of each exported
model and every per-step loss, written to OUT/result.json.

Run it with the code before a change (e.g. a ``git worktree`` of the old commit with its
own ``uv sync``) and after it, then compare the two results:

    uv run python tools/bit_identity.py /tmp/before      # in the old checkout
    uv run python tools/bit_identity.py /tmp/after       # in the new one
    uv run python tools/bit_identity.py --compare /tmp/before /tmp/after

Runs: the README quick start (Python API), DINO with 2 workers, 2 epochs with a checkpoint
every 4 steps, the same run SIGKILLed at step 11 and resumed, shards with gradient
accumulation and a RAM cache, files with a RAM cache. About 3-4 minutes on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "quickstart_data"
RESUMED = ("epochs=2", "batch_size=32", "num_workers=1", "log_every_n_steps=1")
RESUMED += ("checkpoint_every_n_steps=4",)


def _command(out: Path, *options: str) -> list[str]:
    defaults = [
        f"out={out}",
        f"data={DATA}",
        "model=torchvision/resnet18",
        "method=simclr",
        "epochs=1",
        "batch_size=64",
        "num_workers=0",
        "accelerator=cpu",
        "transform_args.image_size=[32,32]",
        "progress_bar=false",
    ]
    given = {o.split("=", 1)[0] for o in options}
    kept = [d for d in defaults if d.split("=", 1)[0] not in given]
    return [sys.executable, "-m", "lightly_train._cli", "train", *kept, *options]


def _train(out: Path, *options: str) -> None:
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run(_command(out, *options), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])


def _digest(out: Path) -> dict[str, Any]:
    state = torch.load(out / "exported_models" / "exported_last.pt", weights_only=True)
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = {r["step"]: r["loss"] for r in records if "loss" in r}
    return {"weights": h.hexdigest()[:20], "losses": losses}


def _killed_and_resumed(out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.Popen(
        _command(out, *RESUMED), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    metrics = out / "metrics.jsonl"
    while not (metrics.is_file() and metrics.read_text().count('"loss"') >= 11):
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    resumed = subprocess.run(
        _command(out, *RESUMED, "resume_interrupted=true"), capture_output=True, text=True
    )
    if resumed.returncode != 0:
        raise RuntimeError(resumed.stderr[-2000:])


def run(work: Path) -> dict[str, Any]:
    import lightly_train

    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    out = work / "quick"
    shutil.rmtree(out, ignore_errors=True)
    lightly_train.train(
        out=str(out),
        data=str(DATA),
        model="torchvision/resnet18",
        epochs=1,
        batch_size=64,
        transform_args={"image_size": [32, 32]},
        progress_bar=False,
        accelerator="cpu",
    )
    results["quickstart"] = _digest(out)
    _train(work / "dino", "method=dino", "num_workers=2", "batch_size=32", "log_every_n_steps=1")
    results["dino"] = _digest(work / "dino")
    _train(work / "ref", *RESUMED)
    results["two_epochs"] = _digest(work / "ref")
    _killed_and_resumed(work / "resumed")
    results["resumed"] = _digest(work / "resumed")
    shards = work / "shards"
    if not shards.exists():
        lightly_train.make_shards(data=str(DATA), out=str(shards), max_count=100)
    two = ("epochs=2", "batch_size=32", "log_every_n_steps=1", "data_cache=ram")
    _train(
        work / "shard_run",
        f"data={shards}/*.tar",
        *two,
        "num_workers=1",
        "gradient_accumulation_steps=2",
    )
    results["shards"] = _digest(work / "shard_run")
    _train(work / "files_cache", *two, "num_workers=2")
    results["files_cache"] = _digest(work / "files_cache")
    (work / "result.json").write_text(json.dumps(results, indent=1))
    return results


def compare(before: Path, after: Path) -> bool:
    a, b = (json.loads((p / "result.json").read_text()) for p in (before, after))
    for key in a:
        same_weights = a[key]["weights"] == b.get(key, {}).get("weights")
        same_losses = a[key]["losses"] == b.get(key, {}).get("losses")
        print(f"{key}: weights {'identical' if same_weights else 'DIFFER'}, losses "
              f"{'identical' if same_losses else 'DIFFER'}")  # fmt: skip
    return a == b


def main() -> int:
    if sys.argv[1] == "--compare":
        return 0 if compare(Path(sys.argv[2]), Path(sys.argv[3])) else 1
    results = run(Path(sys.argv[1]))
    for key, value in results.items():
        print(key, value["weights"], f"{len(value['losses'])} steps")
    print("resumed == uninterrupted:", results["resumed"] == results["two_epochs"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
