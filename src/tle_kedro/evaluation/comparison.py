"""The model comparison table: every metric per model, bootstrap intervals, paired Δ C.

:func:`evaluate_models` does the work once and returns everything the reporting needs
(table, long table of intervals, calibration groups, aligned data); :func:`comparison_table`
is the one-call version. Ground truth (synthetic cohorts) is used only for the oracle C.

Rows are whatever models the out-of-fold predictions hold (the reference first): no model
name is known here. Harrell's and Uno's C are the mean over repeats of each repeat's pooled
out-of-fold C, and so is every bootstrap resample of them (``repeats.py`` says why); the
other metrics score the predictions averaged over repeats.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tle_kedro.evaluation import bootstrap as bs
from tle_kedro.evaluation.calibration import calibration_by_group, integrated_calibration_index
from tle_kedro.evaluation.concordance import harrell_c
from tle_kedro.evaluation.metrics import (
    EvalData,
    auc_at,
    ibs_grid,
    integrated_brier,
    point_metrics,
    prepare_eval_data,
    safe_metric,
)
from tle_kedro.evaluation.repeats import (
    RepeatedPredictions,
    align_repeats,
    nadeau_bengio_deltas,
)
from tle_kedro.evaluation.weak_calibration import calibration_at

logger = logging.getLogger(__name__)

COMPARISON_COLUMNS = (
    "model",
    "harrell_c",
    "harrell_c_lo",
    "harrell_c_hi",
    "uno_c",
    "uno_c_lo",
    "uno_c_hi",
    "auc_12",
    "auc_24",
    "ibs",
    "ici_12",
    "cal_slope_12",
    "cal_slope_12_lo",
    "cal_slope_12_hi",
    "cal_intercept_12",
    "cal_intercept_12_lo",
    "cal_intercept_12_hi",
    "cal_slope_24",
    "cal_slope_24_lo",
    "cal_slope_24_hi",
    "cal_intercept_24",
    "cal_intercept_24_lo",
    "cal_intercept_24_hi",
    "delta_c_vs_transeprelap",
    "delta_lo",
    "delta_hi",
    "delta_nb",
    "delta_nb_lo",
    "delta_nb_hi",
)
DELTA_COLUMNS = COMPARISON_COLUMNS[COMPARISON_COLUMNS.index("delta_c_vs_transeprelap") :]
INTERVAL_COLUMNS = ("model", "metric", "estimate", "lo", "hi", "n_valid", "n_skipped")


@dataclass
class EvaluationResult:
    """Everything computed by :func:`evaluate_models`.

    Attributes:
        data: aligned predictions and outcomes.
        comparison: one row per model, :data:`COMPARISON_COLUMNS` (+ oracle_c, gap_to_oracle).
        intervals: long table :data:`INTERVAL_COLUMNS`, one row per model × metric.
        calibration: model → calibration groups at ``calibration_time``.
        harrell_samples: (M, B) bootstrap Harrell C (each the mean over repeats), rows in
            ``data.models`` order.
    """

    data: EvalData
    comparison: pd.DataFrame
    intervals: pd.DataFrame
    calibration: dict[str, pd.DataFrame] = field(default_factory=dict)
    harrell_samples: np.ndarray | None = None


def oracle_c(ground_truth: pd.DataFrame, data: EvalData) -> float:
    """Harrell C of ``true_log_hazard`` on the evaluated patients (the ceiling of any model)."""
    missing_cols = {"participant_id", "true_log_hazard"} - set(ground_truth.columns)
    if missing_cols:
        raise ValueError(f"ground truth: missing column(s) {sorted(missing_cols)}")
    truth = ground_truth.set_index("participant_id")["true_log_hazard"]
    absent = [p for p in data.participant_id if p not in truth.index]
    if absent:
        raise ValueError(
            f"ground truth: {len(absent)} evaluated patient(s) have no true_log_hazard "
            f"(e.g. {absent[:5]}); regenerate derivatives/ground_truth.tsv with the cohort."
        )
    return harrell_c(truth.loc[data.participant_id].to_numpy(float), data.event, data.time)


def _interval_rows(
    models: Sequence[str], metric: str, estimates: Sequence[float], samples: np.ndarray, level
) -> list[dict]:
    rows = []
    for m, name in enumerate(models):
        iv = bs.percentile_interval(estimates[m], samples[m], level, name=f"{name} {metric}")
        rows.append({"model": name, "metric": metric, **iv.__dict__})
    return rows


def _loop_metric(
    metric: Callable[..., float],
    data: EvalData,
    values: np.ndarray,
    indices: np.ndarray,
    *extra: object,
) -> np.ndarray:
    """(B',) ``metric(time, event, values, *extra)`` on each resample (``values`` axis 0 = n)."""
    return bs.loop_bootstrap(
        lambda i: safe_metric(metric, data.time[i], data.event[i], values[i], *extra), indices
    )


def _secondary_samples(
    data: EvalData, indices: np.ndarray, auc_times: Sequence[float], grid: np.ndarray
) -> dict[str, np.ndarray]:
    """(M, B') bootstrap samples of AUC(t) and IBS by looping sksurv over resamples."""
    out = {
        f"auc_{t:g}": np.stack([_loop_metric(auc_at, data, r, indices, t) for r in data.risk])
        for t in auc_times
    }
    times = data.surv_times[grid]
    out["ibs"] = np.stack(
        [_loop_metric(integrated_brier, data, s, indices, times) for s in data.surv[:, :, grid]]
    )
    return out


def _weak_calibration(
    data: EvalData, counts: np.ndarray, times: Sequence[float]
) -> dict[str, np.ndarray]:
    """``cal_slope_<t>`` / ``cal_intercept_<t>`` → (M, B) on every resample ``counts (B, n)``
    (predictions averaged over repeats, as for the other probability metrics)."""
    out: dict[str, np.ndarray] = {}
    for t in times:
        per_model = [
            calibration_at(data.surv_at(m, t), data.time, data.event, t, counts)
            for m in range(len(data.models))
        ]
        for key in ("slope", "intercept"):
            out[f"cal_{key}_{t:g}"] = np.stack([p[key] for p in per_model])
    return out


def _repeat_mean_c(
    data: EvalData, preds: RepeatedPredictions, counts: np.ndarray, tau: float
) -> dict[str, np.ndarray]:
    """(M, B) Harrell and Uno C on every resample, each the mean over repeats of the C of
    that repeat's risks (the M × R risk rows go through the kernel in one call)."""
    m, r, n = preds.risk.shape
    flat = preds.risk.reshape(m * r, n)
    return {
        "harrell_c": bs.repeat_mean_harrell_c(data.time, data.event, preds.risk, counts),
        "uno_c": bs.uno_c_bootstrap(data.time, data.event, flat, counts, tau)
        .reshape(m, r, -1)
        .mean(axis=1),
    }


def _delta_columns(
    data: EvalData,
    preds: RepeatedPredictions,
    harrell: pd.Series,
    samples: np.ndarray,
    reference: str,
    level: float,
) -> pd.DataFrame:
    cols = list(DELTA_COLUMNS)
    if reference not in data.models:
        logger.warning("reference model %r absent: no paired Δ C", reference)
        return pd.DataFrame(np.nan, index=list(data.models), columns=cols)
    ref = data.models.index(reference)
    nb = nadeau_bengio_deltas(data.time, data.event, preds, ref, level)
    rows = []
    for m, name in enumerate(data.models):
        est = harrell[reference] - harrell[name]
        iv = bs.paired_difference(samples[ref], samples[m], est, level)
        rows.append((iv.estimate, iv.lo, iv.hi, nb[m].estimate, nb[m].lo, nb[m].hi))
    return pd.DataFrame(rows, index=list(data.models), columns=cols)


def evaluate_models(
    oof: pd.DataFrame,
    clinical: pd.DataFrame,
    ground_truth: pd.DataFrame | None = None,
    *,
    n_boot: int = 1000,
    n_boot_secondary: int = 200,
    seed: int = 0,
    tau: float = 24.0,
    auc_times: Sequence[float] = (12.0, 24.0),
    ibs_range: tuple[float, float] = (3.0, 30.0),
    calibration_time: float = 12.0,
    n_groups: int = 5,
    level: float = 0.95,
    reference_model: str = "transeprelap",
    calibration_times: Sequence[float] = (12.0, 24.0),
) -> EvaluationResult:
    """Compute the comparison table, all intervals and calibration groups.

    Harrell and Uno C (and the paired Δ Harrell C vs ``reference_model``) are means over
    repeats, with ``n_boot`` resamples of the vectorised kernel (each resample averages over
    repeats too); the paired Δ C also gets the Nadeau–Bengio corrected t interval over
    (repeat, fold) (``delta_nb*``). AUC(t) and IBS loop sksurv over the first
    ``n_boot_secondary`` of the same resamples (0 = no intervals for them); ICI is a point
    estimate only (one Cox fit per resample would be too slow). The calibration slope and
    intercept at each of ``calibration_times`` (:mod:`.weak_calibration`) use all ``n_boot``
    resamples (a vectorised kernel). All models share resamples.
    """
    data = prepare_eval_data(oof, clinical, reference_model)
    preds = align_repeats(oof, data)
    points = point_metrics(data, tau, auc_times, ibs_range)
    n = len(data.time)
    ones = np.ones((1, n))
    cal_points = _weak_calibration(data, ones, calibration_times)
    for metric, c in (_repeat_mean_c(data, preds, ones, tau) | cal_points).items():
        points[metric] = c[:, 0]
    indices = bs.resample_indices(n, n_boot, seed)
    counts = bs.resample_counts(indices, n)
    samples = _repeat_mean_c(data, preds, counts, tau)
    samples |= _weak_calibration(data, counts, calibration_times)
    if n_boot_secondary > 0:
        grid = ibs_grid(data.surv_times, ibs_range)
        samples |= _secondary_samples(data, indices[:n_boot_secondary], auc_times, grid)
    long_rows: list[dict] = []
    for metric, s in samples.items():
        long_rows += _interval_rows(data.models, metric, points[metric].tolist(), s, level)
    intervals = pd.DataFrame(long_rows, columns=list(INTERVAL_COLUMNS))
    ici_name = f"ici_{calibration_time:g}"
    calibration, ici = {}, {}
    for m, name in enumerate(data.models):
        p = 1.0 - data.surv_at(m, calibration_time)
        calibration[name] = calibration_by_group(
            p, data.time, data.event, calibration_time, n_groups
        )
        ici[name] = integrated_calibration_index(p, data.time, data.event, calibration_time)
    ici_series = pd.Series(ici, name=ici_name)
    deltas = _delta_columns(
        data, preds, points["harrell_c"], samples["harrell_c"], reference_model, level
    )
    table = _assemble(data, points, intervals, ici_series, deltas, list(cal_points))
    if ground_truth is not None:
        table["oracle_c"] = oracle_c(ground_truth, data)
        table["gap_to_oracle"] = table["oracle_c"] - table["harrell_c"]
    return EvaluationResult(data, table, intervals, calibration, samples["harrell_c"])


def _assemble(
    data: EvalData,
    points: pd.DataFrame,
    intervals: pd.DataFrame,
    ici: pd.Series,
    deltas: pd.DataFrame,
    calibration_metrics: Sequence[str],
) -> pd.DataFrame:
    wide = intervals.pivot(index="model", columns="metric", values=["lo", "hi"])
    table = points.copy()
    with_interval = ("harrell_c", "uno_c", *calibration_metrics)
    for metric in with_interval:
        table[f"{metric}_lo"] = wide[("lo", metric)]
        table[f"{metric}_hi"] = wide[("hi", metric)]
    table[str(ici.name)] = ici
    table = table.join(deltas).loc[list(data.models)].reset_index()
    auc_cols = [c for c in points.columns if c.startswith("auc_")]
    cal_cols = [f"{m}{suffix}" for m in calibration_metrics for suffix in ("", "_lo", "_hi")]
    order = [*COMPARISON_COLUMNS[:7], *auc_cols, "ibs", str(ici.name), *cal_cols, *DELTA_COLUMNS]
    return table[order]


def comparison_table(
    oof: pd.DataFrame,
    clinical: pd.DataFrame,
    ground_truth: pd.DataFrame | None = None,
    **kwargs,
) -> pd.DataFrame:
    """One row per model (reference first), columns :data:`COMPARISON_COLUMNS` plus
    ``oracle_c`` and ``gap_to_oracle`` when ``ground_truth`` is given. See
    :func:`evaluate_models` for the keyword arguments."""
    return evaluate_models(oof, clinical, ground_truth, **kwargs).comparison


def model_metrics(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per model (row), its numeric comparison columns by name; undefined (NaN) values left
    out. What MLflow gets: the parent run's ``eval.<model>.<column>`` and each model run."""
    out: dict[str, dict[str, float]] = {}
    for row in table.to_dict("records"):
        out[str(row["model"])] = {
            str(column): float(value)
            for column, value in row.items()
            if column != "model" and isinstance(value, int | float) and np.isfinite(value)
        }
    return out


def to_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """GitHub-flavoured Markdown of ``table``; floats rounded to ``digits`` (no tabulate)."""

    def fmt(v: object) -> str:
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    header = [str(c) for c in table.columns]
    body = [[fmt(v) for v in row] for row in table.itertuples(index=False)]
    numeric = [pd.api.types.is_numeric_dtype(table[c]) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if n else ":---" for n in numeric) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + "\n"
