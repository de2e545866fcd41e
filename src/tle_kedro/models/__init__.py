"""Survival models (plain torch and scikit-survival, no Kedro): TransEpRelap and its comparators.

``config.ModelConfig`` holds the neural models' sizes and switches and ``factory.build_model``
builds one by name: ``transeprelap`` (attention over ``encoders``' image tokens, the clinical
tokens of ``tokenizers`` and the atlas region ``measures``) or a ``baselines`` network, seen
through the ipsilateral ``side`` view and combined by ``ensemble``. Every network reads a
``batch.SurvivalBatch``. ``classical`` holds the Cox PH and random survival forest baselines and
``survival`` the Breslow baseline, calibration slope and survival curves shared by all.
"""

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
