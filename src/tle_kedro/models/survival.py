"""From a Cox log-risk to survival curves: the Breslow baseline hazard (Breslow 1972).

Fitted on a training fold's log-risks, outcomes and times; then
``S(t | x) = exp(-H0(t) * exp(log_risk(x)))`` gives survival curves and P(recurrence by t).
The fit is scikit-survival's ``BreslowEstimator``; evaluation is ours because sksurv's
``StepFunction`` returns H0 at the first time for any earlier t (it should be 0) and refuses
t after the last time (we hold the last value: no information past follow-up).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from sksurv.linear_model.coxph import BreslowEstimator


class BaselineHazard(NamedTuple):
    """Breslow cumulative baseline hazard, a right-continuous step function.

    Attributes:
        times: (K,) float64 sorted distinct times of the training data.
        cumulative_hazard: (K,) float64 H0 at each of ``times`` (non-decreasing).
    """

    times: np.ndarray
    cumulative_hazard: np.ndarray


def event_indicator(event: np.ndarray, where: str) -> np.ndarray:
    """(N,) bool from 0/1 or bool ``event``; anything else (times passed in its place) is an
    error, which catches a call in another argument order than ``(risk, event, time)``."""
    e = np.asarray(event).ravel()
    if e.dtype != bool and not np.isin(e, (0, 1)).all():
        raise ValueError(
            f"{where}: event must be 0/1 or bool, got values such as {np.unique(e)[:5]}; "
            "the argument order is (log_risk, event, time)"
        )
    return e.astype(bool)


def breslow_baseline(log_risk: np.ndarray, event: np.ndarray, time: np.ndarray) -> BaselineHazard:
    """Fit the Breslow cumulative baseline hazard for fixed log-risks.

    ``H0(t) = sum over event times t_k <= t of d_k / sum_{j: t_j >= t_k} exp(log_risk_j)``.

    Args:
        log_risk: (N,) model log-risk on the training data.
        event: (N,) 0/1 or bool; time: (N,) float > 0.
    Returns:
        ``BaselineHazard(times, cumulative_hazard)``; a 2-tuple.
    """
    lr = np.asarray(log_risk, dtype=np.float64).ravel()
    t = np.asarray(time, dtype=np.float64).ravel()
    e = event_indicator(event, "breslow_baseline")
    if not (lr.shape == t.shape == e.shape) or lr.size == 0:
        raise ValueError(
            f"breslow_baseline needs non-empty 1-D log_risk, time, event of equal length, got "
            f"{lr.shape}, {t.shape}, {e.shape}"
        )
    if not (np.isfinite(lr).all() and np.isfinite(t).all()):
        raise ValueError("breslow_baseline: log_risk and time must be finite (found NaN/inf)")
    estimator = BreslowEstimator().fit(lr, e, t)
    return BaselineHazard(
        times=np.asarray(estimator.cum_baseline_hazard_.x, dtype=np.float64),
        cumulative_hazard=np.asarray(estimator.cum_baseline_hazard_.y, dtype=np.float64),
    )


def calibration_slope(
    log_risk: np.ndarray,
    event: np.ndarray,
    time: np.ndarray,
    bounds: tuple[float, float] = (0.1, 1.0),
) -> float:
    """Cox calibration slope of ``log_risk`` on held-out patients, clipped to ``bounds``.

    The coefficient of a one-covariate Cox model (lifelines ``CoxPHFitter``, no penalty) of
    the outcome on the log-risk: 1 = well spread, < 1 = risks too far apart (overfitted).
    The lower bound keeps the ranking when the held-out patients show none (a slope <= 0);
    the default upper bound 1 only ever shrinks: on a few dozen held-out patients a slope
    above 1 was noise more often than an under-spread network (docs/modeling.md).

    Raises:
        ValueError: no event among the patients, or inputs of unequal length / non-finite.
    """
    from lifelines import CoxPHFitter

    lr = np.asarray(log_risk, dtype=np.float64).ravel()
    t = np.asarray(time, dtype=np.float64).ravel()
    e = event_indicator(event, "calibration_slope")
    if not (lr.shape == t.shape == e.shape) or not (np.isfinite(lr).all() and np.isfinite(t).all()):
        raise ValueError("calibration_slope needs finite 1-D log_risk, time, event of equal length")
    if not e.any():
        raise ValueError("calibration_slope: no event among the patients")
    if np.ptp(lr) == 0:
        return 1.0  # constant risks: the slope is undefined and changes nothing
    frame = pd.DataFrame({"log_risk": lr, "time": t, "event": e})
    fitted = CoxPHFitter().fit(frame, duration_col="time", event_col="event")
    return float(np.clip(fitted.params_["log_risk"], *bounds))


def cumulative_baseline_at(baseline: BaselineHazard, t: np.ndarray | float) -> np.ndarray:
    """H0(t) for each t: 0 before the first time, held constant after the last.

    Returns:
        array of the shape of ``t`` (0-d for a scalar).
    """
    times, hazard = baseline
    t_arr = np.asarray(t, dtype=np.float64)
    pos = np.searchsorted(times, t_arr, side="right")  # number of times <= t
    padded = np.concatenate([[0.0], np.asarray(hazard, dtype=np.float64)])
    return padded[pos]


def survival_at(
    log_risk: np.ndarray, baseline: BaselineHazard, t: np.ndarray | float
) -> np.ndarray:
    """S(t | x) = exp(-H0(t) exp(log_risk)).

    Args:
        log_risk: (N,) log-risks of the patients to predict.
        baseline: from :func:`breslow_baseline` on the training fold.
        t: a time or (T,) times.
    Returns:
        (N,) for a scalar ``t``, else (N, T); P(recurrence by t) = 1 − S.
    """
    lr = np.asarray(log_risk, dtype=np.float64).ravel()
    h0 = cumulative_baseline_at(baseline, t)  # () or (T,)
    hazard = np.exp(lr)[:, None] * np.atleast_1d(h0)[None, :]  # (N, T)
    surv = np.exp(-hazard)
    return surv[:, 0] if np.ndim(t) == 0 else surv
