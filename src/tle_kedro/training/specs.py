"""The comparison's models by name, built from ``parameters_modeling.yml``.

One name, one :class:`ModelSpec`; ablations are TransEpRelap with a
modality switched off by configuration and reuse TransEpRelap's per-fold Optuna study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tle_kedro.config_loader import deep_merge
from tle_kedro.data.atlas import AtlasConfig
from tle_kedro.models.config import ModelConfig
from tle_kedro.training.config import ClassicalConfig, TrainConfig, TuningConfig, parse_section
from tle_kedro.training.parallel import ExecutorConfig

Family = Literal["cox_clinical", "cox_region_measures", "rsf_region_measures", "neural"]


@dataclass(frozen=True)
class ModelSpec:
    """One model of the comparison.

    Attributes:
        name: output name (``cox_clinical``, ``transeprelap_no_pet``, ...).
        family: a classical baseline, or ``neural`` (built by ``models.factory.build_model``).
        kind, model_config, train_config: for neural models (ablations differ by config).
        tune_with: name of the spec whose per-fold Optuna study sets this model's
            hyperparameters (itself for TransEpRelap; its ablations reuse that fold's study),
            or None for no tuning.
    """

    name: str
    family: Family
    kind: str | None = None
    model_config: Any = None
    train_config: TrainConfig | None = None
    tune_with: str | None = None


ModelName = Literal[
    "cox_clinical",
    "cox_region_measures",
    "rsf_region_measures",
    "resnet_image",
    "late_fusion",
    "transeprelap",
    "transeprelap_no_pet",
    "transeprelap_no_mri",
    "transeprelap_no_clinical",
    "transeprelap_no_region_tokens",
    "transeprelap_clinical_after",
    "transeprelap_no_flip",
    "transeprelap_discrete",
]
ALL_MODELS: tuple[str, ...] = ModelName.__args__  # type: ignore[attr-defined]

_CLASSICAL = {"cox_clinical", "cox_region_measures", "rsf_region_measures"}
_ABLATIONS: dict[str, dict[str, bool | str]] = {
    "transeprelap_no_pet": {"use_pet": False},
    "transeprelap_no_mri": {"use_t1": False},
    "transeprelap_no_clinical": {"use_clinical": False},
    # images and clinical data through attention only: no region measures at all
    "transeprelap_no_region_tokens": {"region_tokens": False, "region_linear": False},
    # clinical data joined after the Transformer instead of inside its attention (TransRP)
    "transeprelap_clinical_after": {"clinical_fusion": "after"},
    # a discrete-time (logistic-hazard) survival head instead of the Cox head
    "transeprelap_discrete": {"head": "discrete"},
}
# Variants that differ in how TransEpRelap is trained (``train:`` switches, deep-merged).
_TRAIN_VARIANTS: dict[str, dict[str, Any]] = {
    # without the side-aware left-right flip augmentation (on by default since round 4)
    "transeprelap_no_flip": {"augment": {"flip_lr": False}},
}
# The modality ablations and the configuration variants run on request (conf/ablations):
# the default run fits the others.
MODALITY_ABLATIONS = ("transeprelap_no_pet", "transeprelap_no_mri", "transeprelap_no_clinical")
ON_REQUEST = (
    *MODALITY_ABLATIONS,
    "transeprelap_clinical_after",
    "transeprelap_no_flip",
    "transeprelap_discrete",
)
DEFAULT_MODELS: tuple[str, ...] = tuple(m for m in ALL_MODELS if m not in ON_REQUEST)


class ModelingParams(BaseModel):
    """``modeling:`` in parameters_modeling.yml (sections validated by their own models)."""

    model_config = ConfigDict(extra="forbid")
    models: list[ModelName] = Field(default_factory=lambda: list(DEFAULT_MODELS), min_length=1)  # type: ignore[arg-type]
    model: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    classical: dict[str, Any] = Field(default_factory=dict)
    tuning: dict[str, Any] = Field(default_factory=dict)
    keep_fold_models: bool = True
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)

    @field_validator("models")
    @classmethod
    def _unique(cls, models: list[str]) -> list[str]:
        if len(set(models)) != len(models):
            raise ValueError(f"modeling.models lists a model twice: {models}")
        return models


def parse_modeling_params(
    raw: dict[str, Any],
    grid_shape: tuple[int, int, int],
    grid_affine: np.ndarray | None = None,
    atlas: dict[str, Any] | None = None,
) -> tuple[ModelingParams, ModelConfig, TrainConfig, ClassicalConfig, TuningConfig]:
    """Validate every section; the model's grid (shape, affine) is the image tensors' grid and
    its regions the shared ``params:atlas``."""
    params = ModelingParams(**raw)
    grid: dict[str, Any] = {"grid_shape": grid_shape}
    if grid_affine is not None:
        grid["grid_affine"] = tuple(tuple(float(v) for v in row) for row in grid_affine)
    if atlas is not None:
        grid["atlas"] = parse_section(AtlasConfig, atlas, "atlas")
    model = parse_section(ModelConfig, {**params.model, **grid}, "modeling.model")
    train = parse_section(TrainConfig, params.train, "modeling.train")
    classical = parse_section(ClassicalConfig, params.classical, "modeling.classical")
    tuning = parse_section(TuningConfig, params.tuning, "modeling.tuning")
    return params, model, train, classical, tuning


def _identity(name: str) -> tuple[Family, str | None, dict[str, bool | str]]:
    """Family, kind (neural models) and the ablation switches of a comparison model."""
    if name in _CLASSICAL:
        return name, None, {}  # type: ignore[return-value]
    if name in _ABLATIONS:
        return "neural", "transeprelap", _ABLATIONS[name]
    if name in _TRAIN_VARIANTS:
        return "neural", "transeprelap", {}
    return "neural", name, {}


def _is_variant(name: str) -> bool:
    """An ablation or a training variant of TransEpRelap (it reuses TransEpRelap's study)."""
    return name in _ABLATIONS or name in _TRAIN_VARIANTS


def ordered_models(names: Sequence[str]) -> list[str]:
    """``names`` in the comparison's fixed order (TransEpRelap before its ablations)."""
    return [n for n in ALL_MODELS if n in names]


def model_family(name: str) -> Family:
    """``cox_clinical``, ``cox_region_measures``, ``rsf_region_measures`` or ``neural``."""
    return _identity(name)[0]


def tuning_leads(names: Sequence[str]) -> dict[str, str | None]:
    """Whose per-fold Optuna study sets each model's hyperparameters (``ModelSpec.tune_with``).

    TransEpRelap tunes itself; its ablations reuse its study when it is among ``names``;
    every other model is not tuned (None).
    """
    lead = "transeprelap" if "transeprelap" in names else None
    out: dict[str, str | None] = {}
    for name in ordered_models(names):
        family, _, _ = _identity(name)
        if family != "neural":
            out[name] = None
        elif _is_variant(name):
            out[name] = lead
        else:
            out[name] = name if name == "transeprelap" else None
    return out


def build_specs(names: list[str], model: ModelConfig, train: TrainConfig) -> list[ModelSpec]:
    """Model specs in a fixed order (TransEpRelap before its ablations, so its study exists)."""
    specs: list[ModelSpec] = []
    for name, tune_with in tuning_leads(names).items():
        family, kind, switches = _identity(name)
        if family != "neural":
            specs.append(ModelSpec(name=name, family=family))
            continue
        config = model
        if switches:
            config = model.model_copy(update=switches)
            ModelConfig.model_validate(config.model_dump())  # re-check the switches
        fit = train
        if name in _TRAIN_VARIANTS:
            fit = TrainConfig.model_validate(deep_merge(train.model_dump(), _TRAIN_VARIANTS[name]))
        specs.append(ModelSpec(name, "neural", kind, config, fit, tune_with=tune_with))
    return specs


def model_params(name: str, resolved: Mapping[str, Any]) -> dict[str, Any]:
    """What one comparison model is and how it is fitted, for its MLflow run (nested dict).

    ``family`` and ``kind`` (neural models), then the configuration the fits used, taken from
    ``resolved`` (the ``modeling_config`` the modeling node wrote): neural models get
    ``model`` (an ablation with its switches applied) and ``train``; a classical baseline
    gets the ``classical`` settings of its family (``cox_*`` or ``rsf_*``, and ``seed``).
    Fold-tuned hyperparameters are on the fold runs, not here. A name that is no comparison
    model gets nothing.
    """
    if name not in ALL_MODELS:
        return {}
    family, kind, switches = _identity(name)
    out: dict[str, Any] = {"family": family}
    if family == "neural":
        out["kind"] = kind
        if "model" in resolved:
            out["model"] = {**resolved["model"], **switches}
        if "train" in resolved:
            out["train"] = deep_merge(resolved["train"], _TRAIN_VARIANTS.get(name, {}))
    elif "classical" in resolved:
        prefix = family.split("_", 1)[0] + "_"
        out["classical"] = {
            k: v for k, v in resolved["classical"].items() if k.startswith(prefix) or k == "seed"
        }
    return out
