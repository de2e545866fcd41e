"""Real fold models of the tiny cohort: the project's cross-validation with ``keep_models``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tests.conftest import one_torch_thread
from tests.registry import TinyBundle
from tests.training import ONE_NETWORK
from tle_kedro.features.clinical import ClinicalTokenizer, make_clinical_recipe
from tle_kedro.features.imaging import imaging_features
from tle_kedro.training.cv import CVData, CVResult, run_cross_validation
from tle_kedro.training.specs import build_specs, parse_modeling_params

# Slim TransEpRelap, two epochs; small forest; one ridge penalty (no inner CV on 3 patients).
TINY_MODELING: dict[str, Any] = {
    "models": ["transeprelap"],
    "model": {
        "widths": [4, 4, 8, 8],
        "layers": [1, 1, 1, 1],
        "d_model": 8,
        "n_heads": 2,
        "dropout": 0.0,
        "channels_last": False,
    },
    "train": {
        **ONE_NETWORK,
        "lr": 1e-2,
        "epochs": 2,
        "warmup_epochs": 0,
        "device": "cpu",
        "progress": False,
        "inner_val_fraction": 0.0,
        "augment": {"enabled": False},
    },
    "classical": {"cox_penalizer": 1.0, "rsf_n_estimators": 8, "rsf_min_samples_leaf": 1},
    "tuning": {"enabled": False},
}


def two_folds(clinical: pd.DataFrame) -> pd.DataFrame:
    """One repeat, two outer folds (alternate patients)."""
    ids = list(clinical["participant_id"])
    return pd.DataFrame({"participant_id": ids, "repeat": 0, "fold": np.arange(len(ids)) % 2})


def cross_validated(bundle: TinyBundle, models: list[str], atlas: dict[str, Any]) -> CVResult:
    """``models`` cross-validated on two folds of ``bundle``, fold models kept."""
    tensors = bundle.tensors
    _, model_cfg, train_cfg, classical, _ = parse_modeling_params(
        TINY_MODELING, tensors.grid_shape, tensors.affine, atlas
    )
    data = CVData(
        clinical=bundle.clinical,
        folds=two_folds(bundle.clinical),
        image_tensors=tensors,
        imaging_features=imaging_features(tensors, bundle.clinical, model_cfg.atlas),
        recipe=make_clinical_recipe(),
        tokenizer=ClinicalTokenizer(),
    )
    with one_torch_thread():
        return run_cross_validation(
            build_specs(models, model_cfg, train_cfg), data, classical=classical, keep_models=True
        )


def fold_models(result: CVResult, model: str) -> dict[str, Any]:
    """``<model>.cv_fold_models`` as the modeling node saves it."""
    return {f"{m}-r{r}-f{f}": v for (m, r, f), v in result.models.items() if m == model}
