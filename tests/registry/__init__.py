"""Tests of tle_kedro.registry; builders of a tiny cohort and a tiny fitted TransEpRelap.

``tiny_bundle(root)`` writes a 6-patient BIDS cohort at 8 mm (``tests/cohort_factory``),
preprocesses it onto a 16×12×8 grid, fits a slim TransEpRelap for two epochs and wraps it in
the registered-model class, so the pyfunc's preprocessing runs end to end on real files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.cohort_factory import tiny_params, write_test_cohort
from tests.conftest import one_torch_thread
from tests.training import ONE_NETWORK
from tle_kedro.data.cohort import read_cohort
from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.data.schema import validate_participants
from tle_kedro.features.clinical import ClinicalTokenizer
from tle_kedro.models.factory import ModelConfig
from tle_kedro.registry.pyfunc import TLESurvivalModel, risk_groups
from tle_kedro.training.config import TrainConfig
from tle_kedro.training.fit import FitInputs, fit_neural_model
from tle_kedro.training.fitted import FittedNeuralModel
from tle_kedro.transforms.params import PreprocessingParams
from tle_kedro.transforms.preprocess import preprocess_cohort

N_PATIENTS = 6


def tiny_model_config(grid: tuple[int, int, int]) -> ModelConfig:
    """A slim TransEpRelap for tiny grids (fast on one CPU thread)."""
    return ModelConfig(
        grid_shape=grid,
        widths=(4, 4, 8, 8),
        layers=(1, 1, 1, 1),
        d_model=8,
        n_heads=2,
        dropout=0.0,
        channels_last=False,
        region_tokens=False,
        region_linear=False,
    )


def tiny_train_config(epochs: int = 2) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            **ONE_NETWORK,
            "epochs": epochs,
            "lr": 1e-2,
            "warmup_epochs": 0,
            "device": "cpu",
            "progress": False,
            "inner_val_fraction": 0.0,
            "augment": {"enabled": False},
        }
    )


def fit_tiny(clinical: pd.DataFrame, tensors: ImageTensors, epochs: int = 2) -> FittedNeuralModel:
    """A slim TransEpRelap fitted on every patient of ``clinical``."""
    return fit_neural_model(
        FitInputs(
            "transeprelap",
            tiny_model_config(tensors.grid_shape),
            tiny_train_config(epochs),
            list(clinical["participant_id"]),
            tensors,
            clinical,
            ClinicalTokenizer(),
        )
    )


@dataclass(frozen=True)
class TinyBundle:
    root: Path
    params: PreprocessingParams
    clinical: pd.DataFrame
    tensors: ImageTensors
    model: TLESurvivalModel


def tiny_bundle(root: Path, n: int = N_PATIENTS) -> TinyBundle:
    """Write, preprocess and fit; the model's risk-group cut is its median training risk."""
    write_test_cohort(root, n)
    params = tiny_params()
    cohort = read_cohort(root)
    valid, _ = validate_participants(cohort.participants)
    clinical, _, tensors = preprocess_cohort(valid, cohort.images, params)
    fitted = fit_tiny(clinical, tensors)
    ids = list(clinical["participant_id"])
    training = fitted.predict(fitted.arrays(ids, tensors, clinical))
    groups = risk_groups(fitted, training, None, "transeprelap", source="final_training")
    model = TLESurvivalModel(fitted, params, groups, info={"validation_value": 0.6})
    return TinyBundle(root, params, clinical, tensors, model)


def model_input(root: Path, drop_outcome: bool = True) -> pd.DataFrame:
    """participants.tsv of ``root`` with ``t1_path``/``pet_path`` columns (a pyfunc input)."""
    cohort = read_cohort(root)
    frame = cohort.participants.merge(
        cohort.images[["participant_id", "t1_path", "pet_path"]], on="participant_id"
    )
    if drop_outcome:
        frame = frame.drop(columns=["engel_class", "recurrence", "time_months"])
    return frame


def assert_same_predictions(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a["participant_id"]) == list(b["participant_id"])
    for column in ("risk", "p_recurrence_12", "p_recurrence_24"):
        np.testing.assert_allclose(a[column].to_numpy(float), b[column].to_numpy(float), rtol=1e-6)
    assert list(a["risk_group"]) == list(b["risk_group"])


def bundle_fixture(folder: str) -> Any:
    """A module-scoped ``bundle`` fixture: :func:`tiny_bundle` fitted on one torch thread in a
    temporary ``folder``. Use as ``bundle = bundle_fixture("cohort")`` in a test module."""

    @pytest.fixture(scope="module")
    def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyBundle]:
        with one_torch_thread():
            yield tiny_bundle(tmp_path_factory.mktemp(folder))

    return bundle
