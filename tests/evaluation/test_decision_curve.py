"""Decision curves: the net-benefit formula on hand-computed cases, with and without censoring."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines import KaplanMeierFitter

from tle_kedro.evaluation.decision_curve import (
    DECISION_CURVE_COLUMNS,
    TREAT_ALL,
    TREAT_NONE,
    decision_curve,
    threshold_grid,
)

# four patients followed past 12 months or recurring before: no censoring before t = 12
P = np.array([0.9, 0.6, 0.55, 0.1])
TIME = np.array([2.0, 5.0, 20.0, 20.0])
EVENT = np.array([1, 1, 0, 0])


def _nb(curve, model: str, threshold: float) -> float:
    row = curve[(curve["model"] == model) & np.isclose(curve["threshold"], threshold)]
    return float(row["net_benefit"].iloc[0])


def test_net_benefit_is_tp_minus_weighted_fp_per_patient() -> None:
    curve = decision_curve({"m": P}, TIME, EVENT, 12.0, [0.2, 0.5])
    assert tuple(curve.columns) == DECISION_CURVE_COLUMNS
    # threshold 0.5: three treated, two recur: NB = 2/4 - 1/4 * 0.5/0.5
    assert _nb(curve, "m", 0.5) == pytest.approx(0.25)
    # threshold 0.2: the same three: NB = 2/4 - 1/4 * 0.2/0.8
    assert _nb(curve, "m", 0.2) == pytest.approx(0.5 - 0.25 * 0.25)
    # treat all: prevalence 1/2: NB = 1/2 - 1/2 * 0.2/0.8
    assert _nb(curve, TREAT_ALL, 0.2) == pytest.approx(0.5 - 0.5 * 0.25)
    assert _nb(curve, TREAT_NONE, 0.2) == 0.0
    assert curve["model"].unique().tolist() == ["m", TREAT_ALL, TREAT_NONE]


def test_censored_patients_count_through_kaplan_meier_among_the_treated() -> None:
    time = np.array([2.0, 4.0, 6.0, 8.0, 20.0, 3.0])
    event = np.array([1, 0, 1, 0, 0, 0])
    p = np.array([0.8, 0.7, 0.6, 0.5, 0.46, 0.1])
    treated = p >= 0.45
    km = KaplanMeierFitter().fit(time[treated], event[treated])
    s = float(km.survival_function_at_times(12.0).iloc[0])
    share = treated.mean()
    expected = (1 - s) * share - s * share * 0.45 / 0.55
    curve = decision_curve({"m": p}, time, event, 12.0, [0.45])
    assert _nb(curve, "m", 0.45) == pytest.approx(expected)


def test_treated_patients_all_gone_before_the_horizon_give_no_estimate() -> None:
    # dcurves' rule: the Kaplan-Meier of the treated must reach t (here they end at 5 months)
    curve = decision_curve({"m": np.array([0.9, 0.6, 0.3, 0.1])}, TIME, EVENT, 12.0, [0.5])
    assert np.isnan(_nb(curve, "m", 0.5))


def test_reserved_names_and_probabilities_outside_zero_one_are_errors() -> None:
    with pytest.raises(ValueError, match="reserved"):
        decision_curve({TREAT_ALL: P}, TIME, EVENT, 12.0, [0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        decision_curve({"m": P + 1}, TIME, EVENT, 12.0, [0.2])


def test_threshold_grid_includes_both_ends_and_rejects_bad_ranges() -> None:
    assert threshold_grid(0.1, 0.3, 0.1).tolist() == [0.1, 0.2, 0.3]
    with pytest.raises(ValueError, match="decision_thresholds"):
        threshold_grid(0.0, 0.5, 0.1)
