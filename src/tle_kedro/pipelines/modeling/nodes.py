"""Thin modeling nodes over :mod:`tle_kedro.training`."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from tle_kedro.data.atlas import atlas_description
from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.tracking import MlflowFoldLogger
from tle_kedro.training.cv import CVData, run_cross_validation
from tle_kedro.training.parallel import resolve_executor
from tle_kedro.training.specs import build_specs, parse_modeling_params
from tle_kedro.training.tuning import log_trials

logger = logging.getLogger(__name__)


def cross_validate_models(
    clinical_validated: pd.DataFrame,
    cv_folds: pd.DataFrame,
    image_tensors: ImageTensors,
    imaging_features: pd.DataFrame,
    clinical_recipe: Any,
    clinical_tokenizer: Any,
    params: dict[str, Any],
    atlas: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Every comparison model on the same folds → out-of-fold predictions and fold metrics.

    Returns:
        oof_predictions (long: participant_id, model, repeat, fold, risk, surv_12, surv_24),
        fold_metrics (one row per model × repeat × fold), the fitted fold models, summary
        metrics for the MLflow parent run, and the resolved configuration.
    """
    modeling, model_cfg, train_cfg, classical, tuning = parse_modeling_params(
        params, image_tensors.grid_shape, image_tensors.affine, atlas
    )
    specs = build_specs(list(modeling.models), model_cfg, train_cfg)
    data = CVData(
        clinical=clinical_validated,
        folds=cv_folds,
        image_tensors=image_tensors,
        imaging_features=imaging_features,
        recipe=clinical_recipe,
        tokenizer=clinical_tokenizer,
    )
    result = run_cross_validation(
        specs,
        data,
        classical=classical,
        tuning=tuning,
        on_fold_end=MlflowFoldLogger(),
        keep_models=modeling.keep_fold_models,
        executor=resolve_executor(modeling.executor, train_cfg.device),
        on_study_end=lambda study: log_trials(tuning, study),
    )
    models = {f"{m}-r{r}-f{f}": fitted for (m, r, f), fitted in result.models.items()}
    resolved = {
        "models": list(modeling.models),
        "model": model_cfg.model_dump(mode="json"),
        "atlas": atlas_description(model_cfg.atlas),
        "train": train_cfg.model_dump(mode="json"),
        "classical": classical.model_dump(mode="json"),
        "tuning": tuning.model_dump(mode="json"),
        "tuned_params": {f"{m}-r{r}-f{f}": p for (m, r, f), p in result.tuned_params.items() if p},
    }
    return result.oof, result.fold_metrics, models, summary_metrics(result.fold_metrics), resolved


def summary_metrics(fold_metrics: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Mean test Harrell C and fit time per model, for the MLflow parent run."""
    out: dict[str, dict[str, float]] = {}
    for model, part in fold_metrics.groupby("model", sort=False):
        out[f"{model}.mean_fold_harrell_c"] = {
            "value": float(part["test_harrell_c"].mean()),
            "step": 0,
        }
        out[f"{model}.fit_seconds"] = {"value": float(part["fit_seconds"].sum()), "step": 0}
    return out
