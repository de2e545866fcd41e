"""Thin evaluation nodes over :mod:`tle_kedro.evaluation`."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field

from tle_kedro.evaluation import (
    EvaluationResult,
    clinical_baseline_table,
    evaluate_models,
    model_metrics,
    to_markdown,
)
from tle_kedro.evaluation.by_modality import c_by_modality
from tle_kedro.evaluation.decision_curve import model_decision_curve, threshold_grid
from tle_kedro.evaluation.plots import (
    calibration_plot,
    clinical_baseline_figure,
    decision_curve_plot,
    forest_plot,
    km_risk_groups_plot,
    time_dependent_auc_plot,
)
from tle_kedro.tracking import log_model_runs
from tle_kedro.training.specs import model_params

logger = logging.getLogger(__name__)


class EvaluationParams(BaseModel):
    """``evaluation:`` in parameters_evaluation.yml."""

    model_config = ConfigDict(extra="forbid")
    n_boot: int = Field(1000, ge=0)
    n_boot_secondary: int = Field(200, ge=0)
    seed: int = 42
    tau: float = Field(24.0, gt=0)
    auc_times: tuple[float, ...] = (12.0, 24.0)
    ibs_range: tuple[float, float] = (3.0, 30.0)
    calibration_time: float = Field(12.0, gt=0)
    n_groups: int = Field(5, ge=2)
    level: float = Field(0.95, gt=0, lt=1)
    reference_model: str = "transeprelap"
    calibration_times: tuple[float, ...] = (12.0, 24.0)
    decision_time: float = Field(12.0, gt=0)
    decision_thresholds: tuple[float, float, float] = (0.02, 0.6, 0.02)


def evaluate(
    oof_predictions: pd.DataFrame,
    clinical_validated: pd.DataFrame,
    ground_truth: pd.DataFrame,
    params: dict[str, Any],
) -> EvaluationResult:
    """All metrics with bootstrap intervals; ground truth only when the cohort has it."""
    p = EvaluationParams(**params)
    truth = ground_truth if len(ground_truth) else None
    result = evaluate_models(
        oof_predictions,
        clinical_validated,
        truth,
        n_boot=p.n_boot,
        n_boot_secondary=p.n_boot_secondary,
        seed=p.seed,
        tau=p.tau,
        auc_times=p.auc_times,
        ibs_range=p.ibs_range,
        calibration_time=p.calibration_time,
        n_groups=p.n_groups,
        level=p.level,
        reference_model=p.reference_model,
        calibration_times=p.calibration_times,
    )
    logger.info("Model comparison (out-of-fold):\n%s", to_markdown(result.comparison))
    return result


def report_tables(
    result: EvaluationResult,
) -> tuple[pd.DataFrame, str, pd.DataFrame, dict[str, dict[str, float]]]:
    """Comparison table (CSV and Markdown), long intervals, and MLflow metrics per model."""
    table = result.comparison
    metrics = {
        f"{model}.{column}": {"value": value, "step": 0}
        for model, values in model_metrics(table).items()
        for column, value in values.items()
    }
    return table, to_markdown(table) + "\n", result.intervals, metrics


def track_model_runs(result: EvaluationResult, modeling_config: dict[str, Any]) -> None:
    """One nested MLflow run per model (its comparison row and configuration), for MLflow's
    Compare view; nothing without an active run (``tle_kedro.tracking.log_model_runs``)."""
    metrics = model_metrics(result.comparison)
    log_model_runs(metrics, {model: model_params(model, modeling_config) for model in metrics})


def report_plots(result: EvaluationResult, params: dict[str, Any]) -> tuple[Figure, ...]:
    """Forest plot of C-index, KM of the reference model's risk groups, calibration, AUC(t)."""
    p = EvaluationParams(**params)
    data = result.data
    reference = data.models.index(p.reference_model) if p.reference_model in data.models else 0
    risks = {name: data.risk[m] for m, name in enumerate(data.models)}
    return (
        forest_plot(result.comparison),
        km_risk_groups_plot(data.time, data.event, data.risk[reference], data.models[reference]),
        calibration_plot(result.calibration, t=p.calibration_time),
        time_dependent_auc_plot(data.time, data.event, risks, highlight=data.models[reference]),
    )


def report_decision_curve(
    result: EvaluationResult, params: dict[str, Any]
) -> tuple[pd.DataFrame, Figure]:
    """Net benefit per model and threshold (table) and the decision curves (figure)."""
    p = EvaluationParams(**params)
    thresholds = threshold_grid(*p.decision_thresholds).tolist()
    curve = model_decision_curve(result.data, p.decision_time, thresholds)
    return curve, decision_curve_plot(curve, t=p.decision_time, highlight=p.reference_model)


def baseline_table(clinical_validated: pd.DataFrame) -> tuple[pd.DataFrame, Figure]:
    """Seizure-free vs recurrent patients (Table 3.3) and its figure (Figure 3.3)."""
    return clinical_baseline_table(clinical_validated), clinical_baseline_figure(clinical_validated)


def report_c_by_modality(
    oof_predictions: pd.DataFrame, clinical_validated: pd.DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, str]:
    """Harrell C per model on the patients with both images, without PET, without T1
    (table and Markdown; no patient id), with the comparison's bootstrap settings."""
    p = EvaluationParams(**params)
    table = c_by_modality(
        oof_predictions,
        clinical_validated,
        n_boot=p.n_boot,
        seed=p.seed,
        level=p.level,
        reference_model=p.reference_model,
    )
    return table, to_markdown(table) + "\n"
