"""Calibration slope and intercept of predicted survival at a fixed time, with bootstrap.

"Weak calibration" (Van Calster et al. 2016, J Clin Epidemiol 74:167–176) of S(t | x) at a
time t, on the complementary log-log scale of the prediction, i.e. the predicted log
cumulative hazard ``lp = log H(t | x) = log(−log S(t | x))``. The outcome is
administratively censored at t (a recurrence after t counts as event-free at t), so the
numbers are about the horizon t and nothing later.

- **Slope**: the coefficient b of a one-covariate Cox model of the truncated outcome on
  ``lp`` (Cox 1958; Crowson, Atkinson & Therneau 2016, Stat Methods Med Res 25:1692–1706).
  1 = the predicted risks spread as much as the observed ones; < 1 = over-confident (risks
  too far apart, the usual sign of overfitting: a model whose log-hazards are 2× too spread
  gets 0.5); > 1 = under-confident (too close together).
- **Intercept** (calibration-in-the-large): log Ĥ₀(t) of the same Cox model with the slope
  held at 1 (``lp`` as an offset), Ĥ₀ the Breslow estimator. exp(intercept) is the factor by
  which every predicted cumulative hazard at t should be multiplied: 0 = calibrated in the
  large, < 0 = risk over-predicted (a model predicting twice the true H(t) gets −log 2),
  > 0 = under-predicted.

Why a hand-written kernel: lifelines and scikit-survival fit one Cox model per call, and
neither takes an offset; a patient-level bootstrap needs B × models × times fits (1000 × 10
× 2 here). Both quantities are Newton steps on risk-set sums, which vectorise over resamples
as patient multiplicities ``counts (B, n)`` (as in :mod:`.bootstrap`). Ties are Breslow's;
``tests/evaluation/test_weak_calibration.py`` holds the slope equal to scikit-survival's
``CoxPHSurvivalAnalysis(ties="breslow")`` and the intercept to an expanded-data Breslow sum.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

_MAX_ITER = 50
_TOL = 1e-9
_MAX_ABS_SLOPE = 50.0  # beyond this the likelihood has no finite maximum (separation)


def truncate_at(time: np.ndarray, event: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """(time, event) administratively censored at ``t``: min(T, t), event only if T ≤ t."""
    event = np.asarray(event).astype(bool)
    time = np.asarray(time, dtype=np.float64)
    return np.minimum(time, t), event & (time <= t)


def predicted_log_cumhazard(surv_t: np.ndarray) -> np.ndarray:
    """(…) log(−log S(t | x)), S clipped to [1e-12, 1 − 1e-12] so the log stays finite."""
    s = np.clip(np.asarray(surv_t, dtype=np.float64), 1e-12, 1.0 - 1e-12)
    return np.log(-np.log(s))


class _RiskSets:
    """Risk-set sums Σ_{j: T_j ≥ T_i} counts_bj · f_j for every patient i, ties included."""

    def __init__(self, time: np.ndarray) -> None:
        self.order = np.argsort(time, kind="stable")
        sorted_time = time[self.order]
        # first sorted position of each patient's tie group: the start of its risk set
        self.start = np.searchsorted(sorted_time, sorted_time, side="left")

    def sums(self, values: np.ndarray) -> np.ndarray:
        """(B, n) risk-set sums in sorted patient order of ``values (B, n)`` (original order)."""
        v = values[:, self.order]
        tail = np.cumsum(v[:, ::-1], axis=1)[:, ::-1]  # (B, n): Σ over sorted positions ≥ k
        return tail[:, self.start]


def _prepare(time, event, lp, counts):  # type: ignore[no-untyped-def]
    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event).astype(bool)
    lp = np.asarray(lp, dtype=np.float64)
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    n = time.shape[0]
    if not (event.shape == lp.shape == (n,)) or counts.shape[1] != n:
        raise ValueError(
            f"calibration: time, event, lp must be (n,) and counts (B, n); got {time.shape}, "
            f"{event.shape}, {lp.shape}, {counts.shape}"
        )
    if not np.isfinite(lp).all():
        raise ValueError("calibration: the predicted log cumulative hazards must be finite")
    return time, event, lp, counts


def cox_slope(
    time: np.ndarray, event: np.ndarray, lp: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """(B,) Cox coefficient of ``lp (n,)`` in every resample ``counts (B, n)`` (Breslow ties).

    Newton–Raphson from 0 on the weighted partial likelihood
    ℓ(b) = Σ_i c_i δ_i [b·lp_i − log Σ_{T_j ≥ T_i} c_j e^{b·lp_j}]. NaN for a resample without
    an event, without variation of ``lp`` among its patients, or without a finite maximum.
    """
    time, event, lp, counts = _prepare(time, event, lp, counts)
    sets = _RiskSets(time)
    x = lp - np.average(lp)  # centred: same slope, no overflow in exp
    d = (counts * event)[:, sets.order]  # (B, n) weight of i as an event, sorted order
    xs = x[sets.order]
    beta = np.zeros(counts.shape[0])
    done = np.zeros(counts.shape[0], dtype=bool)
    for _ in range(_MAX_ITER):
        w = counts * np.exp(beta[:, None] * x[None, :])  # (B, n)
        s0, s1, s2 = sets.sums(w), sets.sums(w * x), sets.sums(w * x * x)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(d > 0, s1 / s0, 0.0)
            var = np.where(d > 0, s2 / s0 - mean**2, 0.0)
        score = np.sum(d * (xs - mean), axis=1)
        info = np.sum(d * var, axis=1)
        step = np.where(info > 1e-12, score / np.where(info > 1e-12, info, 1.0), np.nan)
        step = np.where(done, 0.0, step)
        beta = beta + step
        done |= np.abs(step) < _TOL
        if done.all() or not np.isfinite(beta[~done]).any():
            break
    valid = done & np.isfinite(beta) & (np.abs(beta) < _MAX_ABS_SLOPE) & (d.sum(axis=1) > 0)
    return np.where(valid, beta, np.nan)


def offset_intercept(
    time: np.ndarray, event: np.ndarray, lp: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """(B,) log of the Breslow baseline at the last time with ``lp`` as an offset.

    Ĥ₀ = Σ_i c_i δ_i / Σ_{T_j ≥ T_i} c_j e^{lp_j}: with truncated outcomes, the factor that
    maps the predicted cumulative hazards at t onto the observed ones. NaN without an event.
    """
    time, event, lp, counts = _prepare(time, event, lp, counts)
    sets = _RiskSets(time)
    s0 = sets.sums(counts * np.exp(lp)[None, :])  # (B, n) in sorted order
    d = (counts * event)[:, sets.order]
    with np.errstate(divide="ignore"):
        h0 = np.sum(np.where(d > 0, d / np.where(d > 0, s0, 1.0), 0.0), axis=1)
        return np.where(h0 > 0, np.log(h0), np.nan)


def calibration_at(
    surv_t: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    t: float,
    counts: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Calibration slope and intercept of S(``t`` | x) on every resample.

    Args:
        surv_t: (n,) predicted S(t | x).
        time, event: (n,) outcomes (months, 0/1), not yet truncated.
        counts: (B, n) patient multiplicities; None = the cohort itself (B = 1).
    Returns:
        ``{"slope": (B,), "intercept": (B,)}``.
    """
    counts = np.ones((1, len(time))) if counts is None else counts
    tt, et = truncate_at(time, event, t)
    lp = predicted_log_cumhazard(surv_t)
    return {
        "slope": cox_slope(tt, et, lp, counts),
        "intercept": offset_intercept(tt, et, lp, counts),
    }
