"""The project's one Harrell C agrees with scikit-survival and lifelines, ties included."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lifelines.utils import concordance_index
from sksurv.metrics import concordance_index_censored

from tle_kedro.evaluation.concordance import harrell_c


def _tied_sample(seed: int, n: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(risk, event, time) on coarse grids: many tied times and tied risks."""
    rng = np.random.default_rng(seed)
    time = rng.integers(1, 6, n).astype(np.float64)
    event = rng.random(n) < 0.5
    event[0] = True
    risk = rng.integers(0, 4, n).astype(np.float64)
    return risk, event, time


@pytest.mark.parametrize("seed", range(20))
def test_agrees_with_sksurv_and_lifelines_on_tied_times_and_risks(seed: int) -> None:
    risk, event, time = _tied_sample(seed)
    ours = harrell_c(risk, event, time)
    assert ours == concordance_index_censored(event, time, risk)[0]
    # lifelines scores survival (higher = later): the risk's negative
    assert ours == pytest.approx(concordance_index(time, -risk, event), abs=1e-12)


def test_an_event_and_a_censoring_at_one_time_are_comparable_two_events_are_not() -> None:
    time = np.array([1.0, 1.0, 1.0])
    event = np.array([True, False, True])
    # pairs: (0, 1) and (2, 1) comparable (the censored patient outlives); (0, 2) is not
    assert harrell_c(np.array([2.0, 0.0, -1.0]), event, time) == 0.5
    assert harrell_c(np.array([2.0, 0.0, 1.0]), event, time) == 1.0


def test_tied_risks_count_one_half() -> None:
    time, event = np.array([1.0, 2.0]), np.array([True, False])
    assert harrell_c(np.array([0.3, 0.3 + 1e-9]), event, time) == 0.5


def test_negated_risk_gives_one_minus_c_and_order_of_patients_does_not_matter() -> None:
    rng = np.random.default_rng(0)
    risk, time, event = rng.normal(size=50), rng.exponential(10, 50), rng.random(50) < 0.5
    c = harrell_c(risk, event, time)
    assert harrell_c(-risk, event, time) == pytest.approx(1 - c)
    perm = rng.permutation(50)
    assert harrell_c(risk[perm], event[perm], time[perm]) == pytest.approx(c)


def test_nan_without_a_comparable_pair_or_with_a_non_finite_risk() -> None:
    time = np.array([1.0, 2.0, 3.0])
    assert math.isnan(harrell_c(np.arange(3.0), np.zeros(3, bool), time))
    assert math.isnan(harrell_c(np.array([0.0, np.nan, 1.0]), np.ones(3, bool), time))


def test_inputs_of_unequal_length_are_an_error() -> None:
    with pytest.raises(ValueError, match="equal length"):
        harrell_c(np.zeros(3), np.ones(2, bool), np.ones(3))
