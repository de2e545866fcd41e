"""Discrimination and accuracy metrics of out-of-fold survival predictions.

Every metric is scikit-survival's own function (Uno 2011, Lambert & Chevret 2016 / Hung &
Chiang 2010 for time-dependent AUC, Graf 1999 for the Brier score) except Harrell's C (Harrell
1996), the project's one implementation in ``evaluation.concordance`` (sksurv's rule on ties);
this module only aligns predictions with outcomes and fixes the conventions:

- Out-of-fold predictions of a repeated K-fold carry one prediction per patient per repeat.
  A patient's risk and survival probabilities are the **mean over repeats** (each repeat's
  prediction is out-of-fold, so the mean is too); metrics are computed once on the means.
- The censoring distribution used by the IPCW metrics (Uno's C, AUC, Brier) is the
  Kaplan–Meier estimate of censoring on the **same evaluated cohort** (there is no separate
  training set for out-of-fold predictions).
- The integrated Brier score is sksurv's ``integrated_brier_score`` (trapezoid of the Brier
  score over a time grid) over every ``surv_<t>`` column present whose ``t`` lies in
  ``ibs_range``. The grid is the one the predictions carry: a survival curve is known only
  at its ``surv_<t>`` columns, and any point between them would be an assumption of this
  module, not a prediction of the model. The fold models store ``surv_12`` and ``surv_24``
  (``training/cv.py``), so today it is the mean Brier score at 12 and 24 months; stored
  columns on a finer grid (e.g. the event-time deciles) are used as they are, with no change
  here (docs/evaluation.md). The grid used is logged.
- A degenerate sample (no event, a time outside follow-up) gives NaN, never an exception,
  through :func:`safe_metric`; the bootstrap counts those NaNs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sksurv.exceptions import NoComparablePairException
from sksurv.metrics import (
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.util import Surv

from tle_kedro.evaluation import concordance

logger = logging.getLogger(__name__)

OOF_COLUMNS = ("participant_id", "model", "repeat", "fold", "risk")
OUTCOME_COLUMNS = ("participant_id", "time_months", "recurrence")
_SURV_COLUMN = re.compile(r"^surv_(\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class EvalData:
    """Out-of-fold predictions aligned with outcomes, one row per patient.

    Attributes:
        participant_id: (n,) str, sorted.
        time: (n,) float64 months to recurrence or last follow-up.
        event: (n,) bool, True = recurrence.
        models: (M,) model names, the reference model first.
        risk: (M, n) float64 mean out-of-fold risk (higher = earlier recurrence).
        surv: (M, n, T) float64 mean predicted S(t | x) at ``surv_times``.
        surv_times: (T,) float64 months, increasing.
    """

    participant_id: np.ndarray
    time: np.ndarray
    event: np.ndarray
    models: tuple[str, ...]
    risk: np.ndarray
    surv: np.ndarray
    surv_times: np.ndarray

    def surv_at(self, model_index: int, t: float) -> np.ndarray:
        """(n,) predicted S(t | x) of one model at a time that has a ``surv_<t>`` column."""
        hits = np.flatnonzero(np.isclose(self.surv_times, t))
        if hits.size == 0:
            raise ValueError(
                f"oof_predictions has no column surv_{t:g}; available times: "
                f"{self.surv_times.tolist()}. Add surv_{t:g} to the model output."
            )
        return self.surv[model_index, :, hits[0]]


def survival_columns(columns: Sequence[str]) -> dict[str, float]:
    """Map every ``surv_<t>`` column name to its time ``t`` in months, sorted by time."""
    found = {c: float(m.group(1)) for c in columns if (m := _SURV_COLUMN.match(str(c)))}
    return dict(sorted(found.items(), key=lambda item: item[1]))


def _check_columns(frame: pd.DataFrame, required: Sequence[str], name: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{name}: missing column(s) {missing}; expected at least {list(required)}. "
            "Check the upstream pipeline output."
        )


def _order_models(names: Sequence[str], reference_model: str) -> tuple[str, ...]:
    rest = [m for m in names if m != reference_model]
    return ((reference_model,) if reference_model in names else ()) + tuple(rest)


def prepare_eval_data(
    oof: pd.DataFrame, clinical: pd.DataFrame, reference_model: str = "transeprelap"
) -> EvalData:
    """Average out-of-fold predictions over repeats and align them with the outcomes.

    Args:
        oof: long table ``participant_id, model, repeat, fold, risk, surv_<t>...``.
        clinical: table with ``participant_id, time_months, recurrence``.
        reference_model: listed first (the model every other one is compared with).
    Returns:
        :class:`EvalData` over the patients present in both tables.
    Raises:
        ValueError: missing columns, non-finite predictions, or models that do not cover
            the same patients (paired comparisons need identical patients).
    """
    _check_columns(oof, OOF_COLUMNS, "oof_predictions")
    _check_columns(clinical, OUTCOME_COLUMNS, "clinical_validated")
    surv_cols = survival_columns(list(oof.columns))
    value_cols = ["risk", *surv_cols]
    bad = ~np.isfinite(oof[value_cols].to_numpy(dtype=float)).all(axis=1)
    if bad.any():
        ids = oof.loc[bad, "participant_id"].astype(str).unique()[:5].tolist()
        raise ValueError(
            f"oof_predictions: {int(bad.sum())} row(s) with non-finite risk/surv values "
            f"(e.g. {ids}); fix the model output before evaluation."
        )
    mean = oof.groupby(["model", "participant_id"], sort=True)[value_cols].mean()
    n_repeats = oof.groupby("model")["repeat"].nunique()
    logger.info("averaging out-of-fold predictions over repeats: %s", n_repeats.to_dict())
    outcome = clinical.set_index("participant_id")[["time_months", "recurrence"]]
    models = _order_models(list(dict.fromkeys(oof["model"])), reference_model)
    ids_per_model = {m: set(mean.loc[m].index) for m in models}
    common = set.intersection(*ids_per_model.values())
    uneven = {m: len(s - common) for m, s in ids_per_model.items() if s != common}
    if uneven:
        raise ValueError(
            f"oof_predictions: models do not cover the same patients (extra patients per "
            f"model: {uneven}); every model must predict for every patient of the folds."
        )
    ids = np.array(sorted(common & set(outcome.index)), dtype=object)
    if len(ids) < len(common):
        logger.warning(
            "%d patient(s) with predictions have no outcome in clinical_validated and are "
            "not evaluated",
            len(common) - len(ids),
        )
    risk = np.stack([mean.loc[m].loc[ids, "risk"].to_numpy(float) for m in models])
    surv = np.stack([mean.loc[m].loc[ids, list(surv_cols)].to_numpy(float) for m in models])
    return EvalData(
        participant_id=ids,
        time=outcome.loc[ids, "time_months"].to_numpy(float),
        event=outcome.loc[ids, "recurrence"].to_numpy().astype(bool),
        models=models,
        risk=risk,
        surv=surv.reshape(len(models), len(ids), len(surv_cols)),
        surv_times=np.array(list(surv_cols.values()), dtype=float),
    )


def safe_metric(metric: Callable[..., float], *args: object) -> float:
    """``metric(*args)``; a degenerate sample (sksurv ValueError, no comparable pair) → NaN."""
    try:
        return float(metric(*args))
    except (ValueError, NoComparablePairException):
        return float("nan")


def uno_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray, tau: float) -> float:
    """Uno's IPCW C truncated at ``tau`` months, censoring estimated on the same patients."""
    y = Surv.from_arrays(event.astype(bool), time)
    return float(concordance_index_ipcw(y, y, risk, tau=tau)[0])


