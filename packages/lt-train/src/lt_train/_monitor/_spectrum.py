"""Label-free measures of an embedding matrix: effective rank, spectral decay, spread.

All three take ``z``, a ``(N, D)`` float tensor of ``N`` embeddings of ``D`` dimensions, and
return a plain float that is always finite (so that every metric writer and JSON reader
takes it). They are computed in float64 on the CPU: the matrices are small (a monitor
sample of a few thousand rows) and the eigen-solvers of low precisions are not reliable.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["alpha_req", "embedding_std", "rankme"]

# RankMe's epsilon (Garrido et al. 2023, eq. 1): keeps log(p) finite for zero singular values.
_RANKME_EPS = 1e-7
# Eigenvalues below this fraction of the largest are floored to it before the log-log fit
# (float64 noise; a collapsed spectrum then fits a steep, finite decay).
_EIG_FLOOR = 1e-12


def _as_matrix(z: Tensor) -> Tensor:
    if z.ndim != 2 or z.shape[0] < 1 or z.shape[1] < 1:
        raise ValueError(f"Expected a (N, D) embedding matrix, got shape {tuple(z.shape)}.")
    return z.detach().to(device="cpu", dtype=torch.float64)


def rankme(z: Tensor) -> float:
    """RankMe, the effective rank of the embeddings (Garrido et al. 2023, "RankMe:
    Assessing the downstream performance of pretrained self-supervised representations
    by their rank", https://arxiv.org/abs/2210.02885, eq. 1).

    ``exp(-sum_k p_k log p_k)`` with ``p_k = sigma_k / ||sigma||_1 + eps``, the normalized
    singular values ``sigma_k`` of ``z`` (not centered, as in the paper). It lies between
    1 (all embeddings on one line: collapse) and ``min(N, D)`` (singular values all
    equal): a sample of ``N < D`` embeddings bounds the rank by ``N``, so compare values of
    runs with the same sample size and embedding dimension only.

    Returns:
        The effective rank; 1.0 for an all-zero matrix.
    """
    sigma = torch.linalg.svdvals(_as_matrix(z))
    total = float(sigma.sum())
    if total <= 0.0 or not math.isfinite(total):
        return 1.0
    p = sigma / total + _RANKME_EPS
    return float(torch.exp(-(p * torch.log(p)).sum()))


def alpha_req(z: Tensor) -> float:
    """alpha-ReQ, the power-law decay exponent of the eigenspectrum of the embeddings'
    covariance (Agrawal et al. 2022, "alpha-ReQ: Assessing representation quality in
    self-supervised learning by measuring eigenspectrum decay",
    https://arxiv.org/abs/2202.05808).

    The eigenvalues ``lambda_1 >= lambda_2 >= ...`` of the covariance of the centered
    embeddings are fitted as ``lambda_i ~ c * i^-alpha`` by least squares on
    ``(log i, log lambda_i)`` over the first ``min(N - 1, D)`` eigenvalues (the rank a
    sample of ``N`` rows can have), each floored at ``1e-12 * lambda_1``. A small alpha
    (below about 1) is a flat spectrum of many used dimensions; a large one, energy in few
    dimensions; the paper finds linear-probe accuracy best near 1.

    Returns:
        alpha; 0.0 when there are fewer than 2 eigenvalues to fit, or all are zero.
    """
    x = _as_matrix(z)
    n, d = x.shape
    count = min(n - 1, d)
    if count < 2:
        return 0.0
    x = x - x.mean(dim=0, keepdim=True)
    # The eigenvalues of X^T X / (N - 1) from the singular values (same nonzero spectrum).
    eig = torch.linalg.svdvals(x)[:count] ** 2 / (n - 1)
    top = float(eig[0])
    if top <= 0.0 or not math.isfinite(top):
        return 0.0
    log_eig = torch.log(eig.clamp_min(top * _EIG_FLOOR))
    log_i = torch.log(torch.arange(1, count + 1, dtype=torch.float64))
    # Least-squares slope of log_eig on log_i.
    li = log_i - log_i.mean()
    slope = float((li * (log_eig - log_eig.mean())).sum() / (li * li).sum())
    return -slope


def embedding_std(z: Tensor) -> float:
    """The spread of the embeddings' directions: the mean over dimensions of the standard
    deviation of the L2-normalized embeddings, times ``sqrt(D)``.

    Embeddings spread evenly over the unit sphere have a per-dimension std of about
    ``1 / sqrt(D)``, so the value is about 1.0; embeddings that all point the same way
    (collapse, Jing et al. 2022 and SimSiam's check, Chen & He 2021) give 0. A zero
    embedding normalizes to zero.

    Returns:
        The scaled mean std; 0.0 for a single embedding.
    """
    x = _as_matrix(z)
    if x.shape[0] < 2:
        return 0.0
    normed = F.normalize(x, dim=1)
    return float(normed.std(dim=0).mean() * math.sqrt(x.shape[1]))
