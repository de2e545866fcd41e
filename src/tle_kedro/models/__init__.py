"""Neural survival models (plain torch): TransEpRelap, its baselines, Breslow survival."""

from tle_kedro.models.batch import SurvivalBatch, collate, from_arrays
from tle_kedro.models.config import ModelConfig
from tle_kedro.models.factory import MODEL_KINDS, ModelKind, build_model
from tle_kedro.models.survival import BaselineHazard, breslow_baseline, survival_at

__all__ = [
    "MODEL_KINDS",
    "BaselineHazard",
    "ModelConfig",
    "ModelKind",
    "SurvivalBatch",
    "breslow_baseline",
    "build_model",
    "collate",
    "from_arrays",
    "survival_at",
]
