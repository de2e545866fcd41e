"""The final refit: one comparison model fitted on every patient (the registered model).

Its hyperparameters, when tuned, come from a study on all patients (``<study>-final``),
never from an outer-fold study of the cross-validation (``training.cv``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tle_kedro.training.config import TuningConfig
from tle_kedro.training.cv_data import CVData, check_specs, neural_fit_inputs
from tle_kedro.training.fit import fit_neural_model
from tle_kedro.training.fitted import FittedNeuralModel
from tle_kedro.training.specs import ModelSpec
from tle_kedro.training.tuning import final_study_name, tune_hyperparameters


def fit_final_model(
    spec: ModelSpec, data: CVData, tuning: TuningConfig | None = None
) -> tuple[FittedNeuralModel, dict[str, Any]]:
    """Refit a neural ``spec`` on every patient of ``data.clinical``.

    When ``spec.tune_with`` is set and tuning is enabled, its hyperparameters come from a
    study on all patients (``<study>-final``), never from an outer-fold study.

    Returns:
        (fitted model, tuned parameters or ``{}``).
    """
    check_specs([replace(spec, tune_with=None)], data)
    inputs = neural_fit_inputs(spec, data, sorted(data.clinical["participant_id"]))
    params: dict[str, Any] = {}
    if spec.tune_with is not None and tuning is not None and tuning.enabled:
        study_name = final_study_name(tuning.study_name)
        result = tune_hyperparameters(inputs, tuning, study_name=study_name)
        inputs = inputs.with_configs(result.model_config, result.train_config)
        params = result.params
    return fit_neural_model(inputs, desc=f"{spec.name} final"), params
