"""The final_model pipeline: refit → pyfunc logged and registered by the catalog → promotion."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from mlflow.tracking import MlflowClient

from tests.registry import TinyBundle, assert_same_predictions, bundle_fixture, model_input
from tle_kedro.features.clinical import ClinicalTokenizer, make_clinical_recipe
from tle_kedro.pipeline_registry import DEFAULT_PIPELINES
from tle_kedro.pipelines.final_model import create_pipeline
from tle_kedro.pipelines.final_model.nodes import RegistryParams
from tle_kedro.registry.promotion import PREDICTIONS_ARTIFACT, validation_metric
from tle_kedro.registry.pyfunc import as_survival_model
from tle_kedro.training.classical import FittedClassicalPipeline

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf" / "base"
MODELING = {
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
        "epochs": 2,
        "warmup_epochs": 0,
        "device": "cpu",
        "progress": False,
        "inner_val_fraction": 0.0,
        "augment": {"enabled": False},
    },
    "tuning": {"enabled": False},
}


def _yaml(name: str) -> dict:
    return yaml.safe_load((CONF / name).read_text())


bundle = bundle_fixture("cohort")


def _oof(clinical: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(clinical)
    return pd.DataFrame(
        {
            "participant_id": clinical["participant_id"],
            "model": "transeprelap",
            "repeat": 0,
            "fold": np.arange(n) % 2,
            "risk": rng.normal(size=n),
            "surv_12": rng.uniform(0.4, 0.9, n),
            "surv_24": rng.uniform(0.2, 0.4, n),
        }
    )


def _c(oof: pd.DataFrame, clinical: pd.DataFrame) -> float:
    return validation_metric(oof, clinical)


def _run(bundle: TinyBundle, oof: pd.DataFrame, data_root: Path) -> dict:
    """One pipeline run inside an MLflow run, with the real ``registered_model`` entry and
    the real ``validation_predictions`` artifact (its file under ``data_root``)."""
    pipeline = create_pipeline()
    # the real MLflow catalog entries
    tracked = {"registered_model", "promotion_metrics", "validation_predictions"}
    entries = _yaml("catalog_registry.yml")
    config = {name: entries[name] for name in tracked}
    path = config["validation_predictions"]["dataset"]["filepath"]
    config["validation_predictions"]["dataset"]["filepath"] = path.replace(
        "${runtime_params:data_root,data}", str(data_root)
    )
    catalog = DataCatalog.from_config(config)
    inputs = {
        "clinical_validated": bundle.clinical,
        "image_tensors": bundle.tensors,
        "clinical_features": make_clinical_recipe(),
        "clinical_tokenizer": ClinicalTokenizer(),
        "oof_predictions": oof,
        "optuna_storage": None,
        "params:modeling": MODELING,
        "params:preprocessing": bundle.params.model_dump(mode="json"),
        "params:registry": _yaml("parameters_registry.yml")["registry"],
        "params:atlas": _yaml("parameters.yml")["atlas"],
    }
    for name, value in inputs.items():
        catalog[name] = MemoryDataset(value, copy_mode="assign")
    for name in pipeline.all_outputs() - tracked:
        catalog[name] = MemoryDataset(copy_mode="assign")
    with mlflow.start_run() as run:
        SequentialRunner().run(pipeline, catalog)
    # final_model_card was consumed (and released) by the promotion node; the card also
    # travels inside the registered model (``info``).
    return {"promotion_decision": catalog.load("promotion_decision"), "run_id": run.info.run_id}


def test_run_registers_the_bundled_model_and_promotes_by_metric(
    bundle: TinyBundle, store: MlflowClient, tmp_path: Path
) -> None:
    # The same predictions with the risk negated rank the other way round (C → 1 − C).
    oof_a = _oof(bundle.clinical, seed=0)
    oof_b = oof_a.assign(risk=-oof_a["risk"])
    oof, worse = sorted([oof_a, oof_b], key=lambda o: _c(o, bundle.clinical), reverse=True)
    assert _c(worse, bundle.clinical) < _c(oof, bundle.clinical)
    first = _run(bundle, oof, tmp_path)
    decision = first["promotion_decision"]
    assert (decision["alias"], decision["version"]) == ("champion", "1")
    assert decision["new_value"] == pytest.approx(_c(oof, bundle.clinical))
    run = store.get_run(first["run_id"])
    assert run.data.metrics["registry.new_harrell_c"] == pytest.approx(decision["new_value"])
    assert run.data.tags["registry.alias"] == "champion"

    frame = model_input(bundle.root)
    champion = mlflow.pyfunc.load_model("models:/tle_recurrence@champion")
    card = as_survival_model(champion).info
    assert card["validation_value"] == pytest.approx(decision["new_value"])
    assert card["risk_threshold_source"] == "oof_probability"
    assert card["n_patients"] == len(bundle.clinical)
    predictions = champion.predict(frame)
    assert predictions["risk"].notna().all()

    # Same cohort and folds, a worse out-of-fold ranking → paired comparison (with the
    # predictions the first run logged) → challenger; the champion stays.
    decision = _run(bundle, worse, tmp_path)["promotion_decision"]
    assert (decision["alias"], decision["version"]) == ("challenger", "2")
    assert decision["comparison"] == "paired"
    assert decision["delta"] == pytest.approx(_c(worse, bundle.clinical) - _c(oof, bundle.clinical))
    assert decision["champion_value"] == pytest.approx(_c(oof, bundle.clinical))
    assert str(store.get_model_version_by_alias("tle_recurrence", "champion").version) == "1"
    again = mlflow.pyfunc.load_model("models:/tle_recurrence@champion").predict(frame)
    assert_same_predictions(again, predictions)


def test_auto_registers_a_forest_that_wins_out_of_fold(
    bundle: TinyBundle, store: MlflowClient, tmp_path: Path
) -> None:
    base = _oof(bundle.clinical, seed=0)
    oof_t = base if _c(base, bundle.clinical) < 0.5 else base.assign(risk=-base["risk"])
    forest = oof_t.assign(model="rsf_region_measures", risk=-oof_t["risk"])  # C -> 1 - C
    oof = pd.concat([oof_t, forest], ignore_index=True)
    decision = _run(bundle, oof, tmp_path)["promotion_decision"]
    assert decision["alias"] == "champion"
    assert decision["new_value"] == pytest.approx(
        validation_metric(oof, bundle.clinical, "rsf_region_measures")
    )
    champion = mlflow.pyfunc.load_model("models:/tle_recurrence@champion")
    inner = as_survival_model(champion)
    assert isinstance(inner.fitted, FittedClassicalPipeline)
    assert inner.info["model"] == "rsf_region_measures"
    assert inner.info["model_choice"] == "auto"
    assert inner.info["risk_threshold_scale"] == "p12"
    assert set(inner.info["candidates"]) == {"transeprelap", "rsf_region_measures"}
    predictions = champion.predict(model_input(bundle.root))
    assert predictions["risk"].notna().all()
    assert set(predictions["modalities_used"]) == {"T1+PET+clinical"}
    # the registry's version list says which comparison model and which champion mode
    tags = store.get_model_version("tle_recurrence", decision["version"]).tags
    assert tags["model"] == "rsf_region_measures" and tags["champion"] == "refit"
    assert tags["validation_metric"] == "harrell_c"


def test_default_run_ends_with_the_final_model() -> None:
    assert DEFAULT_PIPELINES[-1] == "final_model"
    needed = create_pipeline().inputs() - {
        p for p in create_pipeline().inputs() if p.startswith("params:")
    }
    persisted = set()
    for path in CONF.glob("catalog*.yml"):
        persisted |= set(yaml.safe_load(path.read_text()))
    assert needed <= persisted  # `kedro run --pipeline=final_model` works alone


def test_names_agree_across_parameters_and_catalogs() -> None:
    name = RegistryParams(**_yaml("parameters_registry.yml")["registry"]).model_name
    save_args = _yaml("catalog_registry.yml")["registered_model"]["save_args"]
    assert save_args["registered_model_name"] == name
    uri = _yaml("catalog_inference.yml")["inference_model"]["load_args"]["model_uri"]
    assert f"models:/{name}@champion" in uri


def test_model_requirements_are_pinned_to_constraints() -> None:
    pins = dict(
        line.strip().lower().split("==", 1)
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    requirements = _yaml("catalog_registry.yml")["registered_model"]["save_args"][
        "pip_requirements"
    ]
    assert len(requirements) >= 10
    for requirement in requirements:
        package, version = requirement.lower().split("==")
        assert pins.get(package) == version, f"{requirement} differs from constraints.txt"


def test_registry_params_reject_unknown_keys_and_negative_margins() -> None:
    with pytest.raises(ValueError, match="modelname"):
        RegistryParams(modelname="x")
    with pytest.raises(ValueError, match="margin"):
        RegistryParams(margin=-0.1)


def test_validation_predictions_are_logged_where_promotion_reads_them() -> None:
    entry = _yaml("catalog_registry.yml")["validation_predictions"]
    logged = f"{entry['artifact_path']}/{Path(entry['dataset']['filepath']).name}"
    assert logged == PREDICTIONS_ARTIFACT
