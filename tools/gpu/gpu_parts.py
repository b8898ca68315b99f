"""Where does our step time go on the GPU? Times the data path apart, one JSON line each:
pipeline DIR SIZE BS DECODE [WORKERS] [DEVICE]
                           the data-only row: our loader (ImageDataset, decode "cpu": PIL in
                           the workers; "gpu": workers read the JPEG bytes and
                           lt_data.DeviceDecoder decodes them on the device) + the SimCLR view
                           transform, no model. img/s with the views and without them.
transform METHOD SIZE BS   batched view transform alone (GPU time and host time per call)
loader DIR SIZE BS WORKERS decode + collate alone (DataLoader img/s, no model)
"""

from __future__ import annotations

import json
import os
import sys
import time


def _workers(value: str) -> int:
    # As our num_workers="auto": the cores this process may use, minus one.
    return max(1, len(os.sched_getaffinity(0)) - 1) if value == "auto" else int(value)


def _recipe(method: str, size: int):
    from lt_core import from_dict
    from lt_methods import get_method

    cls = get_method(method)
    targs = from_dict(cls.TransformArgs, {"image_size": [size, size]}, "transform_args")
    return cls.view_recipe(targs)


def pipeline(
    path: str, size: str, bs: str, decode: str, workers: str = "auto", device: str = ""
) -> None:
    import torch
    from torch.utils.data import DataLoader

    from lt_data import (
        DeviceDecoder,
        ImageDataset,
        build_view_transform,
        collate_images,
        list_image_files,
        probe_short_side,
        resolve_decode_size,
    )

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    size_i, bs_i, nw = int(size), int(bs), _workers(workers)
    files = list_image_files(path)
    recipe = _recipe("simclr", size_i)
    # The decode size our trainer picks (decode_size="auto"): 375 for 500x375 sources at 224.
    dsize = resolve_decode_size("auto", recipe, (size_i, size_i), probe_short_side(files, False))
    ds = ImageDataset(files, dsize, jpeg_bytes=decode == "gpu")
    dl = DataLoader(
        ds,
        batch_size=bs_i,
        shuffle=True,
        drop_last=True,
        num_workers=nw,
        collate_fn=collate_images,
        pin_memory=dev == "cuda",
        persistent_workers=nw > 0,
        prefetch_factor=max(2, -(-8 // nw)) if nw > 0 else None,
    )
    decoder = DeviceDecoder(dsize, dev) if decode == "gpu" else None
    transform = build_view_transform(recipe).to(dev)

    def sync() -> None:
        if dev == "cuda":
            torch.cuda.synchronize()

    def epoch(views: bool, warm: int) -> tuple[float, int]:
        n, t = 0, time.perf_counter()
        for i, batch in enumerate(dl):
            if decoder is not None:
                batch = decoder(batch)
            images = batch["images"].to(dev, non_blocking=True)
            if views:
                out = transform(images)
                assert len(out) == 2 and out[0].shape[-1] == size_i
            n += len(images)
            if i + 1 == warm:  # the clock starts after the first `warm` batches
                sync()
                n, t = 0, time.perf_counter()
        sync()
        return n / (time.perf_counter() - t), n

    t0 = time.perf_counter()
    with_views, n = epoch(True, warm=min(5, len(dl) // 3))  # first batches: workers start
    no_views, _ = epoch(False, warm=0)
    print(
        json.dumps(
            {
                "pipeline": path,
                "decode": decode,
                "size": size_i,
                "batch_size": bs_i,
                "workers": nw,
                "decode_size": list(dsize),
                "images": len(ds),
                "timed_images": n,
                "img_s": round(with_views, 1),
                "img_s_no_views": round(no_views, 1),
                "fallbacks": decoder.fallbacks if decoder is not None else None,
                "wall_s": round(time.perf_counter() - t0, 2),
                "device": dev,
            }
        ),
        flush=True,
    )


def transform(method: str, size: str, bs: str) -> None:
    import torch

    from lt_data import build_view_transform

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    t = build_view_transform(_recipe(method, int(size))).to(dev)
    x = torch.randint(0, 255, (int(bs), 3, int(size), int(size)), dtype=torch.uint8, device=dev)
    for _ in range(5):
        t(x)
    if dev == "cuda":
        torch.cuda.synchronize()
    n = 20
    h0 = time.perf_counter()
    for _ in range(n):
        t(x)
    host = (time.perf_counter() - h0) / n
    if dev == "cuda":
        torch.cuda.synchronize()
    total = (time.perf_counter() - h0) / n
    print(
        json.dumps(
            {
                "transform": method,
                "size": int(size),
                "bs": int(bs),
                "host_ms_per_call": round(1000 * host, 2),
                "synced_ms_per_call": round(1000 * total, 2),
                "img_s": round(int(bs) / total, 1),
            }
        ),
        flush=True,
    )


def loader(path: str, size: str, bs: str, workers: str) -> None:
    from torch.utils.data import DataLoader

    from lt_data import ImageDataset, collate_images, list_image_files

    nw = _workers(workers)
    ds = ImageDataset(list_image_files(path), (int(size), int(size)))
    dl = DataLoader(
        ds,
        batch_size=int(bs),
        shuffle=True,
        drop_last=True,
        num_workers=nw,
        collate_fn=collate_images,
        persistent_workers=True,
        pin_memory=True,
    )
    it = iter(dl)
    for _ in range(3):
        next(it)
    n, t = 0, time.perf_counter()
    for b in it:
        n += len(b["images"])
    dt = time.perf_counter() - t
    print(
        json.dumps(
            {
                "loader": path,
                "size": int(size),
                "bs": int(bs),
                "workers": nw,
                "img_s": round(n / dt, 1),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    {"pipeline": pipeline, "transform": transform, "loader": loader}[sys.argv[1]](*sys.argv[2:])
