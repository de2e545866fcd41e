"""Decision-curve analysis at a fixed time for censored outcomes (``dcurves``).

Net benefit of "act (follow closely, reconsider surgery) when the predicted P(recurrence by
t) ≥ p_t" (Vickers & Elkin 2006, Med Decis Making 26:565–574):

    NB(p_t) = TP/n − FP/n · p_t / (1 − p_t)

With censoring, who recurs by t is not known for everybody; Vickers, Cronin, Elkin & Gonen
2008 (BMC Med Inform Decis Mak 8:53) estimate it by Kaplan–Meier among the patients above
the threshold: with π = their share and S = their KM survival at t, TP/n = (1 − S)·π and
FP/n = S·π. Treat-all is the same with everybody (π = 1); treat-none is 0. This module only
arranges the table for the package ``dcurves`` (Memorial Sloan Kettering's maintained
implementation, ``dcurves.dca`` with ``time``/``time_to_outcome_col``), which does the maths
with lifelines' Kaplan–Meier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from dcurves import dca

from tle_kedro.evaluation.metrics import EvalData

TREAT_ALL = "treat_all"
TREAT_NONE = "treat_none"
DECISION_CURVE_COLUMNS = ("model", "threshold", "net_benefit", "test_pos_rate", "tp_rate")


def threshold_grid(lo: float, hi: float, step: float) -> np.ndarray:
    """Thresholds ``lo, lo + step, …, ≤ hi`` rounded to 6 digits, all inside (0, 1)."""
    if not (0 < lo <= hi < 1) or step <= 0:
        raise ValueError(
            f"decision curve: need 0 < lo ≤ hi < 1 and step > 0, got lo={lo}, hi={hi}, "
            f"step={step} (evaluation.decision_thresholds)"
        )
    return np.round(np.arange(lo, hi + step / 2, step), 6)


def decision_curve(
    p_events: Mapping[str, np.ndarray],
    time: np.ndarray,
    event: np.ndarray,
    t: float,
    thresholds: Sequence[float],
) -> pd.DataFrame:
    """Net benefit of every model, treat-all and treat-none at each threshold.

    Args:
        p_events: model name → (n,) predicted P(recurrence by t) = 1 − S(t | x) in [0, 1].
        time, event: (n,) outcomes in months / 0-1.
        t: horizon in months (must lie within the follow-up: dcurves gives NaN beyond it).
        thresholds: threshold probabilities in (0, 1).
    Returns:
        Long table :data:`DECISION_CURVE_COLUMNS`, models in the order given, then
        ``treat_all`` and ``treat_none``.
    """
    names = list(p_events)
    if {TREAT_ALL, TREAT_NONE} & set(names):
        raise ValueError(f"decision curve: model names {TREAT_ALL!r}/{TREAT_NONE!r} are reserved")
    # dcurves reads models as columns and adds its own "all"/"none": neutral column names
    columns = {f"model_{k}": name for k, name in enumerate(names)}
    frame = pd.DataFrame({c: np.asarray(p_events[name], float) for c, name in columns.items()})
    if not ((frame >= 0) & (frame <= 1)).all().all():
        raise ValueError("decision curve: predicted probabilities must lie in [0, 1]")
    frame["event"] = np.asarray(event).astype(int)
    frame["time"] = np.asarray(time, dtype=float)
    out = dca(
        data=frame,
        outcome="event",
        modelnames=list(columns),
        thresholds=[float(x) for x in thresholds],
        time=float(t),
        time_to_outcome_col="time",
    )
    out["model"] = out["model"].map({**columns, "all": TREAT_ALL, "none": TREAT_NONE})
    out = out.astype({"net_benefit": float, "test_pos_rate": float, "tp_rate": float})
    return out[list(DECISION_CURVE_COLUMNS)].reset_index(drop=True)


def model_decision_curve(data: EvalData, t: float, thresholds: Sequence[float]) -> pd.DataFrame:
    """:func:`decision_curve` of every model's out-of-fold P(recurrence by ``t``) (mean over
    repeats), the models in ``data.models`` order."""
    p_events = {name: 1.0 - data.surv_at(m, t) for m, name in enumerate(data.models)}
    return decision_curve(p_events, data.time, data.event, t, thresholds)
