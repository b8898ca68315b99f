"""Data split and frozen-feature evaluation of the quality benchmark.

The split is fixed by file name: in each class folder of the CIFAR-10 training images the
files are sorted, the last ``heldout_per_class`` form the held-out set (never trained on,
whatever the other settings), and the training set is the first ``train_per_class`` of the
rest. The training images (with their folder labels) are also the kNN bank and the linear
probe's training set; the scores are measured on the held-out images.

* kNN: weighted top-1 (votes ``exp(cos / 0.1)``, Wu et al. 2018 "Unsupervised Feature
  Learning via Non-Parametric Instance Discrimination"; the protocol of DINO and lightly's
  benchmarks) on L2-normalized features, k = 200 and k = 20.
* Linear probe: multinomial logistic regression on the standardized frozen features,
  full-batch L-BFGS (a convex problem, so the result does not depend on a learning rate).

torch is imported inside the functions, so the command line can import this module
without it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

IMAGE_SIZE = 32
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KNN_KS = (200, 20)
KNN_TEMPERATURE = 0.1
PROBE_STEPS = 300
PROBE_WEIGHT_DECAY = 1e-4


def plan_split(
    cifar_dir: Path, train_per_class: int, heldout_per_class: int
) -> dict[str, dict[str, list[str]]]:
    """File names per split and class; raises SystemExit naming the problem and the fix."""
    if not cifar_dir.is_dir():
        raise SystemExit(f"error: CIFAR-10 folder not found: {cifar_dir} (pass --cifar-dir)")
    classes = sorted(p.name for p in cifar_dir.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise SystemExit(f"error: {cifar_dir} needs one subfolder per class, found {classes}")
    plan: dict[str, dict[str, list[str]]] = {"train": {}, "heldout": {}}
    for c in classes:
        names = sorted(
            p.name for p in (cifar_dir / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
        )
        available = len(names) - heldout_per_class
        if available < train_per_class:
            raise SystemExit(
                f"error: class {c!r} has {len(names)} images: {heldout_per_class} held out "
                f"leave {max(available, 0)} for training, {train_per_class} asked; lower "
                "--limit-images or --heldout-per-class"
            )
        plan["heldout"][c] = names[len(names) - heldout_per_class :]
        plan["train"][c] = names[:train_per_class]
    return plan


def materialize(cifar_dir: Path, data_dir: Path, plan: dict[str, Any]) -> None:
    """Copy the planned files to ``data_dir/{train,heldout}/<class>/`` (the source is read only).

    Skipped when ``data_dir/manifest.json`` records the same plan.
    """
    manifest_path = data_dir / "manifest.json"
    manifest = {"cifar_dir": str(cifar_dir), "plan": plan}
    if manifest_path.is_file() and json.loads(manifest_path.read_text()) == manifest:
        return
    if data_dir.exists():
        shutil.rmtree(data_dir)
    for split, per_class in plan.items():
        for c, names in per_class.items():
            dst = data_dir / split / c
            dst.mkdir(parents=True)
            for name in names:
                shutil.copyfile(cifar_dir / c / name, dst / name)
    manifest_path.write_text(json.dumps(manifest))


def load_split(split_dir: Path, classes: list[str]) -> tuple[Any, Any]:
    """Images (normalized float tensors, ``(N, 3, 32, 32)``) and integer labels."""
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


def embed(wrapper: Any, x: Any, batch_size: int = 500) -> Any:
    """Global-average-pooled features of the wrapper, ``(N, feature_dim)``, eval mode."""
    import torch

    wrapper = wrapper.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            feats = wrapper.forward_features(x[i : i + batch_size])
            out.append(wrapper.forward_pool(feats)["pooled_features"].flatten(1))
    return torch.cat(out)


def knn_top1(bank: Any, bank_labels: Any, query: Any, query_labels: Any, k: int) -> float:
    """Weighted kNN top-1 accuracy in % (votes ``exp(cos / T)``, as in InstDisc / DINO)."""
    import torch
    import torch.nn.functional as F

    bank = F.normalize(bank.float(), dim=1)
    query = F.normalize(query.float(), dim=1)
    k = min(k, len(bank))
    num_classes = int(bank_labels.max()) + 1
    sim, idx = (query @ bank.T).topk(k, dim=1)
    weights = (sim / KNN_TEMPERATURE).exp()
    votes = torch.zeros(len(query), num_classes).scatter_add_(1, bank_labels[idx], weights)
    return 100.0 * (votes.argmax(1) == query_labels).float().mean().item()


def linear_probe(train: Any, train_labels: Any, test: Any, test_labels: Any) -> float:
    """Top-1 in % of a logistic regression on standardized features (full-batch L-BFGS)."""
    import torch

    threads = torch.get_num_threads()
    # One thread: the problem is small, and on a busy machine OpenMP workers waiting for
    # each other made these small products several times slower.
    torch.set_num_threads(1)
    try:
        return _linear_probe(train, train_labels, test, test_labels)
    finally:
        torch.set_num_threads(threads)


def _linear_probe(train: Any, train_labels: Any, test: Any, test_labels: Any) -> float:
    import torch
    import torch.nn.functional as F

    train, test = train.float(), test.float()
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    train, test = (train - mean) / std, (test - mean) / std
    num_classes = int(train_labels.max()) + 1
    torch.manual_seed(0)
    weight = torch.zeros(train.shape[1], num_classes, dtype=torch.float32, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float32, requires_grad=True)
    opt = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=PROBE_STEPS,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
    )

    def closure() -> Any:
        opt.zero_grad()
        loss = F.cross_entropy(train @ weight + bias, train_labels)
        loss = loss + PROBE_WEIGHT_DECAY * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        pred = (test @ weight + bias).argmax(1)
    return 100.0 * (pred == test_labels).float().mean().item()


def scores(train: Any, train_labels: Any, test: Any, test_labels: Any) -> dict[str, float]:
    """kNN top-1 at each k of :data:`KNN_KS` and the linear probe's top-1, in %."""
    out = {f"knn{k}": knn_top1(train, train_labels, test, test_labels, k) for k in KNN_KS}
    out["linear"] = linear_probe(train, train_labels, test, test_labels)
    return out
