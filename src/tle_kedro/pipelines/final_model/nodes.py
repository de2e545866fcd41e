"""Thin final-model nodes over :mod:`tle_kedro.training` and :mod:`tle_kedro.registry`."""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.data.regions import crop_grid_affine
from tle_kedro.registry.promotion import (
    PairedSettings,
    cohort_fingerprint,
    fold_fingerprint,
    promote_run_model,
    validation_metric,
    validation_predictions,
)
from tle_kedro.registry.pyfunc import TLESurvivalModel, risk_groups
from tle_kedro.training.cv import CVData
from tle_kedro.training.final import fit_final_model
from tle_kedro.training.fitted import FittedNeuralModel
from tle_kedro.training.specs import build_specs, parse_modeling_params
from tle_kedro.transforms.params import parse_preprocessing_params

logger = logging.getLogger(__name__)


class RegistryParams(BaseModel):
    """``registry:`` in parameters_registry.yml."""

    model_config = ConfigDict(extra="forbid")
    model_name: str = Field("tle_transeprelap", min_length=1)
    model: Literal[
        "transeprelap", "transeprelap_no_pet", "transeprelap_no_mri", "transeprelap_no_clinical"
    ] = "transeprelap"
    metric: Literal["harrell_c"] = "harrell_c"
    margin: float = Field(0.0, ge=0.0)
    paired_n_boot: int = Field(1000, ge=100)
    paired_level: float = Field(0.95, gt=0, lt=1)
    paired_seed: int = 0
    risk_group_threshold: Literal["oof_probability", "final_training"] = "oof_probability"


def fit_final(
    clinical_validated: pd.DataFrame,
    image_tensors: ImageTensors,
    clinical_tokenizer: Any,
    modeling: dict[str, Any],
    registry: dict[str, Any],
    atlas: dict[str, Any],
) -> tuple[FittedNeuralModel, dict[str, Any]]:
    """Refit ``registry.model`` on every usable patient (Optuna study ``<study>-final``).

    Returns:
        The fitted model (Breslow baseline on all patients) and its fit summary (tuned
        parameters, epochs).
    """
    reg = RegistryParams(**registry)
    _, model_cfg, train_cfg, _, tuning = parse_modeling_params(
        modeling, image_tensors.grid_shape, image_tensors.affine, atlas
    )
    spec = build_specs([reg.model], model_cfg, train_cfg)[0]
    data = CVData(
        clinical=clinical_validated,
        folds=pd.DataFrame(columns=["participant_id", "repeat", "fold"]),
        image_tensors=image_tensors,
        tokenizer=clinical_tokenizer,
    )
    fitted, tuned = fit_final_model(spec, data, tuning)
    summary = {
        "model": reg.model,
        "n_patients": len(clinical_validated),
        "n_events": int(clinical_validated["recurrence"].sum()),
        "tuned_params": tuned,
        "epochs_run": len(fitted.history),
        "best_epoch": fitted.best_epoch,
    }
    logger.info("final %s fitted on %d patients: %s", reg.model, len(clinical_validated), summary)
    return fitted, summary


def bundle_model(
    final_model: FittedNeuralModel,
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
    params = parse_preprocessing_params(preprocessing)
    if not np.allclose(
        image_tensors.affine, crop_grid_affine(params.crop_box_mni, params.grid_shape)
    ):
        raise ValueError(
            "image_tensors were made with another crop box or grid than params:preprocessing; "
            "rerun data_processing so the registered preprocessing matches the training tensors"
        )
    ids = list(clinical_validated["participant_id"])
    training_risk = final_model.log_risk(final_model.arrays(ids, image_tensors, clinical_validated))
    groups = risk_groups(
        final_model, training_risk, oof_predictions, reg.model, reg.risk_group_threshold
    )
    card = {
        **final_fit_summary,
        "model_name": reg.model_name,
        "validation_metric": reg.metric,
        "validation_value": validation_metric(
            oof_predictions, clinical_validated, reg.model, reg.metric
        ),
        "validation_cohort": cohort_fingerprint(clinical_validated),
        "validation_folds": fold_fingerprint(
            validation_predictions(oof_predictions, clinical_validated, reg.model)
        ),
        "risk_threshold": groups.threshold,
        "risk_threshold_p12": groups.p12_threshold,
        "risk_threshold_source": groups.source,
        "training_risk_quartiles": np.percentile(training_risk, [25, 50, 75]).tolist(),
    }
    return TLESurvivalModel(final_model, params, groups, info=card), card


def select_validation_predictions(
    oof_predictions: pd.DataFrame, clinical_validated: pd.DataFrame, registry: dict[str, Any]
) -> pd.DataFrame:
    """The registered model's out-of-fold rows, patients as cohort positions (logged, so a
    later run on the same cohort can pair with them; no participant id reaches MLflow)."""
    model = RegistryParams(**registry).model
    return validation_predictions(oof_predictions, clinical_validated, model)


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
