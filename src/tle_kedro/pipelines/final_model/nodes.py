"""Thin final-model nodes over :mod:`tle_kedro.training` and :mod:`tle_kedro.registry`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.data.regions import crop_grid_affine
from tle_kedro.datasets.fold_models import LazyFoldModels
from tle_kedro.registry.promotion import (
    PairedSettings,
    cohort_fingerprint,
    fold_fingerprint,
    promote_run_model,
    validation_metric,
    validation_predictions,
)
from tle_kedro.registry.pyfunc import FittedModel, TLESurvivalModel, risk_groups
from tle_kedro.training.classical import fit_final_classical
from tle_kedro.training.cv import CVData
from tle_kedro.training.final import fit_final_model
from tle_kedro.training.fold_ensemble import champion_fold_ensemble
from tle_kedro.training.specs import ModelName, build_specs, parse_modeling_params
from tle_kedro.transforms.params import parse_preprocessing_params

logger = logging.getLogger(__name__)


class RegistryParams(BaseModel):
    """``registry:`` in parameters_registry.yml."""

    model_config = ConfigDict(extra="forbid")
    model_name: str = Field("tle_recurrence", min_length=1)
    model: ModelName | Literal["auto"] = "auto"  # type: ignore[valid-type]
    metric: Literal["harrell_c"] = "harrell_c"
    margin: float = Field(0.0, ge=0.0)
    paired_n_boot: int = Field(1000, ge=100)
    paired_level: float = Field(0.95, gt=0, lt=1)
    paired_seed: int = 0
    risk_group_threshold: Literal["oof_probability", "final_training"] = "oof_probability"
    champion: Literal["refit", "fold_ensemble"] = "refit"


def choose_model(
    oof_predictions: pd.DataFrame, clinical_validated: pd.DataFrame, registry: RegistryParams
) -> tuple[str, dict[str, float]]:
    """The comparison model to refit and register, and every candidate's validation value.

    ``registry.model: auto`` takes the model with the best out-of-fold ``registry.metric`` in
    this run (ties: the first in the configured order of ``oof_predictions``); a named model
    is taken as is (it must have out-of-fold rows: the card reports its validation value).
    """
    names = list(dict.fromkeys(oof_predictions["model"]))
    values = {
        m: validation_metric(oof_predictions, clinical_validated, m, registry.metric) for m in names
    }
    if registry.model != "auto":
        if registry.model not in values:
            raise ValueError(
                f"registry.model {registry.model!r} has no out-of-fold predictions (models: "
                f"{names}); add it to modeling.models or set registry.model: auto"
            )
        return registry.model, values
    finite = {m: v for m, v in values.items() if np.isfinite(v)}
    if not finite:
        raise ValueError(f"registry.model auto: no model has a finite {registry.metric}")
    best = max(finite, key=lambda m: finite[m])
    logger.info(
        "registry.model auto: %s (out-of-fold %s %s)",
        best,
        registry.metric,
        ", ".join(f"{m} {v:.3f}" for m, v in sorted(finite.items(), key=lambda kv: -kv[1])),
    )
    return best, values


def fit_final(
    clinical_validated: pd.DataFrame,
    image_tensors: ImageTensors,
    clinical_recipe: Any,
    clinical_tokenizer: Any,
    oof_predictions: pd.DataFrame,
    optuna_storage: str | None,
    modeling: dict[str, Any],
    registry: dict[str, Any],
    atlas: dict[str, Any],
    *fold_models: LazyFoldModels,
) -> tuple[FittedModel, dict[str, Any]]:
    """The registered model, fitted on every usable patient or made of its fold models.

    The model is ``registry.model``, or with ``auto`` the comparison model with the best
    out-of-fold validation metric of this run (:func:`choose_model`). ``registry.champion:
    refit`` fits it again on every patient: a neural model's hyperparameters, when tuned,
    come from the Optuna study ``<study>-final`` in ``optuna_storage`` (the catalog's); a
    classical baseline refits its recipe, penalty search and estimator. ``fold_ensemble``
    averages its outer-fold models instead (:mod:`tle_kedro.training.fold_ensemble`):
    ``fold_models`` are the candidates' ``<model>.cv_fold_models`` handles, and only the
    chosen model's are unpickled.

    Returns:
        The fitted model and its fit summary (``model``, ``champion``, the candidates'
        validation values, tuned parameters, epochs, ensemble members).
    """
    reg = RegistryParams(**registry)
    name, candidates = choose_model(oof_predictions, clinical_validated, reg)
    _, model_cfg, train_cfg, classical, tuning = parse_modeling_params(
        modeling, image_tensors.grid_shape, image_tensors.affine, atlas
    )
    spec = build_specs([name], model_cfg, train_cfg)[0]
    fitted: FittedModel
    tuned: dict[str, Any] = {}  # a fold ensemble's members used their folds' tuned values
    if reg.champion == "fold_ensemble":
        fitted = champion_fold_ensemble(
            name,
            spec.family,
            fold_models_of(name, fold_models),
            oof_predictions,
            clinical_validated,
            image_tensors,
            clinical_recipe,
            model_cfg.atlas,
        )
    elif spec.family == "neural":
        data = CVData(
            clinical=clinical_validated,
            folds=pd.DataFrame(columns=["participant_id", "repeat", "fold"]),
            image_tensors=image_tensors,
            tokenizer=clinical_tokenizer,
        )
        tuning = tuning.model_copy(update={"storage": optuna_storage})
        fitted, tuned = fit_final_model(spec, data, tuning)
    else:
        fitted = fit_final_classical(
            name,
            spec.family,
            clinical_validated,
            image_tensors,
            clinical_recipe,
            classical,
            model_cfg.atlas,
        )
    summary = {
        "model": name,
        "model_choice": "auto" if reg.model == "auto" else "configured",
        "champion": reg.champion,
        "members": list(getattr(fitted, "keys", [])),
        "candidates": {m: float(v) for m, v in candidates.items()},
        "n_patients": len(clinical_validated),
        "n_events": int(clinical_validated["recurrence"].sum()),
        "tuned_params": tuned,
        "epochs_run": len(fitted.history),
        "best_epoch": fitted.best_epoch,
    }
    logger.info(
        "final %s (%s) on %d patients: %s", name, reg.champion, len(clinical_validated), summary
    )
    return fitted, summary


def fold_models_of(name: str, fold_models: Sequence[LazyFoldModels]) -> dict[str, Any]:
    """The chosen model's fold models, unpickled (the other handles stay unread).

    Raises:
        ValueError: the pipeline was built without ``<name>.cv_fold_models`` (its
            ``registry`` parameters differ from the node's), or none was saved.
    """
    for handle in fold_models:
        if handle.model == name:
            return handle.load()
    raise ValueError(
        f"registry.champion fold_ensemble chose {name!r}, but the final_model pipeline reads "
        f"the fold models of {[h.model for h in fold_models]} only: build the pipeline and "
        "run it with the same registry parameters (the same --env and --params)"
    )


def bundle_model(
    final_model: FittedModel,
    final_fit_summary: dict[str, Any],
    oof_predictions: pd.DataFrame,
    clinical_validated: pd.DataFrame,
    image_tensors: ImageTensors,
    preprocessing: dict[str, Any],
    registry: dict[str, Any],
) -> tuple[TLESurvivalModel, dict[str, Any]]:
    """The registered artefact (preprocessing + model + risk-group cut) and its model card.

    The card is saved after the model (same node), so the promotion node that reads it runs
    once the model is logged and registered.
    """
    reg = RegistryParams(**registry)
    model = str(final_fit_summary["model"])
    params = parse_preprocessing_params(preprocessing)
    if not np.allclose(
        image_tensors.affine, crop_grid_affine(params.crop_box_mni, params.grid_shape)
    ):
        raise ValueError(
            "image_tensors were made with another crop box or grid than params:preprocessing; "
            "rerun data_processing so the registered preprocessing matches the training tensors"
        )
    ids = list(clinical_validated["participant_id"])
    training = final_model.predict(final_model.arrays(ids, image_tensors, clinical_validated))  # type: ignore[arg-type]
    groups = risk_groups(final_model, training, oof_predictions, model, reg.risk_group_threshold)
    card = {
        **final_fit_summary,
        "model_name": reg.model_name,
        "validation_metric": reg.metric,
        "validation_value": validation_metric(
            oof_predictions, clinical_validated, model, reg.metric
        ),
        "validation_cohort": cohort_fingerprint(clinical_validated),
        "validation_folds": fold_fingerprint(
            validation_predictions(oof_predictions, clinical_validated, model)
        ),
        "risk_threshold": groups.threshold,
        "risk_threshold_p12": groups.p12_threshold,
        "risk_threshold_source": groups.source,
        "risk_threshold_scale": groups.scale,
        "training_risk_quartiles": np.percentile(training.risk, [25, 50, 75]).tolist(),
    }
    return TLESurvivalModel(final_model, params, groups, info=card), card


def select_validation_predictions(
    oof_predictions: pd.DataFrame, clinical_validated: pd.DataFrame, registry: dict[str, Any]
) -> pd.DataFrame:
    """The registered model's out-of-fold rows, patients as cohort positions (logged, so a
    later run on the same cohort can pair with them; no participant id reaches MLflow).

    The model is chosen again from the same inputs (:func:`choose_model` is deterministic
    and cheap), so this 07 dataset does not depend on the 08 fit summary."""
    model, _ = choose_model(oof_predictions, clinical_validated, RegistryParams(**registry))
    return validation_predictions(oof_predictions, clinical_validated, model)


# What the registry's version list shows of each version besides its validation metric:
# which comparison model was registered and whether it is a refit or a fold ensemble.
VERSION_TAGS = ("model", "champion")


def promote_model(
    final_model_card: dict[str, Any],
    predictions: pd.DataFrame,
    clinical_validated: pd.DataFrame,
    registry: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """Champion if it beats the current champion by > margin (paired ΔC lower bound on the
    same cohort and folds, else the recorded values), else challenger; both numbers."""
    reg = RegistryParams(**registry)
    decision = promote_run_model(
        reg.model_name,
        float(final_model_card["validation_value"]),
        metric=reg.metric,
        margin=reg.margin,
        cohort=final_model_card.get("validation_cohort"),
        folds=final_model_card.get("validation_folds"),
        predictions=predictions,
        clinical=clinical_validated,
        paired=PairedSettings(reg.paired_n_boot, reg.paired_level, reg.paired_seed),
        version_tags={
            k: str(final_model_card[k]) for k in VERSION_TAGS if final_model_card.get(k) is not None
        },
    )
    logger.info("promotion: %s", decision.as_dict())
    metrics = {f"new_{reg.metric}": decision.new_value}  # prefix "registry." in the catalog
    if decision.champion_value is not None:
        metrics[f"champion_{reg.metric}"] = decision.champion_value
    if decision.alias is not None:
        metrics["promoted_to_champion"] = float(decision.alias == "champion")
    paired = {"paired_delta": decision.delta, "paired_delta_lo": decision.delta_lo}
    metrics |= {k: v for k, v in paired.items() if v is not None and np.isfinite(v)}
    return decision.as_dict(), {k: {"value": v, "step": 0} for k, v in metrics.items()}