def auc_at(time: np.ndarray, event: np.ndarray, risk: np.ndarray, t: float) -> float:
    """Cumulative/dynamic AUC (sksurv) of the risk score at ``t`` months."""
    y = Surv.from_arrays(event.astype(bool), time)
    scores, _ = cumulative_dynamic_auc(y, y, risk, [float(t)])
    return float(scores[0])


def ibs_grid(surv_times: np.ndarray, ibs_range: tuple[float, float]) -> np.ndarray:
    """Indices into ``surv_times`` used by the integrated Brier score (≥ 2 required)."""
    lo, hi = ibs_range
    idx = np.flatnonzero((surv_times >= lo) & (surv_times <= hi))
    if idx.size < 2:
        raise ValueError(
            f"integrated Brier score needs ≥ 2 surv_<t> columns within {ibs_range} months, "
            f"got times {surv_times.tolist()}; widen ibs_range or add surv_<t> columns."
        )
    return idx


def integrated_brier(
    time: np.ndarray, event: np.ndarray, surv: np.ndarray, surv_times: np.ndarray
) -> float:
    """Integrated Brier score over ``surv_times`` (sksurv ``integrated_brier_score``).

    Args:
        time, event: (n,) outcomes; censoring is estimated on the same patients.
        surv: (n, T) predicted S(t | x) at ``surv_times`` (T ≥ 2, increasing months, all
            inside the follow-up, else sksurv raises a ValueError).
    """
    y = Surv.from_arrays(event.astype(bool), time)
    return float(integrated_brier_score(y, y, surv, surv_times))


def point_metrics(
    data: EvalData,
    tau: float,
    auc_times: Sequence[float] = (12.0, 24.0),
    ibs_range: tuple[float, float] = (3.0, 30.0),
) -> pd.DataFrame:
    """Point estimates per model: harrell_c, uno_c, auc_<t>, ibs (NaN if degenerate).

    Returns:
        DataFrame indexed by model, in ``data.models`` order.
    """
    grid = ibs_grid(data.surv_times, ibs_range)
    logger.info("integrated Brier score over months %s", data.surv_times[grid].tolist())
    rows = []
    times, time, event = data.surv_times[grid], data.time, data.event
    for m, name in enumerate(data.models):
        risk = data.risk[m]
        row = {
            "model": name,
            "harrell_c": safe_metric(concordance.harrell_c, risk, event, time),
            "uno_c": safe_metric(uno_c, time, event, risk, tau),
        }
        for t in auc_times:
            row[f"auc_{t:g}"] = safe_metric(auc_at, time, event, risk, t)
        row["ibs"] = safe_metric(integrated_brier, time, event, data.surv[m][:, grid], times)
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")
