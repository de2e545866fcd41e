"""Repeated K-fold out-of-fold predictions: per-repeat risks and the corrected resampled t.

With K × R cross-validation every patient has R out-of-fold predictions, one per repeat.
The comparison reports, per model, the **mean over repeats of the pooled out-of-fold C**
(each repeat's predictions are one honest out-of-fold score of the whole cohort; averaging
the *predictions* first would score an ensemble of R models that no single fit reproduces).
Two intervals of the paired ΔC then carry the variation between repeats:

- a patient bootstrap in which every resample computes ΔC per repeat and averages over
  repeats (``comparison.py``, with the vectorised kernel of ``bootstrap.py``);
- the **corrected resampled t** of Nadeau & Bengio (2003), recommended for repeated
  cross-validation by Bouckaert & Frank (2004): from the J = K·R per-(repeat, fold)
  differences d_j (C on the test fold of the reference minus the other model),

      d̄ ± t_{J−1, 1−α/2} · sqrt((1/J + n_test/n_train) · σ̂²),   σ̂² = Σ (d_j − d̄)² / (J − 1)

  The n_test/n_train term corrects the naive 1/J for the overlap of the training sets
  (the folds are not independent samples); n_test and n_train are the mean test-fold and
  training-fold sizes. With R = 1 it still applies over the K folds.

Nadeau C., Bengio Y. (2003). Inference for the generalization error. Machine Learning 52,
239–281. Bouckaert R. R., Frank E. (2004). Evaluating the replicability of significance
tests for comparing learning algorithms. PAKDD 2004, LNCS 3056, 3–12.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from tle_kedro.evaluation.bootstrap import Interval
from tle_kedro.evaluation.concordance import harrell_c
from tle_kedro.evaluation.metrics import EvalData, safe_metric

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepeatedPredictions:
    """Out-of-fold risks kept per repeat, aligned with :class:`EvalData` patients.

    Attributes:
        repeats: (R,) repeat labels, sorted.
        risk: (M, R, n) float64 out-of-fold risk of each model in each repeat.
        fold: (R, n) int64 test fold of each patient in each repeat (shared by all models).
    """

    repeats: np.ndarray
    risk: np.ndarray
    fold: np.ndarray


def align_repeats(oof: pd.DataFrame, data: EvalData) -> RepeatedPredictions:
    """Per-repeat risks and folds of ``oof`` in the model and patient order of ``data``.

    Raises:
        ValueError: when a model lacks a prediction for a patient in some repeat, or when
            models were not tested on the same folds (paired per-fold ΔC needs shared folds).
    """
    ids = pd.Index(data.participant_id)
    keyed = oof[oof["participant_id"].isin(ids)].set_index(["model", "repeat", "participant_id"])
    if keyed.index.has_duplicates:
        raise ValueError("oof_predictions: a (model, repeat, participant_id) appears twice")
    repeats = np.sort(oof["repeat"].unique())
    full = pd.MultiIndex.from_product([list(data.models), repeats, ids])
    aligned = keyed.reindex(full)
    if aligned["risk"].isna().any():
        gaps = aligned[aligned["risk"].isna()].index.droplevel(2).unique().tolist()
        raise ValueError(
            f"oof_predictions: missing predictions for (model, repeat) {gaps[:5]}; every "
            "model must predict every patient in every repeat of cv_folds."
        )
    shape = (len(data.models), len(repeats), len(ids))
    risk = aligned["risk"].to_numpy(float).reshape(shape)
    folds = aligned["fold"].to_numpy().reshape(shape)
    differing = [m for i, m in enumerate(data.models) if not np.array_equal(folds[i], folds[0])]
    if differing:
        raise ValueError(
            f"oof_predictions: models {differing} were tested on other folds than "
            f"{data.models[0]!r}; a paired comparison needs every model on the same cv_folds."
        )
    return RepeatedPredictions(repeats=repeats, risk=risk, fold=folds[0].astype(np.int64))


def fold_harrell_c(
    time: np.ndarray, event: np.ndarray, preds: RepeatedPredictions
) -> tuple[np.ndarray, np.ndarray]:
    """Harrell C of every model on every (repeat, test fold), and each fold's test size.

    Returns:
        c: (M, J) float64, J = Σ_r K_r (repeat-major, folds sorted); NaN for a fold with no
            comparable pair. n_test: (J,) int patients in each test fold.
    """
    cells = [(r, k) for r in range(len(preds.repeats)) for k in np.unique(preds.fold[r])]
    c = np.full((preds.risk.shape[0], len(cells)), np.nan)
    n_test = np.zeros(len(cells), dtype=np.int64)
    for j, (r, k) in enumerate(cells):
        test = preds.fold[r] == k
        n_test[j] = int(test.sum())
        for m in range(preds.risk.shape[0]):
            c[m, j] = safe_metric(harrell_c, preds.risk[m, r, test], event[test], time[test])
    return c, n_test


def corrected_resampled_t(
    differences: np.ndarray, test_train_ratio: float, level: float = 0.95
) -> Interval:
    """Nadeau–Bengio corrected resampled t interval of the mean of per-fold ``differences``.

    Args:
        differences: (J,) per-(repeat, fold) differences; NaN entries (degenerate folds) are
            left out and counted in ``n_skipped``.
        test_train_ratio: n_test / n_train of one fold (e.g. 1 / (K − 1) for K equal folds).
        level: two-sided confidence level.
    Returns:
        :class:`Interval` with ``estimate`` = mean difference d̄ (NaN bounds when fewer than
        2 finite differences).
    """
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    if test_train_ratio < 0:
        raise ValueError(f"n_test / n_train must be ≥ 0, got {test_train_ratio}")
    d = differences[np.isfinite(differences)]
    skipped = int(differences.size - d.size)
    if skipped:
        logger.warning(
            "corrected t: %d of %d folds degenerate, left out", skipped, differences.size
        )
    if d.size < 2:
        mean = float(d.mean()) if d.size else float("nan")
        return Interval(mean, np.nan, np.nan, int(d.size), skipped)
    mean = float(d.mean())
    se = np.sqrt((1.0 / d.size + test_train_ratio) * d.var(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2.0, df=d.size - 1)) * se
    return Interval(mean, mean - half, mean + half, int(d.size), skipped)


def nadeau_bengio_deltas(
    time: np.ndarray,
    event: np.ndarray,
    preds: RepeatedPredictions,
    reference: int,
    level: float = 0.95,
) -> list[Interval]:
    """Per model, the corrected t interval of C(reference) − C(model) over (repeat, fold)."""
    c, n_test = fold_harrell_c(time, event, preds)
    mean_test = float(n_test.mean())
    ratio = mean_test / (len(time) - mean_test)
    return [corrected_resampled_t(c[reference] - c[m], ratio, level) for m in range(len(c))]
