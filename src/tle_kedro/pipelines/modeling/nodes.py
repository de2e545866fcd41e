"""Thin modeling nodes over :mod:`tle_kedro.training`.

Each model of ``modeling.models`` is cross-validated by the nodes of its own namespace
(``pipeline.py``): TransEpRelap's per-fold Optuna studies (``tune_model``), then the fold
fits with their out-of-fold predictions (``cross_validate_neural`` /
``cross_validate_classical``). The ``combine_*`` nodes gather every model's results into
the datasets the later pipelines read (``oof_predictions``, ``cv_fold_metrics``,
``modeling_metrics``), and ``describe_modeling`` writes the resolved configuration
(``modeling_config``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pandas as pd

from tle_kedro.data.atlas import atlas_description
from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.tracking import MlflowFoldLogger
from tle_kedro.training.config import ClassicalConfig, parse_section
from tle_kedro.training.cv import CVData, CVResult, run_cross_validation
from tle_kedro.training.fold_tuning import fold_key, from_json, to_json, tune_folds
from tle_kedro.training.parallel import ExecutorConfig, resolve_executor
from tle_kedro.training.specs import (
    ModelingParams,
    ModelSpec,
    build_specs,
    model_family,
    parse_modeling_params,
    tuning_leads,
)
from tle_kedro.training.tuning import log_trials

logger = logging.getLogger(__name__)

FoldOutputs = tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]


def _spec_of(model: str, specs: list[ModelSpec]) -> ModelSpec:
    for spec in specs:
        if spec.name == model:
            return spec
    raise ValueError(
        f"the modeling pipeline has a namespace {model!r} but params:modeling.models is "
        f"{[s.name for s in specs]}: the pipeline and the parameters were read from different "
        "configurations (pass --env/--params to the same kedro command)"
    )


def tune_model(
    clinical_validated: pd.DataFrame,
    cv_folds: pd.DataFrame,
    image_tensors: ImageTensors,
    clinical_tokenizer: Any,
    optuna_storage: str | None,
    params: dict[str, Any],
    atlas: dict[str, Any],
    *,
    model: str,
) -> dict[str, dict[str, Any]]:
    """``model``'s Optuna study in every outer training fold → ``{"r0-f1": {param: value}}``.

    ``optuna_storage`` (the catalog's ``optuna_storage``: an RDB URL, or None for memory)
    holds the studies. ``{}`` per fold when tuning is disabled (configured values).
    """
    modeling, model_cfg, train_cfg, _, tuning = parse_modeling_params(
        params, image_tensors.grid_shape, image_tensors.affine, atlas
    )
    spec = _spec_of(model, build_specs(list(modeling.models), model_cfg, train_cfg))
    tuning = tuning.model_copy(update={"storage": optuna_storage})
    data = CVData(
        clinical=clinical_validated,
        folds=cv_folds,
        image_tensors=image_tensors,
        tokenizer=clinical_tokenizer,
    )
    tuned = tune_folds(
        spec,
        data,
        tuning,
        executor=resolve_executor(modeling.executor, train_cfg.device),
        on_study_end=lambda study: log_trials(tuning, study),
    )
    return to_json(tuned)


def cross_validate_neural(
    clinical_validated: pd.DataFrame,
    cv_folds: pd.DataFrame,
    image_tensors: ImageTensors,
    clinical_tokenizer: Any,
    params: dict[str, Any],
    atlas: dict[str, Any],
    tuned_params: dict[str, dict[str, Any]] | None = None,
    *,
    model: str,
) -> FoldOutputs:
    """A neural model fitted on every outer training fold (with the fold's tuned values)
    and predicting its test fold → its ``oof_predictions``, ``cv_fold_metrics`` and fold models.
    """
    modeling, model_cfg, train_cfg, classical, _ = parse_modeling_params(
        params, image_tensors.grid_shape, image_tensors.affine, atlas
    )
    spec = _spec_of(model, build_specs(list(modeling.models), model_cfg, train_cfg))
    data = CVData(
        clinical=clinical_validated,
        folds=cv_folds,
        image_tensors=image_tensors,
        tokenizer=clinical_tokenizer,
    )
    executor = resolve_executor(modeling.executor, train_cfg.device)
    return _cross_validate(spec, data, modeling, classical, executor, from_json(tuned_params or {}))


def cross_validate_classical(
    clinical_validated: pd.DataFrame,
    cv_folds: pd.DataFrame,
    clinical_features: Any,
    params: dict[str, Any],
    imaging_features: pd.DataFrame | None = None,
    *,
    model: str,
) -> FoldOutputs:
    """A classical baseline fitted on every outer training fold (design-matrix recipe
    fitted there too), predicting its test fold; ``imaging_features`` for the region models.
    """
    modeling = ModelingParams(**params)
    classical = parse_section(ClassicalConfig, modeling.classical, "modeling.classical")
    spec = ModelSpec(name=model, family=model_family(model))
    data = CVData(
        clinical=clinical_validated,
        folds=cv_folds,
        imaging_features=imaging_features,
        recipe=clinical_features,
    )
    # In this process: a baseline's fits take seconds, less than starting worker processes
    # (smoke cohort, cox_clinical alone: 40 s with 2 workers, 17 s inline, kedro start-up
    # included, on a loaded 2-core machine).
    return _cross_validate(spec, data, modeling, classical, None, {})


def _cross_validate(
    spec: ModelSpec,
    data: CVData,
    modeling: ModelingParams,
    classical: ClassicalConfig,
    executor: ExecutorConfig | None,
    fold_params: dict[tuple[int, int], dict[str, Any]],
) -> FoldOutputs:
    # The study already ran (tune_model): this call fits with its values, studies nothing.
    result: CVResult = run_cross_validation(
        [replace(spec, tune_with=None)],
        data,
        classical=classical,
        on_fold_end=MlflowFoldLogger(),
        keep_models=modeling.keep_fold_models,
        executor=executor,
        fold_params=fold_params,
    )
    models = {f"{m}-r{r}-f{f}": fitted for (m, r, f), fitted in result.models.items()}
    return result.oof, result.fold_metrics, models


def _in_fold_order(frames: tuple[pd.DataFrame, ...]) -> pd.DataFrame:
    """One frame: by (repeat, fold), then the models in the order given (stable sort)."""
    combined = pd.concat(frames, ignore_index=True)
    return combined.sort_values(["repeat", "fold"], kind="stable").reset_index(drop=True)


def combine_predictions(*oof_predictions: pd.DataFrame) -> pd.DataFrame:
    """Every model's out-of-fold predictions in one long frame (``oof_predictions``)."""
    return _in_fold_order(oof_predictions)


def combine_fold_metrics(
    *fold_metrics: pd.DataFrame,
) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Every model's fold metrics (``cv_fold_metrics``) and their MLflow summary."""
    combined = _in_fold_order(fold_metrics)
    return combined, summary_metrics(combined)


def describe_modeling(
    image_tensors: ImageTensors,
    params: dict[str, Any],
    atlas: dict[str, Any],
    tuned_params: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The resolved configuration of the comparison (``modeling_config``): models, model,
    atlas, train, classical and tuning sections (not the storage location), and the
    hyperparameters each tuned model used per fold (``<model>-r<repeat>-f<fold>``)."""
    modeling, model_cfg, train_cfg, classical, tuning = parse_modeling_params(
        params, image_tensors.grid_shape, image_tensors.affine, atlas
    )
    tuned = from_json(tuned_params or {})
    leads = tuning_leads(list(modeling.models))
    used = {
        f"{model}-{fold_key(r, f)}": p
        for (r, f), p in sorted(tuned.items())
        for model, lead in leads.items()
        if lead is not None and p
    }
    return {
        "models": list(modeling.models),
        "model": model_cfg.model_dump(mode="json"),
        "atlas": atlas_description(model_cfg.atlas),
        "train": train_cfg.model_dump(mode="json"),
        "classical": classical.model_dump(mode="json"),
        "tuning": tuning.model_dump(mode="json", exclude={"storage"}),
        "tuned_params": used,
    }


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
