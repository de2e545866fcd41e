"""Calibration of predicted recurrence probabilities at a fixed time (default 12 months).

Two views of the same question, "does P(recurrence by t) mean what it says?":

- :func:`calibration_by_group`: patients split into quantile groups of predicted probability
  (= risk quantiles for a proportional-hazards model); per group the mean prediction against
  the Kaplan–Meier observed probability 1 − S_KM(t) with its 95 % interval (lifelines).
- :func:`integrated_calibration_index`: the ICI of Austin, Harrell & van Klaveren (2020),
  "Graphical calibration curves and the integrated calibration index (ICI) for survival
  models", Stat Med 39:2714–2742. The smoothed observed probability of each patient comes
  from a Cox model (lifelines) of the outcome on a restricted cubic spline with 3 knots (10th,
  50th, 90th percentiles, Harrell's default) of the complementary log-log of the predicted
  probability, fitted on the full follow-up; ICI = mean |predicted − smoothed observed| at t.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceError

logger = logging.getLogger(__name__)

CALIBRATION_COLUMNS = (
    "group",
    "n",
    "n_events",
    "predicted",
    "observed",
    "observed_lo",
    "observed_hi",
)


def _check_inputs(p_event: np.ndarray, time: np.ndarray, event: np.ndarray) -> None:
    if not (p_event.shape == time.shape == event.shape) or p_event.ndim != 1:
        raise ValueError(
            f"calibration: p_event, time and event must be 1-D of equal length, got shapes "
            f"{p_event.shape}, {time.shape}, {event.shape}"
        )
    if not np.all((p_event >= 0) & (p_event <= 1)):
        raise ValueError("calibration: predicted probabilities must lie in [0, 1] (1 − surv_t)")


def quantile_groups(values: np.ndarray, n_groups: int) -> np.ndarray:
    """(n,) int group 0..G−1 of equal size by rank of ``values`` (ties split by order)."""
    if n_groups < 1 or n_groups > len(values):
        raise ValueError(f"n_groups must be in [1, {len(values)}], got {n_groups}")
    ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable")
    return (ranks * n_groups // len(values)).astype(int)


def km_event_probability(time: np.ndarray, event: np.ndarray, t: float) -> tuple[float, ...]:
    """Kaplan–Meier (lifelines) 1 − S(t) with its 95 % interval: (estimate, lo, hi)."""
    kmf = KaplanMeierFitter().fit(time, event.astype(int))
    surv = float(kmf.survival_function_at_times(t).iloc[0])
    ci = kmf.confidence_interval_survival_function_
    row = ci.loc[ci.index <= t].iloc[-1]
    s_lo, s_hi = float(row.iloc[0]), float(row.iloc[1])
    return 1.0 - surv, 1.0 - s_hi, 1.0 - s_lo


def calibration_by_group(
    p_event: np.ndarray, time: np.ndarray, event: np.ndarray, t: float = 12.0, n_groups: int = 5
) -> pd.DataFrame:
    """Predicted vs Kaplan–Meier observed P(event by ``t``) per predicted-probability group.

    Args:
        p_event: (n,) predicted P(recurrence by t) = 1 − S(t | x).
        time, event: (n,) outcomes in months / 0-1.
    Returns:
        DataFrame with columns :data:`CALIBRATION_COLUMNS`, one row per group (lowest first).
    """
    _check_inputs(p_event, time, event)
    groups = quantile_groups(p_event, n_groups)
    rows = []
    for g in range(n_groups):
        sel = groups == g
        obs, lo, hi = km_event_probability(time[sel], event[sel], t)
        rows.append(
            (g + 1, int(sel.sum()), int(event[sel].sum()), float(p_event[sel].mean()), obs, lo, hi)
        )
    return pd.DataFrame(rows, columns=list(CALIBRATION_COLUMNS))


def rcs_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """(n, 2) restricted cubic spline basis with 3 knots (Harrell 2015, eq. 2.25): x and one
    nonlinear term, scaled by (k3 − k1)² so both columns have similar magnitude."""
    k1, k2, k3 = knots
    cube = np.maximum(x[:, None] - knots[None, :], 0.0) ** 3  # (n, 3)
    nonlinear = cube[:, 0] - cube[:, 1] * (k3 - k1) / (k3 - k2) + cube[:, 2] * (k2 - k1) / (k3 - k2)
    return np.column_stack([x, nonlinear / (k3 - k1) ** 2])


def smoothed_observed(
    p_event: np.ndarray, time: np.ndarray, event: np.ndarray, t: float = 12.0
) -> np.ndarray:
    """(n,) smoothed observed P(event by t | prediction): Cox model on an RCS of cll(p)."""
    _check_inputs(p_event, time, event)
    p = np.clip(p_event, 1e-6, 1 - 1e-6)
    cll = np.log(-np.log(1.0 - p))
    knots = np.quantile(cll, [0.1, 0.5, 0.9])
    basis = rcs_basis(cll, knots) if np.all(np.diff(knots) > 0) else cll[:, None]
    frame = pd.DataFrame(basis, columns=[f"b{k}" for k in range(basis.shape[1])])
    frame["time"], frame["event"] = time, event.astype(int)
    cph = CoxPHFitter().fit(frame, duration_col="time", event_col="event")
    surv = cph.predict_survival_function(frame.drop(columns=["time", "event"]), times=[t])
    return 1.0 - surv.to_numpy()[0]


def integrated_calibration_index(
    p_event: np.ndarray, time: np.ndarray, event: np.ndarray, t: float = 12.0
) -> float:
    """ICI at ``t`` (Austin et al. 2020): mean |p_event − smoothed observed|; NaN if the
    calibration model cannot be fitted (no event, no variation in predictions)."""
    if not event.any() or np.ptp(p_event) == 0:
        logger.warning("ICI at %g months undefined (no event or constant predictions)", t)
        return float("nan")
    try:
        observed = smoothed_observed(p_event, time, event, t)
    except ConvergenceError:
        logger.warning("ICI at %g months: calibration Cox model did not converge", t)
        return float("nan")
    return float(np.mean(np.abs(p_event - observed)))
