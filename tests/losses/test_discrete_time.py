"""The logistic-hazard loss against a hand computation and pycox's formula, and its
censoring convention."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from tle_kedro.losses.discrete_time import bin_targets, check_time_bins, logistic_hazard_nll

BINS = (3.0, 6.0)  # bins (0, 3], (3, 6], (6, inf)
L3 = math.log(3.0)  # logit 0.75; -L3 = logit 0.25; 0 = logit 0.5


def _case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logits = torch.tensor(
        [
            [-L3, 0.0, 0.0],  # A: event at 4, inside bin 1
            [L3, 0.0, 0.0],  # B: censored at 4, inside bin 1
            [0.0, 0.0, 0.0],  # C: censored at 3, the edge closing bin 0
            [L3, 0.0, 0.0],  # D: event at 3, the edge closing bin 0
            [0.0, 0.0, 0.0],  # E: censored at 2, inside bin 0
            [0.0, -L3, L3],  # F: event at 7, in the open last bin
        ],
        dtype=torch.float64,
    )
    event = torch.tensor([True, False, False, True, False, True])
    time = torch.tensor([4.0, 4.0, 3.0, 3.0, 2.0, 7.0], dtype=torch.float64)
    return logits, event, time


def test_loss_equals_the_hand_computed_likelihood() -> None:
    logits, event, time = _case()
    log_lik = [
        math.log(0.75) + math.log(0.5),  # A: survived bin 0 (h=.25), event in bin 1 (h=.5)
        math.log(0.25),  # B: survived bin 0 only (h=.75); bin 1 observed partly: nothing
        math.log(0.5),  # C: bin 0 fully observed and survived
        math.log(0.75),  # D: event in bin 0 (h=.75)
        0.0,  # E: no full bin: contributes nothing
        math.log(0.5) + math.log(0.75) + math.log(0.75),  # F: 1-.5, 1-.25, then h=.75
    ]
    expected = -sum(log_lik)
    got_sum = logistic_hazard_nll(logits, event, time, BINS, reduction="sum")
    assert float(got_sum) == pytest.approx(expected, rel=1e-12)
    assert float(logistic_hazard_nll(logits, event, time, BINS)) == pytest.approx(expected / 6)


def _pycox_nll_logistic_hazard(phi: torch.Tensor, idx: torch.Tensor, events: torch.Tensor):
    """pycox.models.loss.nll_logistic_hazard (reduction='none'), reproduced from its source."""
    y_bce = torch.zeros_like(phi).scatter(1, idx.view(-1, 1), events.view(-1, 1).to(phi.dtype))
    bce = F.binary_cross_entropy_with_logits(phi, y_bce, reduction="none")
    return bce.cumsum(1).gather(1, idx.view(-1, 1)).view(-1)


def test_loss_equals_pycox_formula_with_the_last_full_bin_for_the_censored() -> None:
    gen = torch.Generator().manual_seed(0)
    bins = (3.0, 6.0, 12.0, 24.0)
    n = 40
    logits = torch.randn(n, 5, generator=gen, dtype=torch.float64) * 2
    time = torch.rand(n, generator=gen, dtype=torch.float64) * 40 + 0.5
    time[:4] = torch.tensor([3.0, 6.0, 12.0, 24.0], dtype=torch.float64)  # on edges
    event = torch.rand(n, generator=gen) < 0.5
    survived, event_bin = bin_targets(event, time, bins)
    # pycox's idx: the event bin, or the last bin a censored patient survived entirely
    idx = torch.where(event, event_bin, survived - 1)
    keep = idx >= 0  # censored inside the first bin: no bin to count (our convention)
    reference = _pycox_nll_logistic_hazard(logits[keep], idx[keep], event[keep]).sum()
    got = logistic_hazard_nll(logits, event, time, bins, reduction="sum")
    torch.testing.assert_close(got, reference)


def test_a_time_inside_a_bin_follows_the_stated_convention() -> None:
    _, event, time = _case()
    survived, event_bin = bin_targets(event, time, BINS)
    assert survived.tolist() == [1, 1, 1, 0, 0, 2]
    assert event_bin.tolist() == [1, -1, -1, 0, -1, 2]


def test_raising_the_event_bins_hazard_lowers_the_loss() -> None:
    logits, event, time = _case()
    base = logistic_hazard_nll(logits, event, time, BINS)
    up = logits.clone()
    up[0, 1] += 1.0  # A's event bin
    assert logistic_hazard_nll(up, event, time, BINS) < base
    up = logits.clone()
    up[1, 0] += 1.0  # a bin B survived
    assert logistic_hazard_nll(up, event, time, BINS) > base


def test_the_bin_a_censoring_time_falls_inside_gets_no_gradient() -> None:
    logits, event, time = _case()
    logits.requires_grad_(True)
    logistic_hazard_nll(logits, event, time, BINS, reduction="sum").backward()
    grad = logits.grad
    assert grad is not None
    assert grad[1, 1:].abs().sum() == 0 and grad[1, 0] != 0  # B: bin 0 only
    assert grad[4].abs().sum() == 0  # E: nothing
    assert grad[2, 0] != 0 and grad[2, 1:].abs().sum() == 0  # C: censored on the edge


def test_loss_is_invariant_to_permuting_the_batch() -> None:
    logits, event, time = _case()
    perm = torch.tensor([5, 2, 0, 4, 1, 3])
    torch.testing.assert_close(
        logistic_hazard_nll(logits[perm], event[perm], time[perm], BINS),
        logistic_hazard_nll(logits, event, time, BINS),
    )


@pytest.mark.parametrize("bins", [(), (0.0, 3.0), (6.0, 3.0), (3.0, 3.0), (-1.0,)])
def test_bad_time_bins_are_refused(bins: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="time_bins_months"):
        check_time_bins(bins)


def test_logits_of_the_wrong_width_are_refused() -> None:
    logits, event, time = _case()
    with pytest.raises(ValueError, match=r"\(B, 5\) logits"):
        logistic_hazard_nll(logits, event, time, (3.0, 6.0, 12.0, 24.0))
