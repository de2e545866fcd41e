"""Class defaults equal conf/base: the YAML is the one source of every run setting.

A key that ``conf/base/parameters*.yml`` sets must not have another default in the typed
configuration that validates it (the two drifted 18 times before this test). A class may
keep a default for a key the YAML leaves out, or have none.
"""

from __future__ import annotations

from typing import Any

import pytest
from kedro.config import OmegaConfigLoader
from pydantic import BaseModel

from tests.conftest import PROJECT_ROOT
from tle_kedro.confirmation.config import ConfirmationConfig
from tle_kedro.data.atlas import DEFAULT_ATLAS, AtlasConfig
from tle_kedro.data.dicom import DicomToBidsParams
from tle_kedro.data.discovery import CohortReading
from tle_kedro.features.clinical import ClinicalFeatureConfig
from tle_kedro.features.folds import CVConfig
from tle_kedro.models.config import ModelConfig
from tle_kedro.pipelines.evaluation.nodes import EvaluationParams
from tle_kedro.pipelines.final_model.nodes import RegistryParams
from tle_kedro.pipelines.inference.nodes import InferenceParams
from tle_kedro.settings import CONFIG_LOADER_ARGS
from tle_kedro.training.config import ClassicalConfig, TrainConfig, TuningConfig
from tle_kedro.training.specs import ModelingParams
from tle_kedro.transforms.params import PreprocessingParams

_SUBSECTIONS = ("model", "train", "classical", "tuning")
SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("modeling.model", ModelConfig),
    ("modeling.train", TrainConfig),
    ("modeling.classical", ClassicalConfig),
    ("modeling.tuning", TuningConfig),
    ("modeling", ModelingParams),
    ("preprocessing", PreprocessingParams),
    ("evaluation", EvaluationParams),
    ("inference", InferenceParams),
    ("registry", RegistryParams),
    ("cv", CVConfig),
    ("clinical_features", ClinicalFeatureConfig),
    ("dicom_to_bids", DicomToBidsParams),
    ("cohort_reading", CohortReading),
    ("confirmation", ConfirmationConfig),
]


def _base_parameters() -> dict[str, Any]:
    args = {**CONFIG_LOADER_ARGS, "default_run_env": "base"}
    return OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env="base", **args)["parameters"]


def _section(path: str) -> dict[str, Any]:
    raw: Any = _base_parameters()
    for key in path.split("."):
        raw = raw[key]
    if path == "modeling":  # its sub-sections are checked against their own classes
        raw = {k: v for k, v in raw.items() if k not in _SUBSECTIONS}
    return dict(raw)


def drift(cls: type[BaseModel], raw: dict[str, Any], where: str) -> list[str]:
    """Keys of ``raw`` whose validated value differs from ``cls``'s default (nested too)."""
    validated = cls.model_validate(raw)
    out = []
    for key, value in raw.items():
        field = cls.model_fields[key]
        if field.is_required():
            continue
        got = getattr(validated, key)
        if isinstance(got, BaseModel) and isinstance(value, dict):
            out += drift(type(got), value, f"{where}.{key}")
            continue
        default = field.get_default(call_default_factory=True)
        if got != default:
            out.append(f"{where}.{key}: conf/base {got!r}, class default {default!r}")
    return out


@pytest.mark.parametrize(("path", "cls"), SECTIONS, ids=[p for p, _ in SECTIONS])
def test_class_defaults_equal_conf_base(path: str, cls: type[BaseModel]) -> None:
    assert drift(cls, _section(path), path) == []


def test_the_default_atlas_is_conf_base_atlas() -> None:
    # AtlasConfig has no default regions; the atlas a configuration gets is DEFAULT_ATLAS
    assert AtlasConfig.model_validate(_section("atlas")) == DEFAULT_ATLAS
    assert ModelConfig().atlas == DEFAULT_ATLAS


def test_the_model_grid_default_is_the_preprocessing_grid() -> None:
    assert ModelConfig().grid_shape == tuple(_section("preprocessing")["grid_shape"])


def test_a_drifted_default_is_reported() -> None:
    assert drift(TrainConfig, {"lr": 0.5, "epochs": TrainConfig().epochs}, "train") == [
        f"train.lr: conf/base 0.5, class default {TrainConfig().lr!r}"
    ]
