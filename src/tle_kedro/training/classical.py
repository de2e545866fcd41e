"""Classical baselines as trained models: one fit function for the folds and the final refit,
and the fitted pipeline the registry wraps (fitted clinical recipe + atlas measures + estimator).

The estimators themselves live in :mod:`tle_kedro.models.classical`; here they meet the
project's inputs. :class:`FittedClassicalPipeline` offers what the registered model needs of a
fitted model (``arrays``, ``log_risk``, ``predict``, ``survival``, ``model_config``), the same
names :class:`~tle_kedro.training.fitted.FittedNeuralModel` has, so a region-measure Cox or a
survival forest can be registered and run on new patients like TransEpRelap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from tle_kedro.data.atlas import AtlasConfig
from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.features.imaging import imaging_features
from tle_kedro.models.classical import (
    FittedClassicalModel,
    SurvivalPrediction,
    combine,
    fit_cox_clinical,
    fit_rsf,
    step_survival_at,
)
from tle_kedro.training.config import ClassicalConfig
from tle_kedro.training.data import outcome_arrays, rows_for

# Families whose design matrix adds the atlas region measures to the clinical columns.
MEASURE_FAMILIES = ("cox_region_measures", "rsf_region_measures")


def fit_family(
    family: str,
    name: str,
    x: pd.DataFrame,
    time: np.ndarray,
    event: np.ndarray,
    config: ClassicalConfig,
) -> FittedClassicalModel:
    """The estimator of a classical ``family`` fitted on the design matrix ``x`` (N, F)."""
    if family == "rsf_region_measures":
        return fit_rsf(
            x,
            time,
            event,
            config.rsf_n_estimators,
            config.rsf_min_samples_leaf,
            config.rsf_max_features,
            config.seed,
            config.rsf_n_jobs,
            name=name,
        )
    if family in ("cox_clinical", "cox_region_measures"):
        return fit_cox_clinical(x, time, event, config.cox_penalizer, name=name, seed=config.seed)
    raise ValueError(f"{name}: {family!r} is not a classical family")


@dataclass(frozen=True)
class ClassicalInputs:
    """What a classical model reads (the registered model reports it per patient).

    Attributes:
        grid_shape: the image grid its measures are taken on (the preprocessing grid).
        use_t1, use_pet: whether the atlas measures of that modality are columns.
        use_clinical: always True (every classical model has the clinical columns).
    """

    grid_shape: tuple[int, int, int]
    use_t1: bool
    use_pet: bool
    use_clinical: bool = True


def design_matrix(
    recipe: Any,
    atlas: AtlasConfig | None,
    participant_ids: Sequence[str],
    tensors: ImageTensors | None,
    table: pd.DataFrame,
) -> pd.DataFrame:
    """Clinical columns (fitted ``recipe``) ⊕ atlas measures of ``tensors`` (``atlas`` set).

    The measures come from :func:`~tle_kedro.features.imaging.imaging_features`, the function
    that wrote the ``imaging_features`` the cross-validation read, so a final model sees new
    patients exactly as its fold models saw theirs. NaN where a modality is missing (imputed
    by the estimator's training medians).
    """
    rows = rows_for(table, participant_ids, "clinical table")
    x = recipe.transform(rows).astype(np.float64).reset_index(drop=True)
    if atlas is None:
        return x
    if tensors is None:
        raise ValueError("a region-measure model needs the patients' image tensors")
    measures = imaging_features(tensors, rows, atlas).drop(columns=["participant_id"])
    return combine(x, measures.astype(np.float64))


@dataclass
class FittedClassicalPipeline:
    """A classical baseline fitted on every patient, with its fitted inputs.

    Picklable (scikit-learn objects); ``history``/``best_epoch`` are empty (no epochs).
    """

    kind: str
    model_config: ClassicalInputs
    recipe: Any
    atlas: AtlasConfig | None
    estimator: FittedClassicalModel
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0

    def arrays(
        self, participant_ids: Sequence[str], image_tensors: ImageTensors, table: pd.DataFrame
    ) -> pd.DataFrame:
        """Design matrix of new patients (training recipe and imputation; no outcome)."""
        return design_matrix(self.recipe, self.atlas, participant_ids, image_tensors, table)

    def log_risk(self, data: pd.DataFrame) -> np.ndarray:
        """(N,) risk score (Cox: linear predictor; forest: summed cumulative hazard)."""
        return self.estimator.predict(data).risk

    def predict(self, data: pd.DataFrame) -> SurvivalPrediction:
        """Risk, S(12 months | x) and S(24 months | x), each (N,) float64."""
        return self.estimator.predict(data)

    def survival(
        self, data: pd.DataFrame, times: np.ndarray, risk: np.ndarray | None = None
    ) -> np.ndarray:
        """(N, T) S(t | x) at (T,) months from the estimator's own survival function."""
        x = self.estimator.matrix(data)
        est = self.estimator.estimator
        surv = est.predict_survival_function(x, return_array=True)  # (N, grid)
        return step_survival_at(np.asarray(est.unique_times_), surv, tuple(np.asarray(times)))


def fit_final_classical(
    name: str,
    family: str,
    clinical: pd.DataFrame,
    tensors: ImageTensors,
    recipe: Any,
    config: ClassicalConfig,
    atlas: AtlasConfig,
) -> FittedClassicalPipeline:
    """Refit a classical baseline on every patient of ``clinical`` (recipe fitted there too)."""
    ids = list(clinical["participant_id"])
    time, event = outcome_arrays(rows_for(clinical, ids, "clinical table"))
    fitted_recipe = clone(recipe).fit(rows_for(clinical, ids, "clinical table"))
    measures = atlas if family in MEASURE_FAMILIES else None
    x = design_matrix(fitted_recipe, measures, ids, tensors, clinical)
    estimator = fit_family(family, name, x, time, event, config)
    inputs = ClassicalInputs(
        grid_shape=tuple(tensors.grid_shape),  # type: ignore[arg-type]
        use_t1=measures is not None,
        use_pet=measures is not None,
    )
    return FittedClassicalPipeline(name, inputs, fitted_recipe, measures, estimator)
