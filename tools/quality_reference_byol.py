"""A reference BYOL run outside lightly-train, on the quality benchmark's split.

    uv run python tools/quality_reference_byol.py [EPOCHS] [sep|cat] [noblur]

A plain PyTorch loop with lightly's own BYOL heads, loss, momentum schedule and
``BYOLTransform`` at 32 px (no lt_* code), the benchmark's base model from the same seed-0
init, SGD lr 0.06 (0.12 per 256 images at batch 128) with a 10% warm-up and a cosine, EMA
momentum 0.99 -> 1; then kNN top-1 of the backbone on the held-out images. It tells
whether a weak BYOL row is our code or the method at that budget (docs/methods.md,
Quality). ``sep`` forwards the two views separately (per-view batch norm), ``cat`` as one
batch; ``noblur`` switches the blur off. Needs /tmp/lt_q10 from tools/quality_benchmark.py.
"""

import copy
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_eval as qe
import quality_models as qm
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform
from lightly.utils.scheduler import cosine_schedule
from torchvision.datasets import ImageFolder

torch.manual_seed(0)
W = Path("/tmp/lt_q10")
EPOCHS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
sep = len(sys.argv) > 2 and sys.argv[2] == "sep"
blur = 0.0 if (len(sys.argv) > 3 and sys.argv[3] == "noblur") else None
kw = {} if blur is None else {"gaussian_blur": 0.0}
t = BYOLTransform(
    view_1_transform=BYOLView1Transform(input_size=32, **kw),
    view_2_transform=BYOLView2Transform(input_size=32, **kw),
)
ds = ImageFolder(str(W / "data/train"), transform=t)
dl = torch.utils.data.DataLoader(
    ds, batch_size=128, shuffle=True, drop_last=True, num_workers=2, persistent_workers=True
)
spec = {"layers": [2, 2, 2, 2], "width": 16}
wrapper = qm.build_wrapper(spec, W / "init_base_l2222w16.pt")


class Backbone(torch.nn.Module):
    def __init__(s, w):
        super().__init__()
        s.w = w

    def forward(s, x):
        return s.w.forward_pool(s.w.forward_features(x))["pooled_features"].flatten(1)


bb = Backbone(wrapper)
proj = BYOLProjectionHead(128, 4096, 256)
pred = BYOLPredictionHead(256, 4096, 256)
bb_t, proj_t = copy.deepcopy(bb), copy.deepcopy(proj)
deactivate_requires_grad(bb_t)
deactivate_requires_grad(proj_t)
crit = NegativeCosineSimilarity()
params = list(bb.parameters()) + list(proj.parameters()) + list(pred.parameters())
opt = torch.optim.SGD(params, lr=0.06, momentum=0.9, weight_decay=5e-4)
total = EPOCHS * len(dl)
warm = max(1, total // 10)
step = 0
t0 = time.time()
for _epoch in range(EPOCHS):
    for (v0, v1), _ in dl:
        lr = (
            0.06 * (step + 1) / warm
            if step < warm
            else 0.06 * 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm)))
        )
        for g in opt.param_groups:
            g["lr"] = lr
        m = cosine_schedule(step, total, 0.99, 1.0)
        update_momentum(bb, bb_t, m)
        update_momentum(proj, proj_t, m)
        if sep:
            p0 = pred(proj(bb(v0)))
            p1 = pred(proj(bb(v1)))
            with torch.no_grad():
                z0 = proj_t(bb_t(v0))
                z1 = proj_t(bb_t(v1))
        else:
            p0, p1 = pred(proj(bb(torch.cat([v0, v1])))).chunk(2)
            with torch.no_grad():
                z0, z1 = proj_t(bb_t(torch.cat([v0, v1]))).chunk(2)
        loss = 0.5 * (crit(p0, z1) + crit(p1, z0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            print(step, round(float(loss), 3), round(time.time() - t0), flush=True)
classes = sorted(p.name for p in (W / "data/heldout").iterdir())
tx, ty = qe.load_split(W / "data/train", classes)
hx, hy = qe.load_split(W / "data/heldout", classes)
a, b = qe.embed(wrapper, tx), qe.embed(wrapper, hx)
print(
    "REF BYOL",
    EPOCHS,
    "epochs sep" if sep else "epochs cat",
    "knn200",
    round(qe.knn_top1(a, ty, b, hy, 200), 1),
    "knn20",
    round(qe.knn_top1(a, ty, b, hy, 20), 1),
    "s",
    round(time.time() - t0),
)
