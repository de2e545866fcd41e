"""The inference pipeline on new patients (no outcome columns, a missing PET, a bad row)."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from mlflow.tracking import MlflowClient

from tests.cohort_factory import write_test_cohort
from tests.registry import TinyBundle, bundle_fixture
from tle_kedro.data.exclusions import EXCLUSION_COLUMNS
from tle_kedro.pipelines.inference import create_pipeline
from tle_kedro.pipelines.inference.nodes import InferenceParams
from tle_kedro.registry.pyfunc import PREDICTION_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf" / "base"
OUTCOME = ["engel_class", "recurrence", "time_months"]


bundle = bundle_fixture("training")


@pytest.fixture(scope="module")
def new_patients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 new patients without outcome columns: sub-002 has no PET, sub-003 no operative side."""
    root = tmp_path_factory.mktemp("new_patients")
    write_test_cohort(
        root,
        4,
        seed=7,
        drop_columns=OUTCOME,
        image_defects={1: {"pet": "missing"}},
        table_edits={2: {"operative_side": None}},
    )
    return root


def _catalog(tmp_path: Path, cohort: Path, model: object) -> DataCatalog:
    """The real inference catalog entries, paths under ``tmp_path``, the model in memory."""
    # the default data root, as Kedro resolves it without --params=data_root=...
    text = (CONF / "catalog_inference.yml").read_text()
    config = yaml.safe_load(text.replace("${runtime_params:data_root,data}", "data"))
    config.pop("inference_model")
    config["inference_cohort"]["path"] = str(cohort)
    for entry in config.values():
        if "filepath" in entry:
            entry["filepath"] = str(tmp_path / entry["filepath"])
    catalog = DataCatalog.from_config(config)
    catalog["inference_model"] = MemoryDataset(model, copy_mode="assign")
    params = yaml.safe_load((CONF / "parameters_inference.yml").read_text())["inference"]
    catalog["params:inference"] = MemoryDataset({**params, "n_steps": 4})
    return catalog


def test_predicts_new_patients_with_reports_and_exclusions(
    bundle: TinyBundle, new_patients: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state_before = {k: v.clone() for k, v in bundle.model.fitted.model.state_dict().items()}
    tokenizer_before = bundle.model.fitted.tokenizer.__dict__.copy()
    with caplog.at_level(logging.INFO):
        SequentialRunner().run(create_pipeline(), _catalog(tmp_path, new_patients, bundle.model))

    predictions = pd.read_csv(tmp_path / "data/07_model_output/predictions.csv")
    assert list(predictions.columns) == list(PREDICTION_COLUMNS)
    assert list(predictions["participant_id"]) == ["sub-001", "sub-002", "sub-004"]
    used = dict(zip(predictions["participant_id"], predictions["modalities_used"], strict=True))
    assert used == {
        "sub-001": "T1+PET+clinical",
        "sub-002": "T1+clinical",
        "sub-004": "T1+PET+clinical",
    }
    assert predictions["p_recurrence_12"].between(0, 1).all()
    assert set(predictions["risk_group"]) <= {"low", "high"}

    report = pd.read_csv(
        tmp_path / "data/07_model_output/inference_exclusions.csv", keep_default_na=False
    )
    assert list(report.columns) == EXCLUSION_COLUMNS
    assert {("sub-002", "missing_modality"), ("sub-003", "missing_required_value")} <= set(
        zip(report["participant_id"], report["reason"], strict=True)
    )
    figures = sorted(p.name for p in (tmp_path / "data/08_reporting/inference").glob("*.png"))
    assert figures == ["sub-001.png", "sub-002.png", "sub-004.png"]
    assert "4 read, 3 used, 1 excluded, 1 with a missing modality" in caplog.text

    # Nothing was refitted: weights and tokenizer are untouched.
    for key, value in bundle.model.fitted.model.state_dict().items():
        assert torch.equal(value, state_before[key]), key
    assert bundle.model.fitted.tokenizer.__dict__.keys() == tokenizer_before.keys()


def test_loads_the_champion_from_the_registry_through_the_catalog(
    bundle: TinyBundle, new_patients: Path, tmp_path: Path
) -> None:
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        with mlflow.start_run():
            mlflow.pyfunc.log_model(
                name="tle_recurrence",
                python_model=bundle.model,
                registered_model_name="tle_recurrence",
                pip_requirements=["torch==2.13.0"],
            )
        MlflowClient().set_registered_model_alias("tle_recurrence", "champion", "1")
        entry = yaml.safe_load((CONF / "catalog_inference.yml").read_text())["inference_model"]
        entry["load_args"]["model_uri"] = "models:/tle_recurrence@champion"
        catalog = _catalog(tmp_path, new_patients, None)
        catalog["inference_model"] = DataCatalog.from_config({"m": entry}).get("m")
        catalog["params:inference"] = MemoryDataset({"explain": False})
        SequentialRunner().run(create_pipeline(), catalog)
    finally:
        mlflow.set_tracking_uri(previous)
    predictions = pd.read_csv(tmp_path / "data/07_model_output/predictions.csv")
    direct = bundle.model.predict_prepared(bundle.model.prepare(*_raw(new_patients)))
    np.testing.assert_allclose(predictions["risk"], direct["risk"], rtol=1e-5)
    # explain: false still writes each patient's report (prediction and images only)
    reports = sorted(p.name for p in (tmp_path / "data/08_reporting/inference").glob("*.png"))
    assert reports == sorted(f"{pid}.png" for pid in predictions["participant_id"])


def _raw(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    from tle_kedro.data.cohort import read_cohort

    cohort = read_cohort(root)
    return cohort.participants, cohort.images


def test_model_uri_defaults_to_the_champion_and_can_name_a_version(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "base").mkdir(parents=True)
    (conf / "local").mkdir()
    (conf / "base" / "catalog.yml").write_text((CONF / "catalog_inference.yml").read_text())

    def uri(runtime_params: dict) -> str:
        loader = OmegaConfigLoader(str(conf), runtime_params=runtime_params)
        return loader["catalog"]["inference_model"]["load_args"]["model_uri"]

    assert uri({}) == "models:/tle_recurrence@champion"
    assert uri({"model_uri": "models:/tle_recurrence/3"}) == "models:/tle_recurrence/3"


def test_parameters_file_is_valid() -> None:
    params = yaml.safe_load((CONF / "parameters_inference.yml").read_text())["inference"]
    assert InferenceParams(**params) == InferenceParams()
    with pytest.raises(ValueError, match="n_step"):
        InferenceParams(n_step=3)
