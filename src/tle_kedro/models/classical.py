"""Classical survival baselines (scikit-survival): Cox PH and random survival forest.

- ``cox_clinical``: Cox PH on the clinical design matrix;
- ``cox_region_measures``: Cox PH on clinical + the atlas regional imaging measures
  (``features.imaging``): the radiomics analysis a clinician would run, the bar to clear;
- ``rsf_region_measures``: random survival forest on the same columns.

Inputs are design matrices already produced by the clinical recipe fitted in the training
fold; every fit function adds its own median imputation + standard scaling, fitted on the
training rows only (imaging features are NaN where a modality is missing). The fitted object
applies the same to new rows, so ``predict`` takes the raw design matrix.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sksurv.ensemble import RandomSurvivalForest
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.util import Surv

logger = logging.getLogger(__name__)

SURVIVAL_TIMES: tuple[float, float] = (12.0, 24.0)


class SurvivalPrediction(NamedTuple):
    """Predictions of N patients, each (N,) float64.

    ``risk`` orders patients (higher = earlier recurrence); ``surv_12``/``surv_24`` are
    S(12 | x) and S(24 | x), so P(recurrence by 12 months) = 1 - ``surv_12``.
    """

    risk: np.ndarray
    surv_12: np.ndarray
    surv_24: np.ndarray


def step_survival_at(grid: np.ndarray, surv: np.ndarray, times: tuple[float, ...]) -> np.ndarray:
    """Right-continuous step function lookup of survival curves.

    Args:
        grid: (T,) increasing event times of the curves.
        surv: (N, T) S(grid | x).
        times: query times (months).

    Returns:
        (N, len(times)): S(t | x) = value at the last grid time ≤ t; 1 before the first
        grid time; the last value after the last one (no extrapolation).
    """
    idx = np.searchsorted(grid, np.asarray(times, dtype=np.float64), side="right") - 1  # (Q,)
    padded = np.concatenate([np.ones((surv.shape[0], 1)), surv], axis=1)  # (N, T+1)
    return padded[:, idx + 1]


@dataclass
class FittedClassicalModel:
    """A fitted scikit-survival estimator with its training-fold imputer/scaler."""

    name: str
    feature_names: list[str]
    preprocess: Pipeline
    estimator: Any

    def matrix(self, X: pd.DataFrame) -> np.ndarray:
        """(N, F) imputed and scaled columns of ``X`` as the estimator reads them."""
        missing = [c for c in self.feature_names if c not in X.columns]
        if missing:
            raise ValueError(f"{self.name}: design matrix lacks columns {missing[:10]}")
        return self.preprocess.transform(X[self.feature_names].to_numpy(dtype=np.float64))

    def predict(self, X: pd.DataFrame) -> SurvivalPrediction:
        """Risk and S(12), S(24) of the N rows of ``X`` (columns as in training)."""
        x = self.matrix(X)
        risk = np.asarray(self.estimator.predict(x), dtype=np.float64)
        surv = self.estimator.predict_survival_function(x, return_array=True)  # (N, T)
        s = step_survival_at(np.asarray(self.estimator.unique_times_), surv, SURVIVAL_TIMES)
        return SurvivalPrediction(risk=risk, surv_12=s[:, 0], surv_24=s[:, 1])


def _prepare(
    X: pd.DataFrame, time: np.ndarray, event: np.ndarray, name: str
) -> tuple[list[str], Pipeline, np.ndarray, np.ndarray]:
    if len(X) != len(time) or len(X) != len(event):
        raise ValueError(f"{name}: X has {len(X)} rows but time/event {len(time)}/{len(event)}")
    if not np.asarray(event, dtype=bool).any():
        raise ValueError(f"{name}: the training rows contain no event; cannot fit a Cox model")
    names = [str(c) for c in X.columns]
    x = X.to_numpy(dtype=np.float64)
    all_nan = [n for n, col in zip(names, x.T, strict=True) if np.isnan(col).all()]
    if all_nan:
        logger.warning("%s: columns missing for every training patient: %s", name, all_nan)
        keep = [n not in all_nan for n in names]
        names = [n for n, k in zip(names, keep, strict=True) if k]
        x = x[:, keep]
    # Median imputation + scaling fitted on the training rows only (no test-fold leakage).
    preprocess = Pipeline(
        [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
    ).fit(x)
    y = Surv.from_arrays(event=np.asarray(event, dtype=bool), time=np.asarray(time, float))
    return names, preprocess, preprocess.transform(x), y


def select_penalizer(
    x: np.ndarray, y: np.ndarray, penalizers: Sequence[float], seed: int, n_splits: int = 5
) -> float:
    """Ridge penalty with the best inner-CV Harrell C (scikit-learn's GridSearchCV over
    scikit-survival's Cox; each inner split refits imputation and scaling on its own rows).

    Args:
        x: (N, F) raw training design matrix (NaN allowed); y: structured survival array.
    """
    if len(penalizers) == 1:
        return float(penalizers[0])
    pipe = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
            ("cox", CoxPHSurvivalAnalysis(ties="efron", n_iter=200)),
        ]
    )
    search = GridSearchCV(
        pipe,
        {"cox__alpha": [float(p) for p in penalizers]},
        cv=KFold(n_splits=n_splits, shuffle=True, random_state=seed),
        error_score=np.nan,
        refit=False,
    ).fit(x, y)
    return float(search.best_params_["cox__alpha"])


def fit_cox_clinical(
    X_train: pd.DataFrame,
    time: np.ndarray,
    event: np.ndarray,
    penalizer: float | Sequence[float] = 0.1,
    name: str = "cox_clinical",
    seed: int = 42,
) -> FittedClassicalModel:
    """Cox PH (Efron ties, ridge ``penalizer`` for stability with one-hot columns).

    Args:
        X_train: (N, F) design matrix of the training fold (NaN allowed).
        time: (N,) months; event: (N,) bool.
        penalizer: the ridge penalty, or candidates chosen by inner 5-fold CV on the
            training rows only (:func:`select_penalizer`).
    """
    names, preprocess, x, y = _prepare(X_train, time, event, name)
    candidates = [penalizer] if isinstance(penalizer, int | float) else list(penalizer)
    raw = X_train[names].to_numpy(dtype=np.float64)
    alpha = select_penalizer(raw, y, candidates, seed)
    est = CoxPHSurvivalAnalysis(alpha=alpha, ties="efron", n_iter=200).fit(x, y)
    return FittedClassicalModel(name, names, preprocess, est)


def combine(X_clinical: pd.DataFrame, X_imaging: pd.DataFrame) -> pd.DataFrame:
    """Clinical ⊕ imaging design matrix (rows aligned) as the clinical+imaging models expect."""
    if len(X_clinical) != len(X_imaging):
        raise ValueError(
            f"clinical ({len(X_clinical)}) and imaging ({len(X_imaging)}) rows differ; "
            "align both on the same participants first"
        )
    overlap = set(X_clinical.columns) & set(X_imaging.columns)
    if overlap:
        raise ValueError(f"clinical and imaging design matrices share columns {sorted(overlap)}")
    return pd.concat([X_clinical.reset_index(drop=True), X_imaging.reset_index(drop=True)], axis=1)


def fit_cox_region_measures(
    X_clinical: pd.DataFrame,
    X_imaging: pd.DataFrame,
    time: np.ndarray,
    event: np.ndarray,
    penalizer: float = 0.1,
) -> FittedClassicalModel:
    """Cox PH on clinical ⊕ imaging features; predict with ``combine(X_clin, X_img)``."""
    return fit_cox_clinical(
        combine(X_clinical, X_imaging), time, event, penalizer, name="cox_region_measures"
    )


def fit_rsf(
    X_train: pd.DataFrame,
    time: np.ndarray,
    event: np.ndarray,
    n_estimators: int = 200,
    min_samples_leaf: int = 10,
    max_features: float | str | None = "sqrt",
    seed: int = 42,
    n_jobs: int = 1,
    name: str = "rsf_region_measures",
) -> FittedClassicalModel:
    """Random survival forest (Ishwaran 2008), seeded; risk = its cumulative-hazard score."""
    names, preprocess, x, y = _prepare(X_train, time, event, name)
    est = RandomSurvivalForest(
        n_estimators=n_estimators,
        min_samples_leaf=min_samples_leaf,
        max_features=max_features,
        random_state=seed,
        n_jobs=n_jobs,
        low_memory=False,
    ).fit(x, y)
    return FittedClassicalModel(name, names, preprocess, est)
