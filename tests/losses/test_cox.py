from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import CoxPHFitter

from tle_kedro.losses.cox import cox_partial_likelihood

# times with ties among events (t=1: two events; t=3: two events and a censoring)
TIME = np.array([1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0])
EVENT = np.array([1, 1, 0, 1, 0, 1, 1, 0], dtype=bool)
LOG_RISK = np.array([0.3, -0.2, 0.5, 1.1, -0.7, 0.0, 0.4, -1.3])


def hand_log_pl(log_risk: np.ndarray, time: np.ndarray, event: np.ndarray, ties: str) -> float:
    """Cox partial log-likelihood written out (Efron 1977; Breslow 1974)."""
    total = 0.0
    for t in np.unique(time[event]):
        dead = (time == t) & event
        d = int(dead.sum())
        at_risk = np.exp(log_risk[time >= t]).sum()
        tied = np.exp(log_risk[dead]).sum()
        total += log_risk[dead].sum()
        if ties == "efron":
            total -= sum(np.log(at_risk - (k / d) * tied) for k in range(d))
        else:
            total -= d * np.log(at_risk)
    return float(total)


def loss(log_risk: np.ndarray, event: np.ndarray, time: np.ndarray, **kw: object) -> torch.Tensor:
    return cox_partial_likelihood(
        torch.tensor(log_risk, dtype=torch.float32),
        torch.tensor(event),
        torch.tensor(time, dtype=torch.float32),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_sum_equals_the_hand_computed_partial_likelihood_with_ties(ties: str) -> None:
    expected = -hand_log_pl(LOG_RISK, TIME, EVENT, ties)
    got = loss(LOG_RISK, EVENT, TIME, ties=ties, reduction="sum")
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_mean_divides_by_the_number_of_events_even_with_ties() -> None:
    # torchsurv's own "mean" divides by the 3 distinct event times here, not the 5 events
    total = loss(LOG_RISK, EVENT, TIME, reduction="sum")
    mean = loss(LOG_RISK, EVENT, TIME)
    assert float(mean) == pytest.approx(float(total) / EVENT.sum(), rel=1e-6)


def test_efron_loss_matches_lifelines_log_likelihood() -> None:
    rng = np.random.default_rng(0)
    n = 60
    x = rng.normal(size=(n, 2))
    time = np.ceil(rng.exponential(np.exp(-(x @ [0.8, -0.5])) * 10)).clip(1, 12)  # many ties
    event = (rng.random(n) < 0.7) | (time < 12)
    df = pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "T": time, "E": event.astype(int)})
    cph = CoxPHFitter().fit(df, "T", "E")  # Efron ties
    log_risk = x @ cph.params_.to_numpy()
    got = loss(log_risk, event, time, reduction="sum")
    # float32 loss vs float64 lifelines: 1e-5 relative
    assert -float(got) == pytest.approx(cph.log_likelihood_, rel=1e-5)


@settings(max_examples=25, deadline=None)
@given(st.permutations(list(range(len(TIME)))))
def test_loss_is_invariant_to_batch_order(order: list[int]) -> None:
    base = loss(LOG_RISK, EVENT, TIME)
    perm = loss(LOG_RISK[order], EVENT[order], TIME[order])
    assert float(perm) == pytest.approx(float(base), rel=1e-6)


@pytest.mark.parametrize(
    ("event", "time"),
    [
        (np.zeros(3, bool), np.array([1.0, 2.0, 3.0])),  # no event
        (np.ones(1, bool), np.array([1.0])),  # one patient (torchsurv itself crashes here)
    ],
)
def test_batch_without_information_gives_zero_loss_connected_to_the_graph(
    event: np.ndarray, time: np.ndarray
) -> None:
    log_risk = torch.randn(len(time), requires_grad=True)
    out = cox_partial_likelihood(log_risk, torch.tensor(event), torch.tensor(time).float())
    assert float(out.detach()) == 0.0
    out.backward()
    assert log_risk.grad is not None and torch.all(log_risk.grad == 0)


def test_gradient_pushes_early_events_up() -> None:
    log_risk = torch.zeros(4, requires_grad=True)
    event = torch.tensor([True, False, True, False])
    time = torch.tensor([1.0, 2.0, 3.0, 4.0])
    cox_partial_likelihood(log_risk, event, time).backward()
    assert log_risk.grad is not None and log_risk.grad[0] < 0 < log_risk.grad[3]


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="1-D log_risk"):
        cox_partial_likelihood(torch.zeros(3, 1), torch.ones(3, dtype=torch.bool), torch.ones(3))
    with pytest.raises(ValueError, match="ties must be"):
        loss(LOG_RISK, EVENT, TIME, ties="exact")
