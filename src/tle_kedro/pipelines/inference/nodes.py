"""Thin inference nodes over :mod:`tle_kedro.registry` (nothing is refitted here)."""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field

from tle_kedro.data.cohort import RawCohort
from tle_kedro.data.exclusions import concat_exclusions, summary_line
from tle_kedro.registry.explain import explain_patient, has_voxel_maps, patient_figure
from tle_kedro.registry.pyfunc import PreparedCohort, TLESurvivalModel, as_survival_model

logger = logging.getLogger(__name__)


class InferenceParams(BaseModel):
    """``inference:`` in parameters_inference.yml."""

    model_config = ConfigDict(extra="forbid")
    explain: bool = False
    method: Literal["integrated_gradients", "occlusion"] = "integrated_gradients"
    n_steps: int = Field(16, ge=2, le=256)
    occlusion_window: int = Field(6, ge=1)
    occlusion_stride: int = Field(3, ge=1)
    horizon_months: float = Field(36.0, gt=0)


def predict_patients(
    inference_cohort: RawCohort, inference_model: Any
) -> tuple[pd.DataFrame, pd.DataFrame, tuple[TLESurvivalModel, PreparedCohort, pd.DataFrame]]:
    """Validate (outcome optional), preprocess and predict every usable new patient.

    Returns:
        predictions (``participant_id, risk, risk_group, p_recurrence_12, p_recurrence_24,
        modalities_used``), the exclusion report, and (model, prepared patients, predictions)
        for the explanation node.
    """
    model = as_survival_model(inference_model)
    start = time.perf_counter()
    prepared = model.prepare(inference_cohort.participants, inference_cohort.images)
    predictions = model.predict_prepared(prepared)
    seconds = time.perf_counter() - start
    n_read = len(inference_cohort.participants)
    logger.info("inference: %s", summary_line(n_read, prepared.table))
    logger.info(
        "inference: %d patients predicted in %.2f s (%.2f s per patient, preprocessing included)",
        len(predictions),
        seconds,
        seconds / max(1, n_read),
    )
    exclusions = concat_exclusions(inference_cohort.notes, prepared.exclusions)
    return predictions, exclusions, (model, prepared, predictions)


def explain_patients(
    inference_state: tuple[TLESurvivalModel, PreparedCohort, pd.DataFrame],
    params: dict[str, Any],
) -> dict[str, Figure]:
    """One report figure per predicted patient (``<participant_id>.png``): the survival curve
    and the images, with the explanation (contributions, attention, attribution maps) only when
    ``inference.explain`` asks for it (seconds per patient, so off by default)."""
    p = InferenceParams(**params)
    model, prepared, predictions = inference_state
    if predictions.empty:
        return {}
    arrays = model.arrays(prepared)
    times = np.linspace(0.0, p.horizon_months, 200)
    curves = model.survival_curves(arrays, times, predictions["risk"].to_numpy(float))  # (N, T)
    figures: dict[str, Figure] = {}
    for i, row in enumerate(predictions.to_dict("records")):
        explanation = (
            explain_patient(
                model.fitted,
                arrays,
                i,
                p.method,
                p.n_steps,
                p.occlusion_window,
                p.occlusion_stride,
            )
            if p.explain
            else None
        )
        figures[f"{row['participant_id']}.png"] = patient_figure(
            row["participant_id"],
            explanation,
            prepared.tensors.volumes[i],
            prepared.tensors.affine,
            times,
            curves[i],
            row,
            voxel_maps=has_voxel_maps(model.fitted),
        )
    return figures
