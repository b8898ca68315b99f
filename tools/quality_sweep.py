"""Short single-row sweeps on the quality benchmark's split, for tuning a method's defaults.

    uv run python tools/quality_sweep.py NAME '{"method": "dino", "method_args": {...}}'
        [--work-dir /tmp/lt_q10] [--epochs 3]

Trains the benchmark's base model (CIFAR-stem ResNet-18 at width 16, from the same seed-0
init as the benchmark; ``--model 1,1,1,1:16`` the distillation student) on the work dir's
training images with the given ``train`` keyword overrides (``transform_args`` is merged
into the 32-px default), then prints one JSON line: kNN top-1
(k=200 and k=20) of the export on the held-out images, train seconds, and a thinned loss and
RankMe trajectory from metrics.jsonl. The line is also appended to
``WORK/sweep/results.jsonl``. Run ``tools/quality_benchmark.py`` once first: it writes the
split. Figures of a few epochs only say whether a setting leaves a
collapse or a plateau; the table's figures come from the benchmark itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_eval as qe
import quality_models as qm
import quality_rows as qr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name")
    parser.add_argument("overrides", help="JSON object of lightly_train.train keyword overrides")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/lt_q10"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--model",
        default="2,2,2,2:16",
        help="blocks per stage:width (default: the base ResNet-18 w16; 1,1,1,1:16 is the student)",
    )
    args = parser.parse_args()

    import torch

    import lightly_train

    work, over = args.work_dir, json.loads(args.overrides)
    spec = qr.parse_model(args.model, "--model", parser)
    out = work / "sweep" / args.name
    kw: dict = dict(
        out=str(out), data=str(work / "data/train"), epochs=args.epochs, batch_size=128,
        num_workers=1, accelerator="cpu", devices=1, precision="32-true", seed=0,
        transform_args={"image_size": [qe.IMAGE_SIZE, qe.IMAGE_SIZE]}, overwrite=True,
        progress_bar=False,
    )  # fmt: skip
    for key, value in over.items():
        if key == "transform_args":
            kw[key].update(value)
        else:
            kw[key] = value
    start = time.time()
    # build_wrapper's seed-0 init is the one the benchmark saves as init_*.pt.
    lightly_train.train(model=qm.build_wrapper(spec), **kw)
    wall = time.time() - start
    classes = sorted(p.name for p in (work / "data/heldout").iterdir())
    train_x, train_y = qe.load_split(work / "data/train", classes)
    held_x, held_y = qe.load_split(work / "data/heldout", classes)
    model = qm.build_model(spec)
    model.load_state_dict(
        torch.load(out / "exported_models/exported_last.pt", map_location="cpu", weights_only=True)
    )
    wrapper = qm.CifarResNetWrapper(model)
    bank, query = qe.embed(wrapper, train_x), qe.embed(wrapper, held_x)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    loss = [round(r["loss"], 3) for r in rows if "loss" in r]
    rank = [round(r["monitor/rankme"]) for r in rows if "monitor/rankme" in r]
    result = {
        "name": args.name,
        "over": over,
        "epochs": args.epochs,
        "train_s": round(wall),
        "knn200": round(qe.knn_top1(bank, train_y, query, held_y, 200), 1),
        "knn20": round(qe.knn_top1(bank, train_y, query, held_y, 20), 1),
        "loss": loss[:: max(1, len(loss) // 8)] + loss[-1:],
        "rankme": rank[:: max(1, len(rank) // 8)] + rank[-1:],
    }
    print(json.dumps(result))
    with (work / "sweep" / "results.jsonl").open("a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
