"""Training, classical and tuning parameters: defaults and clear errors."""

from __future__ import annotations

import pytest

from tle_kedro.training.config import (
    ClassicalConfig,
    ParamRange,
    TrainConfig,
    TuningConfig,
    parse_section,
)


def test_defaults_are_the_cpu_configuration() -> None:
    cfg = TrainConfig()
    assert cfg.device == "auto" and cfg.batch_size == 16 and cfg.augment.backend == "torch"
    assert ClassicalConfig().rsf_n_jobs <= 2
    assert TuningConfig().storage is None  # in memory; a Kedro run: the catalog's optuna_storage


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"epochs": 0}, "modeling.epochs"),
        ({"lr": -1}, "modeling.lr"),
        ({"device": "tpu"}, "modeling.device"),
        ({"batch_size": 1}, "modeling.batch_size"),
        ({"learning_rate": 0.1}, "modeling.learning_rate"),
        ({"epochs": 5, "warmup_epochs": 5}, "warmup_epochs"),
    ],
)
def test_bad_training_parameters_name_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_section(TrainConfig, raw, "modeling")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"low": 1.0}, "both low and high"),
        ({"low": 2.0, "high": 1.0}, "must not exceed"),
        ({"low": 0.0, "high": 1.0, "log": True}, "low > 0"),
        ({"choices": []}, "must not be empty"),
        ({"choices": [1], "low": 0.0}, "not both"),
    ],
)
def test_bad_search_ranges_are_explained(raw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ParamRange.model_validate(raw)


def test_search_space_paths_must_target_train_or_model() -> None:
    with pytest.raises(ValueError, match="'train.' or 'model.'"):
        TuningConfig(search_space={"optimizer.lr": ParamRange(low=0.1, high=1.0)})
