"""Side-by-side GPU benchmark: our lightly_train against the peer (lightly-train 0.18.0).

Subcommands (each prints one JSON line on success):
  run [--smoke] [--only ROW ...] [--deadline EPOCH_S] ...
                            the whole benchmark: prepares the data, runs every row (each in
                            its own process, with its side's PYTHONPATH and a timeout),
                            appends to OUT/results.jsonl and prints the table with ratios
  table RESULTS_JSONL       the table and ratios of an earlier run
  prep SRC DST N W H        write N JPEGs of W x H under DST/<class>/ from the images in SRC
                            (bicubic resize; every second copy mirrored)
  worker OUT_JSON KWARGS    one train() call of whichever lightly_train is importable, with a
                            timing wrapper (model from KWARGS["arch"])
  ceiling ARCH SIZE BS      model-only SimCLR step (random data on the device, bf16 autocast,
                            channels_last): the ceiling the data path cannot beat
The wrapper timestamps its grad-mode forward_features calls, so the steady-state images/s
exclude start-up (imports, listing, validation, compilation) and, with `skip`, the first
steps or the first epoch (cached rows). See README.md beside this file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GRACE_S = 25  # after a row's timeout: SIGTERM, this long to write its result, then SIGKILL
STEP_TIMES: list[float] = []  # perf_counter() of every grad-mode forward_features call


# --------------------------------------------------------------------------- the wrapper


def _stamp() -> None:
    import torch

    if torch.is_grad_enabled():
        STEP_TIMES.append(time.perf_counter())


def make_wrapper(arch: str):
    import torch
    import torchvision
    from torch import nn

    # Under compile=True (torch.compile of the model) the stamp runs eagerly: one graph break.
    stamp = torch.compiler.disable(_stamp) if hasattr(torch, "compiler") else _stamp

    class Wrapper(nn.Module):
        def __init__(self, model: nn.Module, dim: int) -> None:
            super().__init__()
            self._model = model
            self._features = nn.Sequential(*list(model.children())[:-2])
            self._pool = nn.AdaptiveAvgPool2d(1)
            self._dim = dim

        def get_model(self) -> nn.Module:
            return self._model

        def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            stamp()
            return {"features": self._features(x)}

        def forward_pool(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {"pooled_features": self._pool(x["features"])}

        def feature_dim(self) -> int:
            return self._dim

    Wrapper.__qualname__ = "Wrapper"
    globals()["Wrapper"] = Wrapper
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)()
    return Wrapper(model, model.fc.in_features)


# --------------------------------------------------------------------------- data


def prep(src: str, dst: str, n: str, w: str, h: str) -> None:
    from concurrent.futures import ProcessPoolExecutor

    t = time.perf_counter()
    files = sorted(p for p in Path(src).rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    jobs = [(str(files[i % len(files)]), dst, i, int(w), int(h)) for i in range(int(n))]
    workers = min(16, len(os.sched_getaffinity(0)))
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_prep_one, jobs, chunksize=64))
    print(
        json.dumps(
            {
                "prep": dst,
                "images": len(jobs),
                "size": [int(w), int(h)],
                "sources": len(files),
                "s": round(time.perf_counter() - t, 1),
            }
        ),
        flush=True,
    )


def _prep_one(job: tuple[str, str, int, int, int]) -> None:
    from PIL import Image, ImageOps

    path, dst, i, w, h = job
    cls = Path(path).parent.name
    out = Path(dst) / cls
    out.mkdir(parents=True, exist_ok=True)
    img = Image.open(path).convert("RGB")
    if (w, h) != img.size:
        img = img.resize((w, h), Image.Resampling.BICUBIC)
    if i % 2:
        img = ImageOps.mirror(img)
    img.save(out / f"{i:06d}.jpg", quality=90)


# --------------------------------------------------------------------------- one train() run


def _steps_of(n_calls: int, candidates: list[int]) -> tuple[int, int]:
    """(steps, forward calls per step) that explain n_calls grad-mode forward calls."""
    for steps in candidates:
        if steps > 0 and n_calls >= steps and n_calls % steps == 0:
            return steps, n_calls // steps
    for steps in candidates:  # extra calls (a validation pass in grad mode?): at the start
        if steps > 0 and n_calls >= steps:
            return steps, n_calls // steps
    return 0, 0


def summarize_steps(
    times: list[float],
    n_images: int,
    bs: int,
    epochs: int,
    max_steps: int | None,
    skip: int,
    skip_epochs: int = 0,
    calls_per_step: int = 0,
) -> dict[str, Any]:
    per_epoch_floor, per_epoch_ceil = n_images // bs, -(-n_images // bs)
    cands = [epochs * per_epoch_floor, epochs * per_epoch_ceil]
    if max_steps:
        cands = [min(c, max_steps) for c in cands]
    steps, cps = _steps_of(len(times), cands)
    truncated = False
    if (not steps or not cps) and calls_per_step and len(times) >= 4 * calls_per_step:
        # Stopped early (timeout): fewer steps than planned, known calls per step.
        truncated, cps = True, calls_per_step
        steps = len(times) // cps
    if not steps or not cps:
        return {"steps": None, "forward_calls": len(times)}
    extra = len(times) - steps * cps
    starts = times[extra::cps][:steps]  # start of each step's first training forward
    spe = per_epoch_floor if steps % max(per_epoch_floor, 1) == 0 else per_epoch_ceil
    skip = max(0, min(skip_epochs * spe or skip, steps - 3))
    win = starts[skip:]
    res: dict[str, Any] = {
        "steps": steps,
        "truncated": truncated,
        "forward_calls_per_step": cps,
        "extra_forward_calls": extra,
        "skip_steps": skip,
        "window_steps": len(win) - 1,
        "window_s": round(win[-1] - win[0], 3),
        # Steady state: the steps from `skip` to the last one (each interval is one step).
        "img_s": round((len(win) - 1) * bs / (win[-1] - win[0]), 1) if len(win) > 1 else None,
        "first_steps_s": round(starts[skip] - starts[0], 2),
    }
    per_epoch = []
    for e in range(-(-steps // max(spe, 1))):
        seg = starts[e * spe : min((e + 1) * spe + 1, steps)]
        if len(seg) > 1:
            per_epoch.append(round((len(seg) - 1) * bs / (seg[-1] - seg[0]), 1))
    res["img_s_by_epoch"] = per_epoch
    return res


def worker(out_json: str, kwargs_json: str) -> None:
    t_start = time.perf_counter()
    import torch

    import lightly_train

    t_import = time.perf_counter() - t_start
    kwargs = json.loads(kwargs_json)
    arch = kwargs.pop("arch")
    n_images = kwargs.pop("n_images")
    skip = kwargs.pop("skip", 10)
    skip_epochs = kwargs.pop("skip_epochs", 0)
    max_steps = kwargs.pop("max_steps", None)
    if max_steps:  # the peer only (ours refuses trainer_args): a shorter run, same speed
        kwargs["trainer_args"] = {**(kwargs.get("trainer_args") or {}), "max_steps": max_steps}
    wrapper = make_wrapper(arch)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    error = None
    start = time.perf_counter()
    try:
        lightly_train.train(model=wrapper, **kwargs)
    except BaseException as e:  # keep the timings of the steps that ran
        error = f"{type(e).__name__}: {str(e)[:500]}"
    wall = time.perf_counter() - start
    epochs = kwargs["epochs"]
    bs = kwargs["batch_size"]
    res: dict[str, Any] = {
        "impl": getattr(lightly_train, "__version__", "?"),
        "arch": arch,
        "method": kwargs.get("method", "simclr"),
        "batch_size": bs,
        "epochs": epochs,
        "n_images": n_images,
        "import_s": round(t_import, 2),
        "train_wall_s": round(wall, 2),
        "setup_s": round(STEP_TIMES[0] - start, 2) if STEP_TIMES else None,
        "after_last_step_s": round(time.perf_counter() - STEP_TIMES[-1], 2) if STEP_TIMES else None,
    }
    # Grad-mode forward calls per step (SimCLR: both views in one call; DINO: the global
    # views, then the local views), used only if the run stopped early.
    cps_hint = {"simclr": 1, "dino": 2}.get(kwargs.get("method", "simclr"), 0)
    res.update(
        summarize_steps(STEP_TIMES, n_images, bs, epochs, max_steps, skip, skip_epochs, cps_hint)
    )
    res["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None
    out = Path(kwargs["out"])
    res["exported"] = (out / "exported_models" / "exported_last.pt").is_file()
    res.update(_ours_resolved(out))
    if error:
        res["error"] = error
    Path(out_json).write_text(json.dumps(res))
    print(json.dumps(res), flush=True)


def _ours_resolved(out: Path) -> dict[str, Any]:
    """What our trainer resolved (workers, decode size, cache), from config.json/train.log."""
    found: dict[str, Any] = {}
    try:
        cfg = json.loads((out / "config.json").read_text())
        resolved = cfg.get("resolved", cfg)
        for k in (
            "num_workers",
            "decode",
            "decode_size",
            "data_cache",
            "memory_format",
            "precision",
            "epochs",
        ):
            if k in resolved:
                found[f"resolved_{k}"] = resolved[k]
    except Exception:
        pass
    try:
        for line in (out / "train.log").read_text(errors="replace").splitlines():
            if "Data cache:" in line:
                found["cache_log"] = line.split("Data cache:", 1)[1].strip()[:200]
    except Exception:
        pass
    return found


# --------------------------------------------------------------------------- model-only ceiling


def ceiling(arch: str, size: str, bs: str, steps: str = "30") -> None:
    import torch
    import torchvision
    from torch import nn

    size_i, bs_i, n = int(size), int(bs), int(steps)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True
    model = getattr(torchvision.models, arch)()
    dim = model.fc.in_features
    model.fc = nn.Identity()
    head = nn.Sequential(
        nn.Linear(dim, 2048), nn.BatchNorm1d(2048), nn.ReLU(), nn.Linear(2048, 128)
    )
    net = nn.Sequential(model, head).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(2 * bs_i, 3, size_i, size_i, device=dev).to(memory_format=torch.channels_last)
    eye = torch.eye(2 * bs_i, device=dev)
    target = torch.arange(2 * bs_i, device=dev).roll(bs_i)

    def sync() -> None:
        if dev == "cuda":
            torch.cuda.synchronize()

    def step() -> None:
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
            z = nn.functional.normalize(net(x).float(), dim=1)
        sim = z @ z.T / 0.1 - 1e9 * eye
        loss = nn.functional.cross_entropy(sim, target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(min(8, n)):
        step()
    sync()
    t = time.perf_counter()
    for _ in range(n):
        step()
    sync()
    dt = time.perf_counter() - t
    img_s = n * bs_i / dt
    gflop_fwd = {"resnet50": 4.11, "resnet18": 1.82}.get(arch, 0.0) * (size_i / 224) ** 2
    print(
        json.dumps(
            {
                "ceiling": arch,
                "size": size_i,
                "batch_size": bs_i,
                "img_s": round(img_s, 1),
                "model_tflops": round(img_s * 2 * 3 * gflop_fwd / 1000, 1),
                "gpu": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
                "torch": torch.__version__,
            }
        ),
        flush=True,
    )


# --------------------------------------------------------------------------- the plan


@dataclass
class Row:
    id: str
    side: str  # "ours" or "peer": which PYTHONPATH
    kind: str  # "worker", "ceiling", "pipeline"
    args: Any  # kwargs dict (worker) or argv list
    limit_s: int  # timeout of this row
    est_s: int  # expected duration on an H100 (for the plan print)
    note: str = ""
    tags: dict[str, str] = field(default_factory=dict)


def plan(smoke: bool, d224: str, d32: str, n224: int, n32: int, peer: bool = True) -> list[Row]:
    """The rows, in the order they run (most important first; compile, the slowest, last)."""
    if smoke:  # CPU, tiny: checks the plumbing, nothing is measured
        s224, s32, bs224, bsd, bs32, local = 64, 32, 16, 8, 32, 28
        base: dict[str, Any] = {"precision": "32-true", "accelerator": "cpu", "num_workers": 1}
        arch224, skip224, peer_simclr_steps, peer_dino_steps = "resnet18", 1, 3, 4
        ceilings = [("ceiling-r18-32", ["resnet18", "32", "16", "3"])]
        dev, workers = "cpu", "1"
    else:
        s224, s32, bs224, bsd, bs32, local = 224, 32, 256, 128, 512, 96
        base = {"precision": "bf16-mixed", "accelerator": "gpu"}
        arch224, skip224, peer_simclr_steps, peer_dino_steps = "resnet50", 10, 40, 50
        ceilings = [
            ("ceiling-r50-224", ["resnet50", "224", "256", "30"]),
            ("ceiling-r18-32", ["resnet18", "32", "512", "30"]),
        ]
        dev, workers = "cuda", "auto"  # workers "auto": cores - 1, as our num_workers="auto"
    base = {**base, "devices": 1, "seed": 0, "overwrite": True}
    r224 = {**base, "arch": arch224, "n_images": n224, "data": d224, "epochs": 1}
    simclr = {
        **r224,
        "method": "simclr",
        "batch_size": bs224,
        "skip": skip224,
        "transform_args": {"image_size": [s224, s224]},
    }
    dino = {
        **r224,
        "method": "dino",
        "batch_size": bsd,
        "skip": skip224,
        # Ours: local views "auto" = round(224 * 96 / 224) = 96 px; the peer's default is 96 px
        # at any size: both set explicitly, so the two sides train the same views.
        "transform_args": {
            "image_size": [s224, s224],
            "local_view": {"num_views": 6, "view_size": [local, local]},
        },
    }
    c32 = {
        **base,
        "arch": "resnet18",
        "n_images": n32,
        "data": d32,
        "method": "simclr",
        "batch_size": bs32,
        "transform_args": {"image_size": [s32, s32]},
        "skip_epochs": 1,  # timed from the first step of epoch 2
    }
    ceiling_note = "model-only SimCLR step, random data on the device"
    pipe = [d224, str(s224), str(bs224)]
    rows = [Row(rid, "ours", "ceiling", args, 60, 12, ceiling_note) for rid, args in ceilings]
    rows += [
        Row(
            "data-224-gpu",
            "ours",
            "pipeline",
            [*pipe, "gpu", workers, dev],
            60,
            12,
            "loader reads bytes, DeviceDecoder (nvjpeg) + SimCLR views; no model",
        ),
        Row(
            "data-224-cpu",
            "ours",
            "pipeline",
            [*pipe, "cpu", workers, dev],
            60,
            12,
            "loader decodes with PIL in the workers + SimCLR views; no model",
        ),
        Row("simclr224-ours", "ours", "worker", simclr, 120, 30, "defaults (1 epoch: no cache)"),
        Row(
            "simclr224-peer",
            "peer",
            "worker",
            {**simclr, "max_steps": peer_simclr_steps},
            120,
            40,
            f"lightly-train 0.18.0 defaults, stopped after {peer_simclr_steps} steps",
        ),
        Row(
            "c32-device-ours",
            "ours",
            "worker",
            {**c32, "epochs": 3, "data_cache": "device"},
            120,
            25,
            "data_cache=device, 3 epochs, timed from epoch 2",
        ),
        Row(
            "c32-none-ours",
            "ours",
            "worker",
            {**c32, "epochs": 2, "data_cache": "none"},
            120,
            25,
            "data_cache=none, 2 epochs, timed epoch 2",
        ),
        Row(
            "c32-peer",
            "peer",
            "worker",
            {**c32, "epochs": 2},
            120,
            40,
            "lightly-train 0.18.0 defaults, 2 epochs, timed epoch 2",
        ),
        Row(
            "dino224-ours", "ours", "worker", dino, 120, 35, f"2 global + 6 local {local}-px views"
        ),
        Row(
            "dino224-peer",
            "peer",
            "worker",
            {**dino, "max_steps": peer_dino_steps},
            120,
            40,
            f"lightly-train 0.18.0, local views {local} px, stopped after {peer_dino_steps} steps",
        ),
    ]
    if not smoke:  # decode="gpu" is refused without CUDA; compile on 2 CPU cores takes minutes
        rows += [
            Row(
                "simclr224-gpudecode-ours",
                "ours",
                "worker",
                {**simclr, "decode": "gpu"},
                120,
                30,
                "decode='gpu' (workers read bytes, nvjpeg decodes)",
            ),
            Row(
                "simclr224-compile-ours",
                "ours",
                "worker",
                {**simclr, "compile": True, "skip": 15},
                240,
                100,
                "compile=True, timed after 15 steps",
            ),
        ]
    return [r for r in rows if peer or r.side != "peer"]


# --------------------------------------------------------------------------- the driver


def run(a: argparse.Namespace) -> None:
    t0 = time.time()
    deadline = a.deadline or (t0 + a.budget)
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    log = (out / "all.log").open("a")
    res_path = out / "results.jsonl"

    def say(msg: str) -> None:
        line = f"[{time.time() - t0:6.1f}s | left {deadline - time.time():5.0f}s] {msg}"
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    def record(d: dict[str, Any]) -> None:
        line = json.dumps(d)
        print(line, flush=True)
        log.write(line + "\n")
        with res_path.open("a") as f:
            f.write(line + "\n")

    env_base = {**os.environ, "PYTHONUNBUFFERED": "1", "LIGHTLY_TRAIN_EVENTS_DISABLED": "1"}
    paths = {"ours": a.ours_path, "peer": a.peer_path}

    def env_for(side: str) -> dict[str, str]:
        env = dict(env_base)
        if paths[side]:
            env["PYTHONPATH"] = paths[side]
        return env

    # Data: the 32-px set is the source (CIFAR-10, 50,000 images) unless told otherwise; the
    # 224-px set is made from it (500x375 JPEGs, like ImageNet photos).
    src = Path(a.src)
    d224, d32 = work / "d224", (Path(a.d32) if a.d32 else src)
    if a.smoke:
        d32 = work / "d32"
        n224, n32 = 64, 256
    else:
        n224 = a.n224
        n32 = sum(1 for p in d32.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    for d, n, w, h in [(d224, n224, 80, 60) if a.smoke else (d224, n224, 500, 375)] + (
        [(d32, n32, 32, 32)] if a.smoke else []
    ):
        if d.exists():
            shutil.rmtree(d)
        say(f"prep {d} ({n} images {w}x{h})")
        p = subprocess.run(
            [sys.executable, __file__, "prep", str(src), str(d), str(n), str(w), str(h)],
            capture_output=True,
            text=True,
            env=env_base,
        )
        log.write(p.stderr[-3000:])
        if p.returncode:
            say(f"prep failed: {p.stderr[-2000:]}")
            sys.exit(1)
        record({"row": f"prep-{d.name}", **json.loads(p.stdout.strip().splitlines()[-1])})
    say(f"data: {d224} ({n224}), {d32} ({n32} images)")

    rows = plan(a.smoke, str(d224), str(d32), n224, n32, peer=bool(a.peer_python) or not a.smoke)
    if a.only:
        rows = [r for r in rows if any(o in r.id for o in a.only)]
    if not a.peer_path and not a.peer_python and not a.smoke:
        say("no --peer-path/--peer-python: the peer's rows use the default import path")
    say(
        "plan: "
        + ", ".join(f"{r.id} (~{r.est_s}s)" for r in rows)
        + f"; about {sum(r.est_s for r in rows)}s on an H100"
    )
    for r in rows:
        left = deadline - time.time()
        limit = int(min(r.limit_s, a.row_limit or r.limit_s, left - GRACE_S - 5))
        if limit < min(r.est_s, 30, a.row_limit or 30):
            record({"row": r.id, "side": r.side, "skipped": f"budget: {left:.0f}s left"})
            continue
        rdir = work / "runs" / r.id
        if rdir.exists():
            shutil.rmtree(rdir)
        rdir.mkdir(parents=True)
        py = a.peer_python if r.side == "peer" and a.peer_python else sys.executable
        if r.kind == "worker":
            kw = {**r.args, "out": str(rdir / "out")}
            cmd = [py, __file__, "worker", str(rdir / "res.json"), json.dumps(kw)]
        elif r.kind == "ceiling":
            cmd = [sys.executable, __file__, "ceiling", *r.args]
        else:
            cmd = [sys.executable, str(HERE / "gpu_parts.py"), "pipeline", *r.args]
        say(f"start {r.id} (limit {limit}s): {r.note}")
        t = time.time()
        with (rdir / "log").open("w") as f:
            proc = subprocess.Popen(
                cmd, cwd=rdir, env=env_for(r.side), stdout=f, stderr=subprocess.STDOUT
            )
            try:
                rc: int | str = proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                # SIGTERM first: our trainer stops after the current step and the worker
                # still writes the timings of the steps that ran (marked "truncated").
                proc.terminate()
                try:
                    rc = f"timeout, then {proc.wait(timeout=GRACE_S)}"
                except subprocess.TimeoutExpired:
                    proc.kill()
                    rc = f"timeout, killed {proc.wait()}"
        dt = time.time() - t
        text = (rdir / "log").read_text(errors="replace")
        log.write("".join(f"  [{r.id}] {ln}\n" for ln in text[-3000:].splitlines()))
        result: dict[str, Any] | None = None
        if (rdir / "res.json").is_file():
            result = json.loads((rdir / "res.json").read_text())
        else:
            for ln in reversed(text.splitlines()):
                if ln.startswith("{") and ln.endswith("}"):
                    try:
                        result = json.loads(ln)
                        break
                    except ValueError:
                        pass
        if result is None:
            result = {"error": f"rc {rc}", "log_tail": text[-400:]}
        record(
            {
                "row": r.id,
                "side": r.side,
                "stage_s": round(dt, 1),
                "rc": rc,
                **result,
                "note": r.note,
            }
        )
        say(f"end {r.id} rc={rc} in {dt:.1f}s")
    say("all rows done")
    text = table(str(res_path), smoke=a.smoke)
    print(text, flush=True)
    log.write(text + "\n")
    (out / "table.txt").write_text(text + "\n")
    # The rows' own logs (train.log of each run and the worker output), in one file.
    with tarfile.open(out / "run_logs.tar.gz", "w:gz") as tf:
        for r in rows:
            for name in ("log", "out/train.log", "out/config.json"):
                p = work / "runs" / r.id / name
                if p.is_file():
                    tf.add(p, arcname=f"{r.id}/{name.replace('/', '_')}")


# --------------------------------------------------------------------------- the table


def table(path: str, smoke: bool = False) -> str:
    rows: dict[str, dict[str, Any]] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            if "row" in d:
                rows[d["row"]] = d  # the last result of a row wins

    def rate(rid: str) -> float | None:
        d = rows.get(rid) or {}
        v = d.get("img_s")
        return float(v) if isinstance(v, (int, float)) else None

    lines = [
        f"{'row':26} {'img/s':>9} {'by epoch':>22} {'setup s':>8} {'stage s':>8} {'GiB':>6}  notes"
    ]
    for rid, d in rows.items():
        if rid.startswith("prep"):
            continue
        by = ",".join(f"{x:.0f}" for x in d.get("img_s_by_epoch") or [])
        if d.get("cache_log"):
            d = {**d, "cache": d["cache_log"].split()[0]}
        extra = []
        for k in (
            "resolved_num_workers",
            "resolved_decode_size",
            "cache",
            "workers",
            "decode_size",
            "img_s_no_views",
            "fallbacks",
            "skipped",
            "truncated",
            "error",
        ):
            if d.get(k) not in (None, "", False):
                extra.append(f"{k.removeprefix('resolved_')}={d[k]}")
        img_s = d.get("img_s")
        lines.append(
            f"{rid:26} {img_s if img_s is not None else '-':>9} {by:>22} "
            f"{d.get('setup_s') if d.get('setup_s') is not None else '-':>8} "
            f"{d.get('stage_s', '-'):>8} {d.get('peak_gpu_mem_gib') or '-':>6}  {' '.join(extra)}"[
                :220
            ]
        )

    def ratio(name: str, num: str, den: str | None, target: float | None) -> None:
        a, b = rate(num), (rate(den) if den else 1.0)
        if a is None or b is None or b == 0:
            lines.append(f"{name:50} {'n/a':>9}   (missing {num if a is None else den})")
            return
        v = a / b
        ok = (
            ""
            if target is None
            else ("  PASS" if v >= target else "  FAIL") + f" (target >= {target:g})"
        )
        lines.append(f"{name:50} {v:9.2f}{ok}" if den else f"{name:50} {v:9.0f}{ok}")

    lines.append("")
    lines.append(
        "ratios and targets"
        + ("  (smoke: CPU plumbing check, numbers meaningless)" if smoke else "")
    )
    ratio("SimCLR 224 ours/peer", "simclr224-ours", "simclr224-peer", 3.0)
    ratio("SimCLR 224 ours decode=gpu / peer", "simclr224-gpudecode-ours", "simclr224-peer", 3.0)
    ratio("SimCLR 224 ours compile / peer", "simclr224-compile-ours", "simclr224-peer", 3.0)
    ratio("SimCLR 224 ours/model-only", "simclr224-ours", "ceiling-r50-224", 0.90)
    ratio(
        "SimCLR 224 ours decode=gpu / model-only",
        "simclr224-gpudecode-ours",
        "ceiling-r50-224",
        0.90,
    )
    ratio("SimCLR 224 ours compile / model-only", "simclr224-compile-ours", "ceiling-r50-224", 0.90)
    ratio("DINO 224 ours/peer", "dino224-ours", "dino224-peer", 2.5)
    ratio("ResNet-18 32 px ours (cache device) img/s", "c32-device-ours", None, 20000)
    ratio("ResNet-18 32 px ours (cache device) / peer", "c32-device-ours", "c32-peer", None)
    ratio("ResNet-18 32 px ours (no cache) / peer", "c32-none-ours", "c32-peer", None)
    ratio(
        "ResNet-18 32 px ours (cache device) / model-only",
        "c32-device-ours",
        "ceiling-r18-32",
        None,
    )
    ratio("data only 224, decode=gpu, img/s", "data-224-gpu", None, 5000)
    ratio("data only 224, decode=cpu (workers auto), img/s", "data-224-cpu", None, None)
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("prep", "worker", "ceiling"):
        {"prep": prep, "worker": worker, "ceiling": ceiling}[sys.argv[1]](*sys.argv[2:])
        return
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", default=os.environ.get("OUT", "/tmp/gpu-out"))
    r.add_argument("--work", default="/tmp/gpu-work", help="data sets and run folders")
    r.add_argument("--src", default="/tmp/c10", help="CIFAR-10 class folders (from c10.tar.gz)")
    r.add_argument("--d32", default=None, help="the 32-px set (default: --src itself)")
    r.add_argument(
        "--n224", type=int, default=15360, help="images of the 224-px set (60 steps of 256)"
    )
    r.add_argument("--ours-path", default="", help="PYTHONPATH of our rows")
    r.add_argument("--peer-path", default="", help="PYTHONPATH of the peer's rows")
    r.add_argument("--peer-python", default="", help="interpreter of the peer's rows (a venv)")
    r.add_argument(
        "--budget", type=float, default=560, help="seconds for everything (if no --deadline)"
    )
    r.add_argument("--deadline", type=float, default=None, help="absolute time.time() to end by")
    r.add_argument("--only", nargs="*", help="run the rows whose id contains one of these")
    r.add_argument("--row-limit", type=int, default=0, help="cap every row's timeout (seconds)")
    r.add_argument(
        "--smoke", action="store_true", help="CPU plumbing check of our rows, tiny sizes"
    )
    t = sub.add_parser("table")
    t.add_argument("results")
    a = ap.parse_args()
    if a.cmd == "run":
        run(a)
    else:
        print(table(a.results))


if __name__ == "__main__":
    main()
