from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter

from tle_kedro.models.survival import (
    BaselineHazard,
    breslow_baseline,
    calibration_slope,
    cumulative_baseline_at,
    survival_at,
)


@pytest.fixture(scope="module")
def fitted() -> tuple[CoxPHFitter, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 60
    x = rng.normal(size=(n, 2))
    time = np.ceil(rng.exponential(np.exp(-(x @ [0.8, -0.5])) * 10)).clip(1, 12)  # ties
    event = (rng.random(n) < 0.7) | (time < 12)
    df = pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "T": time, "E": event.astype(int)})
    cph = CoxPHFitter().fit(df, "T", "E")
    return cph, df, x @ cph.params_.to_numpy()


def test_baseline_matches_lifelines_for_its_centred_risk(fitted) -> None:  # type: ignore[no-untyped-def]
    cph, df, log_risk = fitted
    # lifelines' baseline is for centred covariates: shift the log-risk by its mean
    centred = log_risk - log_risk.mean()
    baseline = breslow_baseline(centred, df["E"].to_numpy(), df["T"].to_numpy())
    expected = cph.baseline_cumulative_hazard_
    np.testing.assert_allclose(baseline.times, expected.index.to_numpy())
    np.testing.assert_allclose(baseline.cumulative_hazard, expected.iloc[:, 0], rtol=1e-10)


def test_survival_matches_lifelines_at_the_observed_times(fitted) -> None:  # type: ignore[no-untyped-def]
    cph, df, log_risk = fitted
    baseline = breslow_baseline(log_risk, df["E"].to_numpy(), df["T"].to_numpy())
    # lifelines interpolates linearly between times; at the times themselves both agree
    times = np.array([1.0, 2.0, 6.0, 12.0])
    expected = cph.predict_survival_function(df.iloc[:7], times=times).to_numpy().T  # (7, 4)
    np.testing.assert_allclose(survival_at(log_risk[:7], baseline, times), expected, rtol=1e-8)


def test_step_function_is_zero_before_the_first_time_and_flat_after_the_last() -> None:
    baseline = breslow_baseline(np.zeros(4), np.array([1, 1, 0, 0]), np.array([2.0, 3.0, 3.0, 5.0]))
    # hand Breslow with log-risk 0: dH = events / at-risk: t=2: 1/4, t=3: 1/3, t=5: 0
    np.testing.assert_allclose(baseline.cumulative_hazard, [0.25, 0.25 + 1 / 3, 0.25 + 1 / 3])
    h = cumulative_baseline_at(baseline, np.array([0.0, 1.99, 2.0, 2.5, 3.0, 100.0]))
    np.testing.assert_allclose(h, [0.0, 0.0, 0.25, 0.25, 0.25 + 1 / 3, 0.25 + 1 / 3])


def test_survival_shapes_and_higher_risk_means_lower_survival() -> None:
    baseline = BaselineHazard(np.array([1.0, 2.0]), np.array([0.1, 0.3]))
    s_scalar = survival_at(np.array([0.0, 1.0]), baseline, 12.0)
    assert s_scalar.shape == (2,)
    np.testing.assert_allclose(s_scalar, np.exp(-0.3 * np.exp([0.0, 1.0])))
    s_grid = survival_at(np.array([0.0, 1.0, -1.0]), baseline, np.array([0.5, 1.5, 24.0]))
    assert s_grid.shape == (3, 3) and np.all(s_grid[:, 0] == 1.0)
    assert np.all(s_grid[1] <= s_grid[0]) and np.all(np.diff(s_grid, axis=1) <= 0)


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="equal length"):
        breslow_baseline(np.zeros(3), np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="finite"):
        breslow_baseline(np.array([0.0, np.nan]), np.ones(2), np.ones(2))


def test_times_in_place_of_events_name_the_argument_order() -> None:
    time, event = np.array([2.0, 3.5, 5.0]), np.array([1, 0, 1])
    for fit in (breslow_baseline, calibration_slope):
        with pytest.raises(ValueError, match=r"\(log_risk, event, time\)"):
            fit(np.zeros(3), time, event)


def test_calibration_slope_recovers_an_overspread_risk() -> None:
    rng = np.random.default_rng(3)
    true = rng.normal(size=2000)
    time = rng.exponential(1.0 / np.exp(true))  # Cox model with log-hazard = true
    event = time < 2.0
    time = np.minimum(time, 2.0)
    assert calibration_slope(true, event, time, bounds=(0.1, 2.0)) == pytest.approx(1.0, abs=0.08)
    assert calibration_slope(2.0 * true, event, time) == pytest.approx(0.5, abs=0.04)
    assert calibration_slope(0.5 * true, event, time, bounds=(0.1, 3.0)) == pytest.approx(
        2.0, abs=0.16
    )
    assert calibration_slope(0.5 * true, event, time) == 1.0  # shrink only by default
    # a risk that ranks backwards is clipped to the lower bound, keeping its order
    assert calibration_slope(-true, event, time) == pytest.approx(0.1)
    assert calibration_slope(np.zeros(2000), event, time) == 1.0


def test_calibration_slope_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no event"):
        calibration_slope(np.arange(5.0), np.zeros(5, bool), np.ones(5))
    with pytest.raises(ValueError, match="finite"):
        calibration_slope(np.array([np.nan, 1.0]), np.ones(2, bool), np.ones(2))
