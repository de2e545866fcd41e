"""The discrete-time survival head (``model.head: discrete``): hazard logits per time bin,
survival curves straight from them, and the scalar risk the rest of the project ranks by.

Which head: the logistic hazard (Gensheimer & Narasimhan 2019; pycox ``LogisticHazard``),
one logit per bin, ``h_k = sigmoid(phi_k)``, loss in ``losses.discrete_time``. Chosen over
MTLR (Yu et al. 2011) because each bin's hazard is its own logit: S(t) is a product of
``1 - h_k`` and so monotone by construction, censoring enters bin by bin, the linear term of
the region measures (``region_linear``) adds to every bin's logit like a covariate of a
discrete proportional-odds model, and an ensemble can be mixed in survival space and turned
back into hazards exactly (MTLR's softmax over bins couples them).

Definitions (edges ``e_1 < ... < e_{K-1}`` = ``time_bins``, ``e_0 = 0``):

- ``S(e_j) = Π_{k<j} (1 - h_k)``; inside a finite bin the hazard *rate* is constant
  (piecewise-constant hazard): ``S(t) = S(e_j) (1 - h_j)^((t - e_j)/(e_{j+1} - e_j))``.
  The last bin (after ``e_{K-1}``) is open: it has no width to spread its hazard over, so
  ``S(t) = S(e_{K-1})`` for later t (no prediction past the last edge, as the Breslow
  curves hold their last value past follow-up).
- risk = ``log(-log S(e_{K-1}))``, the log cumulative hazard at the last edge (24 months by
  default). Monotone in every finite bin's hazard, and on the scale the rest of the
  project already pools risks on (``training.cv.pooled_risk``): under proportional hazards
  it *is* the Cox log-risk plus a constant, so Harrell C, the fold ensemble's centring, risk
  groups and integrated gradients read it as they read a Cox log-risk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tle_kedro.losses.discrete_time import check_time_bins
from tle_kedro.models.batch import SurvivalBatch


def risk_summary(logits: Tensor, time_bins: Sequence[float]) -> Tensor:
    """(B, K) hazard logits → (B,) ``log(-log S(e_{K-1})) = log Σ_{k<K-1} softplus(phi_k)``.

    Computed as a logsumexp of ``log softplus`` so that very negative logits (tiny hazards)
    give a finite, very negative risk instead of ``log 0``.
    """
    finite = logits[:, : len(time_bins)]  # (B, K-1): the bins that end by the last edge
    # log softplus(x): for x << 0 softplus(x) ≈ exp(x) underflows, its log is x
    log_sp = torch.where(finite < -30, finite, torch.log(F.softplus(finite).clamp_min(1e-38)))
    return torch.logsumexp(log_sp, dim=1)


def log_survival_at_edges(logits: Tensor, time_bins: Sequence[float]) -> Tensor:
    """(B, K) logits → (B, K) ``log S`` at ``0, e_1, ..., e_{K-1}``."""
    log1m_h = -F.softplus(logits[:, : len(time_bins)])  # (B, K-1) log(1 - h_k)
    zero = torch.zeros_like(logits[:, :1])
    return torch.cat([zero, log1m_h.cumsum(1)], dim=1)


def mixture_logits(member_logits: Sequence[Tensor], time_bins: Sequence[float]) -> Tensor:
    """The hazard logits of the equal-weight mixture of the members' survival curves.

    ``S_mix(e_j) = mean_m S_m(e_j)`` at every edge, then ``h_j = 1 - S_mix(e_{j+1}) /
    S_mix(e_j)``: averaging survival probabilities (not logits) is the ensemble's predictive
    distribution; converting back keeps the ensemble a logistic-hazard model. The open last
    bin (no edge after it) averages its hazard probabilities.

    Args:
        member_logits: M tensors (B, K).
    Returns:
        (B, K) logits.
    """
    stacked = torch.stack(list(member_logits), dim=0)  # (M, B, K)
    m = stacked.shape[0]
    log_s = log_survival_at_edges(stacked.flatten(0, 1), time_bins).view(stacked.shape)
    mix = torch.logsumexp(log_s, dim=0) - float(np.log(m))  # (B, K) log S_mix at edges
    step = (mix[:, 1:] - mix[:, :-1]).clamp(max=-1e-7)  # (B, K-1) log(1 - h), < 0
    finite = torch.log(-torch.expm1(step)) - step  # logit(h) = log h - log(1 - h)
    last = torch.logit(torch.sigmoid(stacked[..., -1]).mean(0), eps=1e-7)  # (B,)
    return torch.cat([finite, last.unsqueeze(1)], dim=1)


def survival_from_logits(
    logits: np.ndarray, time_bins: Sequence[float], times: np.ndarray | float
) -> np.ndarray:
    """S(t | x) from hazard logits with a constant hazard rate inside each bin.

    Args:
        logits: (N, K) hazard logits.
        times: a time or (T,) times in months.
    Returns:
        (N,) for a scalar ``times``, else (N, T); 1 at t <= 0, held past the last edge.
    """
    bins = np.asarray(check_time_bins(time_bins))
    phi = np.asarray(logits, dtype=np.float64)
    log1m_h = -np.logaddexp(0.0, phi[:, : len(bins)])  # (N, K-1) log(1 - h_k)
    log_s_edges = np.concatenate([np.zeros((len(phi), 1)), np.cumsum(log1m_h, 1)], 1)  # (N, K)
    lower = np.concatenate([[0.0], bins])  # (K,) 0, e_1, ..., e_{K-1}
    t = np.clip(np.atleast_1d(np.asarray(times, dtype=np.float64)), 0.0, bins[-1])  # (T,)
    j = np.minimum(np.searchsorted(bins, t, side="right"), len(bins) - 1)  # finite bin of t
    frac = (t - lower[j]) / (lower[j + 1] - lower[j])  # (T,) in [0, 1]
    surv = np.exp(log_s_edges[:, j] + frac[None, :] * log1m_h[:, j])  # (N, T)
    return surv[:, 0] if np.ndim(times) == 0 else surv


class DiscreteTimeSurvival(nn.Module):
    """Wraps a network that returns (B, K) hazard logits.

    ``logits(batch)`` is the head's output (what the loss and the survival curves use);
    ``forward(batch)`` is the (B,) scalar risk of :func:`risk_summary`, so every caller of
    the neural-model contract ``model(batch) -> (B,)`` (validation C, explanations) ranks
    patients by it.

    Args:
        model: a network mapping a ``SurvivalBatch`` to (B, K) logits.
        time_bins: the K-1 edges in months.
    """

    def __init__(self, model: nn.Module, time_bins: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.time_bins = check_time_bins(time_bins)

    def logits(self, batch: SurvivalBatch) -> Tensor:
        """batch → (B, K) hazard logits."""
        return self.model(batch)

    def forward(self, batch: SurvivalBatch) -> Tensor:
        """batch → (B,) risk = log(-log S(last edge | x))."""
        return risk_summary(self.logits(batch), self.time_bins)


def time_bins_of(model: Any) -> tuple[float, ...] | None:
    """The edges of a discrete-time model (its ``time_bins``), None for a Cox model."""
    return getattr(model, "time_bins", None)
