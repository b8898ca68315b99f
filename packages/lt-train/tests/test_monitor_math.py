"""The monitor measures against spectra whose answer is known, the kNN probe on a
separable toy set, and the parsing of val_data."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from lt_core import ConfigError, DataError, from_dict
from lt_train import TrainConfig
from lt_train._monitor import (
    alpha_req,
    embedding_std,
    knn_accuracy,
    list_val_data,
    rankme,
)


def _orthonormal(n: int, d: int, seed: int = 0, centered: bool = False) -> torch.Tensor:
    """``(n, d)`` with orthonormal columns (orthogonal to the ones vector if centered)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    if centered:
        x = x - x.mean(0, keepdim=True)
    q, _ = torch.linalg.qr(x)
    return q


def test_rankme_identity_is_full_rank() -> None:
    assert rankme(torch.eye(64)) == pytest.approx(64, rel=1e-4)


@pytest.mark.parametrize("k", [1, 5, 17])
def test_rankme_of_rank_k_is_k(k: int) -> None:
    z = _orthonormal(200, k) @ _orthonormal(64, k, seed=1).T  # rank k, equal singular values
    assert rankme(z) == pytest.approx(k, rel=1e-3)


def test_rankme_is_bounded_by_the_sample() -> None:
    z = torch.randn(20, 128, generator=torch.Generator().manual_seed(0))
    assert rankme(z) <= 20 + 1e-6


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_alpha_req_recovers_a_power_law(alpha: float) -> None:
    d = 64
    eig = torch.arange(1, d + 1, dtype=torch.float64) ** -alpha
    n = 300
    # Centered columns with covariance eigenvalues exactly eig: Q diag(sqrt(eig (n-1))) V^T.
    z = _orthonormal(n, d, centered=True) * (eig * (n - 1)).sqrt() @ _orthonormal(d, d, 2).T
    assert alpha_req(z) == pytest.approx(alpha, abs=1e-6)


def test_constant_embeddings_are_collapsed() -> None:
    z = torch.ones(100, 32) * torch.linspace(-1, 1, 32)
    assert rankme(z) == pytest.approx(1.0, abs=1e-3)
    assert embedding_std(z) == pytest.approx(0.0, abs=1e-6)
    assert math.isfinite(alpha_req(z))
    zero = torch.zeros(10, 8)
    assert (rankme(zero), alpha_req(zero), embedding_std(zero)) == (1.0, 0.0, 0.0)


def test_embedding_std_of_spread_embeddings_is_about_one() -> None:
    z = torch.randn(4000, 64, generator=torch.Generator().manual_seed(0))
    assert embedding_std(z) == pytest.approx(1.0, abs=0.03)
    assert embedding_std(z.abs()) < 0.7  # one orthant: less spread


def test_knn_separable_toy_set_is_perfect() -> None:
    g = torch.Generator().manual_seed(0)
    centers = torch.eye(4, 16) * 10
    labels = torch.arange(4).repeat_interleave(50)
    points = centers[labels] + torch.randn(200, 16, generator=g)
    query_labels = torch.arange(4).repeat_interleave(10)
    queries = centers[query_labels] + torch.randn(40, 16, generator=g)
    top1, top5 = knn_accuracy(points, labels, queries, query_labels, 4, k=20, temperature=0.1)
    assert (top1, top5) == (100.0, 100.0)
    wrong = (query_labels + 1) % 4
    top1, top5 = knn_accuracy(points, labels, queries, wrong, 4, k=5, temperature=0.1)
    assert top1 == 0.0 and top5 == 100.0  # 4 classes: all are in the top 5


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)


def test_val_data_folder(tmp_path: Path) -> None:
    for name in ("cat/a.png", "cat/sub/b.png", "dog/c.png"):
        _image(tmp_path / name)
    (tmp_path / "empty").mkdir()
    (tmp_path / ".hidden").mkdir()
    listing = list_val_data(tmp_path)
    assert listing.classes == ["cat", "dog"]
    assert sorted(zip([Path(p).name for p in listing.paths], listing.labels)) == [
        ("a.png", 0),
        ("b.png", 0),
        ("c.png", 1),
    ]
    bank, query = listing.split(bank_size=10, query_size=1)
    assert len(query) == 1 and len(bank) == 2 and not set(bank) & set(query)


def test_val_data_csv(tmp_path: Path) -> None:
    for name in ("x/a.png", "b.png", "c.png"):
        _image(tmp_path / name)
    csv = tmp_path / "labels.csv"
    csv.write_text(f"path,label\nx/a.png,cat\n{tmp_path / 'b.png'},dog\n\nc.png,dog\n")
    listing = list_val_data(csv)
    assert listing.classes == ["cat", "dog"] and listing.labels == [0, 1, 1]
    assert listing.paths[0] == str(tmp_path / "x" / "a.png")


@pytest.mark.parametrize(
    "text, match",
    [
        ("a.png\n", "line 1: expected 'path,label'"),
        ("a.png,cat\nb.png,\n", "line 2: expected 'path,label'"),
        ("a.png,cat,extra\n", "line 1"),
        ("a.png,cat\nmissing.png,dog\n", "do not exist, e.g. line 2: missing.png"),
        ("a.png,cat\nnotes.txt,dog\n", "not an image file"),
        ("a.png,cat\n", "1 class"),
    ],
)
def test_val_data_csv_errors(tmp_path: Path, text: str, match: str) -> None:
    _image(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("x")
    csv = tmp_path / "labels.csv"
    csv.write_text(text)
    with pytest.raises(DataError, match=match):
        list_val_data(csv)


def test_val_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        list_val_data(tmp_path / "nope")
    _image(tmp_path / "only/a.png")
    with pytest.raises(DataError, match="needs at least 2"):
        list_val_data(tmp_path)
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(DataError, match=r"not a \.csv file"):
        list_val_data(tmp_path / "x.txt")


def test_options_are_checked(tmp_path: Path) -> None:
    base = {"out": str(tmp_path / "out"), "data": str(tmp_path), "model": "torchvision/resnet18"}
    with pytest.raises(ConfigError, match=r"val_data .* does not exist"):
        from_dict(TrainConfig, {**base, "val_data": str(tmp_path / "nope")}, "")
    with pytest.raises(ConfigError, match="monitor_every_n_steps must be >= 1"):
        from_dict(TrainConfig, {**base, "monitor_every_n_steps": 0}, "")
    with pytest.raises(ConfigError, match=r"val_args\.temperature"):
        from_dict(TrainConfig, {**base, "val_args": {"temperature": 0}}, "")
    with pytest.raises(ConfigError, match=r"collapse\.patience"):
        from_dict(TrainConfig, {**base, "monitor_args": {"collapse": {"patience": 0}}}, "")
    with pytest.raises(ConfigError, match=r"[Uu]nknown"):
        from_dict(TrainConfig, {**base, "monitor_args": {"every": 3}}, "")
