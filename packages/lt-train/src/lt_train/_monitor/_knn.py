"""Weighted k-nearest-neighbour classification of embeddings, the online probe of a run.

The classifier of Wu et al. 2018 ("Unsupervised feature learning via non-parametric
instance discrimination", https://arxiv.org/abs/1805.01978, section 3.4), as DINO (Caron
et al. 2021) evaluates with it: the ``k`` bank embeddings most cosine-similar to a query
each vote for their class with weight ``exp(similarity / temperature)``; the classes are
ranked by their summed votes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["knn_accuracy", "knn_scores"]


def knn_scores(
    bank: Tensor,
    bank_labels: Tensor,
    query: Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> Tensor:
    """The class scores of each query.

    Args:
        bank: ``(M, D)`` embeddings with known labels.
        bank_labels: ``(M,)`` int64 labels in ``[0, num_classes)``.
        query: ``(Q, D)`` embeddings to classify.
        num_classes: Number of classes.
        k: Neighbours that vote (at most ``M`` are used).
        temperature: Softness of the vote weights ``exp(cos / temperature)``.
        chunk: Queries compared with the bank at a time (bounds the ``chunk x M``
            similarity matrix).

    Returns:
        ``(Q, num_classes)`` float32 scores; higher is more likely.
    """
    if bank.ndim != 2 or query.ndim != 2 or bank.shape[1] != query.shape[1]:
        raise ValueError(
            f"Expected bank (M, D) and query (Q, D) embeddings, got {tuple(bank.shape)} and "
            f"{tuple(query.shape)}."
        )
    if bank.shape[0] != bank_labels.shape[0]:
        raise ValueError(f"{bank.shape[0]} bank embeddings but {bank_labels.shape[0]} labels.")
    if bank.shape[0] == 0:
        raise ValueError("The bank is empty.")
    k = min(k, bank.shape[0])
    bank = F.normalize(bank.float(), dim=1)
    labels = bank_labels.to(bank.device, torch.int64)
    out = []
    for start in range(0, query.shape[0], chunk):
        q = F.normalize(query[start : start + chunk].float().to(bank.device), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        weights = (sim / temperature).exp()
        scores = torch.zeros(q.shape[0], num_classes, device=bank.device)
        scores.scatter_add_(1, labels[idx], weights)
        out.append(scores)
    if not out:
        return torch.zeros(0, num_classes)
    return torch.cat(out)


def knn_accuracy(
    bank: Tensor,
    bank_labels: Tensor,
    query: Tensor,
    query_labels: Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.1,
) -> tuple[float, float]:
    """Top-1 and top-5 accuracy of :func:`knn_scores` on labeled queries, in percent
    (top-5 counts a query right when its class is among the 5 best scored; with fewer
    than 5 classes, among all)."""
    if query.shape[0] == 0:
        raise ValueError("There are no queries.")
    scores = knn_scores(bank, bank_labels, query, num_classes, k, temperature)
    labels = query_labels.to(scores.device, torch.int64)
    ranked = scores.topk(min(5, num_classes), dim=1).indices
    top1 = (ranked[:, 0] == labels).float().mean()
    top5 = (ranked == labels[:, None]).any(dim=1).float().mean()
    return float(top1) * 100.0, float(top5) * 100.0
