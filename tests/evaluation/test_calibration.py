from __future__ import annotations

import numpy as np
import pytest
from lifelines import KaplanMeierFitter

from tests.evaluation import make_cohort, weibull_survival
from tle_kedro.evaluation.calibration import (
    CALIBRATION_COLUMNS,
    calibration_by_group,
    integrated_calibration_index,
    quantile_groups,
)

ICI_TOLERANCE = 0.02  # sampling noise of the smoothed observed curve at n = 2000


@pytest.fixture(scope="module")
def calibrated():
    clinical, truth = make_cohort(2000, seed=0)
    p_true = 1.0 - weibull_survival(12.0, truth["true_log_hazard"].to_numpy())
    return p_true, clinical["time_months"].to_numpy(), clinical["recurrence"].to_numpy()


def test_true_probabilities_give_ici_close_to_zero(calibrated):
    p, time, event = calibrated
    assert integrated_calibration_index(p, time, event, t=12.0) < ICI_TOLERANCE


def test_overestimated_probabilities_give_a_large_ici(calibrated):
    p, time, event = calibrated
    assert integrated_calibration_index(np.clip(1.5 * p, 0, 1), time, event, t=12.0) > 0.1


def test_ici_is_nan_without_events():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.1, 0.5, 30)
    assert np.isnan(integrated_calibration_index(p, rng.uniform(1, 20, 30), np.zeros(30, int)))


def test_groups_report_km_observed_probability_per_quantile(calibrated):
    p, time, event = calibrated
    table = calibration_by_group(p, time, event, t=12.0, n_groups=5)
    assert tuple(table.columns) == CALIBRATION_COLUMNS
    assert table["n"].tolist() == [400] * 5
    assert table["predicted"].is_monotonic_increasing
    top = quantile_groups(p, 5) == 4
    kmf = KaplanMeierFitter().fit(time[top], event[top])
    expected = 1.0 - kmf.survival_function_at_times(12.0).iloc[0]
    assert table["observed"].iloc[4] == pytest.approx(expected)
    assert (table["observed_lo"] <= table["observed"]).all()
    assert (table["observed"] <= table["observed_hi"]).all()
    np.testing.assert_allclose(table["predicted"], table["observed"], atol=0.06)


def test_quantile_groups_are_equal_sized_and_ordered():
    g = quantile_groups(np.array([5.0, 1.0, 3.0, 2.0, 4.0, 6.0]), 3)
    assert g.tolist() == [2, 0, 1, 0, 1, 2]


def test_invalid_probabilities_are_rejected():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration_by_group(np.array([0.2, 1.4]), np.array([1.0, 2.0]), np.array([1, 0]))
