"""Cox partial likelihood loss (Cox 1972) with Efron (1977) or Breslow ties, via torchsurv.

``torchsurv.loss.cox.neg_partial_log_likelihood`` has three behaviours this wrapper pins:

- It returns a fresh ``torch.tensor(0.0, requires_grad=True)`` for a batch with no event
  or a 0-d input: the value is 0 *and not connected to the model*, so ``backward()`` leaves
  every gradient None. We return ``0 * log_risk.sum()`` instead (0, connected, zero
  gradients) for a batch with no event or fewer than two patients. Either way such a batch
  teaches nothing: the batch sampler must put events in every batch (or train on the whole
  fold per step).
- With ``reduction="mean"`` it averages over *distinct event times* when there are ties but
  over *events* when there are none, so the scale jumps with ties. We sum and divide by the
  number of events ourselves.
- It warns on every call with tied times; we silence that one warning.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from torch import Tensor
from torchsurv.loss.cox import neg_partial_log_likelihood

TiesMethod = Literal["efron", "breslow"]


def cox_partial_likelihood(
    log_risk: Tensor,
    event: Tensor,
    time: Tensor,
    ties: TiesMethod = "efron",
    reduction: Literal["mean", "sum"] = "mean",
) -> Tensor:
    """Negative Cox partial log-likelihood.

    Args:
        log_risk: (B,) float log relative hazard (higher = earlier event).
        event: (B,) bool, True = event observed.
        time: (B,) float event or censoring time.
        ties: ``efron`` (default, matches lifelines' CoxPHFitter) or ``breslow``.
        reduction: ``sum`` = −log PL; ``mean`` = −log PL / number of events.
    Returns:
        scalar loss; 0 (with zero gradients) when the batch has no event or < 2 patients.
    """
    if log_risk.ndim != 1 or event.shape != log_risk.shape or time.shape != log_risk.shape:
        raise ValueError(
            "cox_partial_likelihood needs 1-D log_risk, event and time of equal length, got "
            f"{tuple(log_risk.shape)}, {tuple(event.shape)}, {tuple(time.shape)}"
        )
    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties must be 'efron' or 'breslow', got {ties!r}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    event = event.to(torch.bool)
    n_events = int(event.sum())
    if n_events == 0 or log_risk.shape[0] < 2:
        return log_risk.sum() * 0.0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Ties in `time` detected")
        total = neg_partial_log_likelihood(
            log_risk, event, time.to(log_risk.dtype), ties_method=ties, reduction="sum"
        )
    return total / n_events if reduction == "mean" else total
