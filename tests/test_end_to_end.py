"""Real ``kedro run``s on a tiny demo cohort (``--env=smoke``), checked on disk and in MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

N_PATIENTS = 16  # conf/smoke/parameters.yml


def _configured_models(project: Path) -> list[str]:
    """``modeling.models`` of the smoke environment (conf/base's list unless smoke sets one)."""
    from kedro.config import OmegaConfigLoader

    from tle_kedro.settings import CONFIG_LOADER_ARGS

    args = {**CONFIG_LOADER_ARGS, "default_run_env": "smoke"}
    params = OmegaConfigLoader(str(project / "conf"), env="smoke", **args)["parameters"]
    return list(params["modeling"]["models"])


def test_data_layers_are_written_and_counts_add_up(smoke_run: Path) -> None:
    data = smoke_run / "data"
    participants = pd.read_csv(data / "01_raw/cohort/participants.tsv", sep="\t")
    assert len(participants) == N_PATIENTS

    validated = pd.read_parquet(data / "02_intermediate/clinical_validated.parquet")
    exclusions = pd.read_csv(data / "02_intermediate/exclusions.csv")
    assert list(exclusions.columns) == ["participant_id", "reason", "detail"]
    excluded = set(exclusions["participant_id"].dropna()) - set(validated["participant_id"])
    assert len(validated) + len(excluded) == N_PATIENTS  # read = used + excluded

    meta = json.loads((data / "03_primary/image_tensors/meta.json").read_text())
    volumes = np.load(data / "03_primary/image_tensors/volumes.npy")
    assert volumes.shape[:2] == (len(validated), 2)
    assert list(volumes.shape[2:]) == list(meta["grid_shape"])
    assert np.isfinite(volumes).all()

    features = pd.read_parquet(data / "04_feature/imaging_features.parquet")
    assert set(features["participant_id"]) == set(validated["participant_id"])
    folds = pd.read_parquet(data / "05_model_input/cv_folds.parquet")
    assert set(folds["participant_id"]) == set(validated["participant_id"])
    assert not folds.duplicated(["participant_id", "repeat"]).any()


def test_every_model_has_out_of_fold_predictions_for_every_patient(smoke_run: Path) -> None:
    oof = pd.read_parquet(smoke_run / "data/07_model_output/oof_predictions.parquet")
    assert list(oof.columns[:7]) == [
        "participant_id",
        "model",
        "repeat",
        "fold",
        "risk",
        "surv_12",
        "surv_24",
    ]
    counts = oof.groupby("model")["participant_id"].nunique()
    assert sorted(counts.index) == sorted(_configured_models(smoke_run))
    assert (counts == oof["participant_id"].nunique()).all()
    assert oof[["surv_12", "surv_24"]].apply(lambda s: s.between(0, 1)).all().all()
    assert (oof["surv_24"] <= oof["surv_12"] + 1e-12).all()


def test_reports_are_written(smoke_run: Path) -> None:
    reporting = smoke_run / "data/08_reporting"
    table = pd.read_csv(reporting / "comparison_table.csv")
    assert table["model"].iloc[0] == "transeprelap"
    assert "oracle_c" in table.columns
    for png in ("c_index_forest.png", "km_risk_groups.png", "calibration_12m.png"):
        assert (reporting / png).stat().st_size > 10_000


def test_tracking_store_holds_the_run_its_folds_and_metric_history(smoke_run: Path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{smoke_run / 'mlflow.db'}")
    try:
        client = MlflowClient()
        experiment = client.get_experiment_by_name("tle_kedro")
        runs = client.search_runs([experiment.experiment_id], max_results=500)
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        # demo_cohort + default first; later tests of the shared run may add their own.
        main = min(
            (r for r in parents if "eval.transeprelap.harrell_c" in r.data.metrics),
            key=lambda r: r.info.start_time,
        )
        assert main.data.params["cv.n_splits"] == "3"
        assert 0 < main.data.metrics["eval.transeprelap.harrell_c"] < 1
        assert main.data.metrics["cv.transeprelap.fit_seconds"] > 0
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == main.info.run_id]
        fold_runs = {r.info.run_name for r in children if r.data.tags.get("run_kind") == "fold"}
        assert {f"transeprelap-r0-f{f}" for f in range(3)} <= fold_runs
        assert {f"cox_clinical-r0-f{f}" for f in range(3)} <= fold_runs
        fold_run = next(r for r in children if r.info.run_name == "transeprelap-r0-f0")
        history = client.get_metric_history(fold_run.info.run_id, "val_c")
        assert len(history) >= 1
        assert "test_harrell_c" in fold_run.data.metrics
        artifacts = {a.path for a in client.list_artifacts(main.info.run_id, "reporting")}
        assert "reporting/comparison_table.csv" in artifacts
        # One model run per configured model (what MLflow's Compare view lines up): the
        # parent's eval.<model>.* metrics without the prefix, and the model's configuration.
        model_runs = [r for r in children if r.data.tags.get("run_kind") == "model"]
        models = _configured_models(smoke_run)
        assert sorted(r.info.run_name for r in model_runs) == sorted(models)
        for run in model_runs:
            name = run.info.run_name
            assert run.data.tags["model"] == name
            assert run.data.metrics["harrell_c"] == main.data.metrics[f"eval.{name}.harrell_c"]
            parent_keys = {k.removeprefix(f"eval.{name}.") for k in main.data.metrics
                           if k.startswith(f"eval.{name}.")}  # fmt: skip
            assert set(run.data.metrics) == parent_keys
            assert run.data.params["family"]
        transeprelap = next(r for r in model_runs if r.info.run_name == "transeprelap")
        assert transeprelap.data.params["kind"] == "transeprelap"
        assert transeprelap.data.params["train.epochs"] == main.data.params["modeling.train.epochs"]
    finally:
        mlflow.set_tracking_uri(None)


def test_champion_predicts_for_a_fresh_cohort_without_outcomes(smoke_run: Path) -> None:
    """The user's last step: new patients (another seed, never trained on), no outcome
    columns, one PET removed → predictions from models:/tle_recurrence@champion."""
    from tests.conftest import run_kedro_command, write_smoke_cohort

    new = write_smoke_cohort(smoke_run / "new_patients", n_patients=4, seed=99)
    table = pd.read_csv(new / "participants.tsv", sep="\t")
    table.drop(columns=["engel_class", "recurrence", "time_months"]).to_csv(
        new / "participants.tsv", sep="\t", index=False
    )
    (new / "derivatives").rename(smoke_run / "new_patients_truth")  # a real cohort has none
    no_pet = table["participant_id"].iloc[0]
    (new / no_pet / "pet" / f"{no_pet}_trc-FDG_pet.nii.gz").unlink()

    run_kedro_command(smoke_run, "run", "--env=smoke", "--pipelines=inference",
                      f"--params=cohort_dir={new}")  # fmt: skip

    predictions = pd.read_csv(smoke_run / "data/07_model_output/predictions.csv")
    assert list(predictions.columns[:6]) == [
        "participant_id", "risk", "risk_group", "p_recurrence_12", "p_recurrence_24",
        "modalities_used",
    ]  # fmt: skip
    assert sorted(predictions["participant_id"]) == sorted(table["participant_id"])
    assert set(predictions["risk_group"]) <= {"low", "high"}
    assert (predictions["p_recurrence_24"] >= predictions["p_recurrence_12"]).all()
    used = predictions.set_index("participant_id")["modalities_used"]
    assert "PET" not in used[no_pet] and "T1" in used[no_pet]
    reports = smoke_run / "data/08_reporting/inference"
    assert {p.stem for p in reports.glob("*.png")} == set(table["participant_id"])
