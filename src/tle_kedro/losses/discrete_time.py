"""Discrete-time survival loss: the logistic-hazard negative log-likelihood (Gensheimer &
Narasimhan 2019, "A scalable discrete-time survival model for neural networks"; pycox's
``nll_logistic_hazard``, Kvamme & Borgan 2019).

Follow-up is cut into K intervals by the ``time_bins`` edges ``0 < e_1 < ... < e_{K-1}``:
bin 0 = (0, e_1], bin k = (e_k, e_{k+1}], the last bin (e_{K-1}, ∞) open. The network gives
one logit per bin, ``h_k = sigmoid(phi_k)`` = P(event in bin k | no event before it).

Convention for a time inside a bin (``bin_targets``):

- an event at ``t`` in bin ``j`` (``e_j < t <= e_{j+1}``) survived bins ``0..j-1`` and had
  its event in bin ``j``: ``log L = Σ_{k<j} log(1 - h_k) + log h_j``. An event exactly at an
  edge belongs to the bin that edge closes (intervals are right-closed, as in pycox);
- a patient censored at ``t`` survived only the bins that *end* at or before ``t``:
  ``log L = Σ_{k: e_{k+1} <= t} log(1 - h_k)``. The bin a censoring time falls inside says
  nothing (it was observed only partly; counting it as survived would bias its hazard down),
  so a patient censored before the first edge contributes nothing. Censored exactly at an
  edge: that bin was fully observed and counts as survived.

In pycox's terms: ``idx_durations`` = the event bin for an event, the last full bin for a
censored patient, and the loss is ``BCE(phi, y).cumsum(1)[idx]`` with ``y`` one at the event
bin. Why by hand: neither torchsurv (Cox, Weibull, a continuous log-hazard) nor
scikit-survival has a discrete-time likelihood, and pycox pins old pandas/numba versions for
a four-line formula.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F


def check_time_bins(time_bins: Sequence[float]) -> tuple[float, ...]:
    """``time_bins`` as a tuple of floats, or ValueError if it is empty, non-positive or not
    strictly increasing."""
    bins = tuple(float(b) for b in time_bins)
    if not bins:
        raise ValueError("time_bins_months needs at least one edge, e.g. [3, 6, 12, 24]")
    if bins[0] <= 0 or any(b <= a for a, b in zip(bins, bins[1:], strict=False)):
        raise ValueError(
            f"time_bins_months must be positive and strictly increasing (months), got {list(bins)}"
        )
    return bins


def bin_targets(event: Tensor, time: Tensor, time_bins: Sequence[float]) -> tuple[Tensor, Tensor]:
    """(survived, event_bin): how many leading bins each patient is known to have survived,
    and the bin of its event (-1 when censored); both (B,) int64. See the module docstring."""
    edges = torch.as_tensor(check_time_bins(time_bins), dtype=torch.float64, device=time.device)
    t = time.to(torch.float64).contiguous()
    event = event.to(torch.bool)
    # right-closed bins: an event at t lies in bin #edges < t; a censored patient at t has
    # survived the #edges <= t bins that closed by then
    event_bin = torch.searchsorted(edges, t, right=False)
    full = torch.searchsorted(edges, t, right=True)
    survived = torch.where(event, event_bin, full)
    return survived, torch.where(event, event_bin, torch.full_like(event_bin, -1))


def logistic_hazard_nll(
    logits: Tensor,
    event: Tensor,
    time: Tensor,
    time_bins: Sequence[float],
    reduction: Literal["mean", "sum"] = "mean",
) -> Tensor:
    """Negative log-likelihood of the logistic-hazard model.

    Args:
        logits: (B, K) float hazard logits, ``K = len(time_bins) + 1``.
        event: (B,) bool, True = event observed.
        time: (B,) float event or censoring time (months).
        time_bins: the K-1 interval edges in months (positive, increasing).
        reduction: ``mean`` over patients (pycox's default) or ``sum``.
    Returns:
        scalar loss; ``Σ_i [Σ_{k<s_i} softplus(phi_ik) + d_i softplus(-phi_i,j_i)]`` (sum),
        using ``-log(1 - sigmoid(x)) = softplus(x)`` and ``-log sigmoid(x) = softplus(-x)``.
    """
    bins = check_time_bins(time_bins)
    if logits.ndim != 2 or logits.shape[1] != len(bins) + 1:
        raise ValueError(
            f"logistic_hazard_nll needs (B, {len(bins) + 1}) logits for {len(bins)} edges, "
            f"got {tuple(logits.shape)}"
        )
    if event.shape != (logits.shape[0],) or time.shape != (logits.shape[0],):
        raise ValueError(
            "event and time must be (B,) like the logits' rows, got "
            f"{tuple(event.shape)}, {tuple(time.shape)}"
        )
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    survived, event_bin = bin_targets(event, time, bins)
    k = torch.arange(logits.shape[1], device=logits.device)
    survived_mask = (k.unsqueeze(0) < survived.unsqueeze(1)).to(logits.dtype)  # (B, K)
    event_mask = (k.unsqueeze(0) == event_bin.unsqueeze(1)).to(logits.dtype)  # (B, K)
    per_patient = (F.softplus(logits) * survived_mask + F.softplus(-logits) * event_mask).sum(1)
    return per_patient.mean() if reduction == "mean" else per_patient.sum()
