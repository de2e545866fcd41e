"""One real ``kedro run`` of demo_cohort → data_processing → feature_engineering, tiny."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

N_PATIENTS = 12


def _run_chain(kedro_project: Path, run_kedro) -> Path:
    run_kedro(
        kedro_project,
        "run",
        "--pipeline=demo_cohort",
        f"--params=demo_cohort.n_patients={N_PATIENTS}",
    )
    run_kedro(
        kedro_project,
        "run",
        "--pipelines=data_processing,feature_engineering",
        "--params=cv.n_splits=3",
    )
    return kedro_project


def test_demo_to_features_chain_produces_every_layer(kedro_project: Path, run_kedro) -> None:
    root = _run_chain(kedro_project, run_kedro)
    data = root / "data"

    participants = pd.read_csv(data / "01_raw/cohort/participants.tsv", sep="\t")
    assert len(participants) == N_PATIENTS

    validated = pd.read_parquet(data / "02_intermediate/clinical_validated.parquet")
    exclusions = pd.read_csv(data / "02_intermediate/exclusions.csv")
    assert list(exclusions.columns) == ["participant_id", "reason", "detail"]
    excluded_patients = set(exclusions["participant_id"].dropna()) - set(
        validated["participant_id"]
    )
    # read = used + excluded
    assert len(validated) + len(excluded_patients) == N_PATIENTS

    meta = json.loads((data / "03_primary/image_tensors/meta.json").read_text())
    volumes = np.load(data / "03_primary/image_tensors/volumes.npy")
    assert volumes.shape[0] == len(validated)
    assert volumes.shape[1] == 2
    assert list(volumes.shape[2:]) == list(meta["grid_shape"])
    assert np.isfinite(volumes).all()

    features = pd.read_parquet(data / "04_feature/imaging_features.parquet")
    assert set(features["participant_id"]) == set(validated["participant_id"])

    folds = pd.read_parquet(data / "05_model_input/cv_folds.parquet")
    assert set(folds["participant_id"]) == set(validated["participant_id"])
    assert folds.groupby("repeat")["participant_id"].apply(lambda s: s.is_unique).all()

    # One MLflow run per `kedro run`, holding the run's parameters.
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["tle_kedro"])
    assert len(runs) == 2
    assert "params.cv.n_splits" in runs.columns
    assert (runs["params.cv.n_splits"].dropna() == "3").any()
