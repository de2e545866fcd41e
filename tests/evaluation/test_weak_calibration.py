"""Calibration slope and intercept at a fixed time: hand cases, sksurv reference, bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.util import Surv

from tests.evaluation import weibull_survival
from tle_kedro.evaluation.weak_calibration import (
    calibration_at,
    cox_slope,
    offset_intercept,
    predicted_log_cumhazard,
    truncate_at,
)


@pytest.fixture(scope="module")
def cohort() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log_hazard, time, event) from the Weibull PH model of ``tests.evaluation``; times
    rounded to 0.5 month so that there are ties."""
    rng = np.random.default_rng(7)
    n = 3000
    log_hazard = rng.normal(0.0, 1.0, n)
    event_time = 40.0 * (rng.exponential(size=n) * np.exp(-log_hazard)) ** (1 / 0.8)
    follow_up = rng.uniform(12.0, 40.0, n)
    time = np.round(np.minimum(event_time, follow_up) * 2) / 2 + 0.5
    return log_hazard, time, event_time <= follow_up


def test_perfectly_calibrated_predictions_have_slope_one_and_intercept_zero(cohort) -> None:
    lh, time, event = cohort
    for t in (12.0, 24.0):
        cal = calibration_at(weibull_survival(t, lh), time, event, t)
        assert cal["slope"][0] == pytest.approx(1.0, abs=0.08)
        assert cal["intercept"][0] == pytest.approx(0.0, abs=0.08)


def test_twice_too_spread_log_hazards_give_slope_one_half(cohort) -> None:
    lh, time, event = cohort
    cal = calibration_at(weibull_survival(12.0, 2.0 * lh), time, event, 12.0)
    assert cal["slope"][0] == pytest.approx(0.5, abs=0.04)


def test_twice_the_cumulative_hazard_gives_intercept_minus_log_two(cohort) -> None:
    lh, time, event = cohort
    over = weibull_survival(12.0, lh) ** 2  # H(12 | x) doubled for everybody
    cal = calibration_at(over, time, event, 12.0)
    assert cal["intercept"][0] == pytest.approx(-np.log(2.0), abs=0.08)
    assert cal["slope"][0] == pytest.approx(1.0, abs=0.08)  # the spread is right


def test_slope_equals_sksurv_breslow_cox_also_on_a_resample(cohort) -> None:
    lh, time, event = (a[:300] for a in cohort)
    tt, et = truncate_at(time, event, 12.0)
    lp = predicted_log_cumhazard(weibull_survival(12.0, 1.5 * lh))
    idx = np.random.default_rng(0).integers(0, 300, 300)
    counts = np.stack([np.ones(300), np.bincount(idx, minlength=300)])
    slopes = cox_slope(tt, et, lp, counts)
    for b, rows in enumerate((np.arange(300), idx)):
        ref = CoxPHSurvivalAnalysis(ties="breslow").fit(
            lp[rows, None], Surv.from_arrays(et[rows], tt[rows])
        )
        assert slopes[b] == pytest.approx(ref.coef_[0], rel=1e-6)


def test_intercept_is_the_breslow_sum_with_the_prediction_as_offset() -> None:
    # risk sets: at t=1 all three (H = 1, 1, 2), at t=3 the last one (H = 2)
    time, event = np.array([1.0, 2.0, 3.0]), np.array([1, 0, 1])
    lp = np.log([1.0, 1.0, 2.0])
    expected = np.log(1 / (1 + 1 + 2) + 1 / 2)
    assert offset_intercept(time, event, lp, np.ones((1, 3)))[0] == pytest.approx(expected)
    # a patient counted twice in a resample enters every risk set twice
    twice = np.log(1 / (2 + 1 + 2) + 1 / 2)
    assert offset_intercept(time, event, lp, np.array([[2.0, 1.0, 1.0]]))[0] == pytest.approx(
        np.log(2 / (2 + 1 + 2) + 1 / 2)
    )
    assert twice != pytest.approx(expected)


def test_recurrences_after_the_horizon_are_censored_at_it() -> None:
    time, event = truncate_at(np.array([5.0, 15.0, 30.0]), np.array([1, 1, 0]), 12.0)
    assert time.tolist() == [5.0, 12.0, 12.0]
    assert event.tolist() == [True, False, False]


def test_a_resample_without_events_or_without_spread_gives_nan() -> None:
    time = np.arange(1.0, 7.0)
    event = np.array([0, 1, 1, 0, 1, 0])
    lp = np.array([0.1, 0.5, -0.2, 0.3, 0.0, 0.2])
    counts = np.array([[2.0, 0.0, 0.0, 3.0, 0.0, 1.0], np.ones(6)])
    slope = cox_slope(time, event, lp, counts)
    assert np.isnan(slope[0]) and np.isfinite(slope[1])
    assert np.isnan(offset_intercept(time, event, lp, counts)[0])
    assert np.isnan(cox_slope(time, event, np.zeros(6), np.ones((1, 6)))[0])


def test_an_event_always_at_the_highest_risk_has_no_finite_slope() -> None:
    # every event has the highest prediction of its risk set: the likelihood grows forever
    time, event = np.arange(1.0, 5.0), np.array([1, 0, 1, 0])
    lp = np.array([0.9, 0.1, 0.5, 0.2])
    assert np.isnan(cox_slope(time, event, lp, np.ones((1, 4)))[0])


def test_bootstrap_interval_covers_one_for_calibrated_predictions(cohort) -> None:
    lh, time, event = (a[:400] for a in cohort)
    idx = np.random.default_rng(1).integers(0, 400, (300, 400))
    counts = np.stack([np.bincount(i, minlength=400) for i in idx]).astype(float)
    cal = calibration_at(weibull_survival(12.0, lh), time, event, 12.0, counts)
    lo, hi = np.quantile(cal["slope"], [0.025, 0.975])
    assert lo < 1.0 < hi and hi - lo < 0.8


def test_bad_shapes_and_non_finite_predictions_are_errors() -> None:
    with pytest.raises(ValueError, match="counts"):
        cox_slope(np.ones(3), np.ones(3), np.ones(3), np.ones((1, 4)))
    with pytest.raises(ValueError, match="finite"):
        cox_slope(np.ones(3), np.ones(3), np.array([0.0, np.inf, 1.0]), np.ones((1, 3)))
