"""Monitor and kNN artifacts in the on-disk contract of issue 22, for the report's tests
until the trainer writes them itself.

``add_monitor_artifacts`` embeds a sample of the run's images with the starting and the
final weights of the run's model and appends what the monitors would have logged:
RankMe, alpha-ReQ, embedding std and, with labels, leave-one-out kNN accuracy, each
computed from those embeddings, plus ``monitor/*.pt`` in the contract's format.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from torchvision.transforms import v2

from lt_core import EmbeddingModel

THUMB = 64


def rankme(embeddings: Tensor) -> float:
    """exp of the entropy of the normalized singular values (Garrido et al., 2023)."""
    s = torch.linalg.svdvals(embeddings.double())
    p = s / s.sum() + 1e-7
    return float(torch.exp(-(p * p.log()).sum()))


def alpha_req(embeddings: Tensor) -> float:
    """Slope of the log eigenspectrum of the covariance against log rank (Agrawal et al.,
    2022), as a positive decay."""
    centered = embeddings.double() - embeddings.double().mean(0)
    eig = torch.linalg.eigvalsh(centered.T @ centered / len(embeddings)).flip(0)
    eig = eig[eig > 1e-12]
    x = torch.arange(1, len(eig) + 1, dtype=torch.double).log()
    y = eig.log()
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    return float(-slope)


def embedding_std(embeddings: Tensor) -> float:
    normed = F.normalize(embeddings.double(), dim=1)
    return float(normed.std(0).mean() * math.sqrt(embeddings.shape[1]))


def knn(embeddings: Tensor, labels: Tensor, k: int = 10) -> tuple[float, float]:
    """Leave-one-out kNN top-1/top-5 accuracy in percent (cosine, majority of k votes)."""
    normed = F.normalize(embeddings.float(), dim=1)
    similarity = normed @ normed.T
    similarity.fill_diagonal_(-float("inf"))
    _, nearest = similarity.topk(min(k, len(labels) - 1), dim=1)
    classes = int(labels.max()) + 1
    votes = F.one_hot(labels[nearest], classes).sum(1).float()
    ranked = votes.argsort(dim=1, descending=True)
    top1 = (ranked[:, 0] == labels).float().mean() * 100
    top5 = (ranked[:, : min(5, classes)] == labels[:, None]).any(1).float().mean() * 100
    return float(top1), float(top5)


def load_images(paths: list[Path], size: int) -> Tensor:
    """``(N, 3, size, size)`` uint8."""
    resize = v2.Resize((size, size), antialias=True)
    return torch.stack(
        [resize(v2.functional.pil_to_tensor(Image.open(p).convert("RGB"))) for p in paths]
    )


def embed(wrapper: nn.Module, images: Tensor) -> Tensor:
    model = EmbeddingModel(wrapper).eval()  # type: ignore[arg-type]
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        return model((images.float() / 255 - mean) / std)


def add_monitor_artifacts(
    out: Path,
    start_wrapper: nn.Module,
    paths: list[Path],
    *,
    image_size: int,
    labels: list[int] | None = None,
    collapse_step: int | None = None,
) -> dict[str, float]:
    """Write the monitor sample, embeddings, views and lines for the run in ``out``
    (``start_wrapper``: a copy of the model before training). Returns the last values.

    ``collapse_step``: also flag a collapse at that step (the collapse test)."""
    end = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    last_step = max(r["step"] for r in end if "loss" in r)
    trained = copy.deepcopy(start_wrapper)
    state = torch.load(out / "exported_models/exported_last.pt", weights_only=True)
    trained.get_model().load_state_dict(state)
    images = load_images(paths, image_size)
    monitor = out / "monitor"
    monitor.mkdir(exist_ok=True)
    thumbs = load_images(paths, THUMB)
    torch.save({"names": [str(p) for p in paths], "thumbnails": thumbs}, monitor / "sample.pt")
    lines, values = [], {}
    first_std = None
    for step, wrapper, name in ((0, start_wrapper, "start"), (last_step, trained, "last")):
        embeddings = embed(wrapper, images)
        torch.save(
            {"step": step, "embeddings": embeddings.half()}, monitor / f"embeddings_{name}.pt"
        )
        std = embedding_std(embeddings)
        first_std = std if first_std is None else first_std
        collapsed = int(collapse_step is not None and step >= collapse_step)
        values = {
            "monitor/rankme": rankme(embeddings),
            "monitor/alpha_req": alpha_req(embeddings),
            "monitor/embedding_std": std,
            "monitor/std_ratio": std / first_std,
            "monitor/collapsed": collapsed,
        }
        lines.append({"step": step, **values})
        if labels is not None:
            top1, top5 = knn(embeddings, torch.tensor(labels))
            lines.append({"step": step, "val/knn_top1": top1, "val/knn_top5": top5})
            values.update({"val/knn_top1": top1, "val/knn_top5": top5})
    if collapse_step is not None:
        reason = "RankMe stayed under 1% of its largest possible value for 3 checks in a row."
        lines.append({"event": "collapse", "step": collapse_step, "reason": reason})
    with (out / "metrics.jsonl").open("a") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
    _write_views(monitor, images[:6])
    return values


def _write_views(monitor: Path, images: Tensor) -> None:
    """Two global views and four local ones of ``images``, as a DINO-like recipe would."""
    torch.manual_seed(0)
    size = images.shape[-1]
    small = max(8, size // 2)
    groups = []
    for name, count, crop in (("global view 0", 1, size), ("global view 1", 1, size), ("local views", 4, small)):  # fmt: skip
        augment = v2.Compose(
            [
                v2.RandomResizedCrop(crop, scale=(0.3, 1.0), antialias=True),
                v2.RandomHorizontalFlip(),
                v2.ColorJitter(0.4, 0.4, 0.2, 0.1),
            ]
        )
        views = torch.stack([torch.stack([augment(im) for _ in range(count)]) for im in images])
        groups.append({"name": name, "size": [crop, crop], "images": views})
    torch.save({"groups": groups}, monitor / "views.pt")
