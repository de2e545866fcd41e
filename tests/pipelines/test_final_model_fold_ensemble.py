"""registry.champion: fold_ensemble through the final_model pipeline, with the real catalog
entries (lazy ``<model>.cv_fold_models``, the registered pyfunc, promotion)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from mlflow.tracking import MlflowClient

from tests.registry import TinyBundle, bundle_fixture, model_input
from tests.registry.folds import TINY_MODELING, cross_validated, fold_models
from tle_kedro.features.clinical import ClinicalTokenizer, make_clinical_recipe
from tle_kedro.pipelines.final_model import create_pipeline
from tle_kedro.registry.pyfunc import as_survival_model
from tle_kedro.training.cv import CVResult
from tle_kedro.training.fold_ensemble import ClassicalFoldEnsemble, FoldEnsemble

CONF = Path(__file__).resolve().parents[2] / "conf" / "base"
MODELS = ["transeprelap", "rsf_region_measures"]


def _yaml(name: str) -> dict:
    return yaml.safe_load((CONF / name).read_text())


bundle = bundle_fixture("cohort")


@pytest.fixture(scope="module")
def cv(bundle: TinyBundle) -> CVResult:
    return cross_validated(bundle, MODELS, _yaml("parameters.yml")["atlas"])


class Unreadable:
    """Fold models that fail when unpickled: the run must not read them."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (_explode, ("unpickled fold models of a model that was not chosen",))


def _explode(message: str) -> None:
    raise AssertionError(message)


def _catalog(data_root: Path) -> DataCatalog:
    """The real registry entries and the real fold-model factory, files under ``data_root``."""
    tracked = {"registered_model", "promotion_metrics", "validation_predictions"}
    entries = {name: _yaml("catalog_registry.yml")[name] for name in tracked}
    entries["{model}.cv_fold_models"] = _yaml("catalog_modeling.yml")["{model}.cv_fold_models"]
    text = yaml.safe_dump(entries).replace("${runtime_params:data_root,data}", str(data_root))
    return DataCatalog.from_config(yaml.safe_load(text))


def _run(
    bundle: TinyBundle, cv: CVResult, data_root: Path, model: str, saved: dict[str, object]
) -> dict:
    """The fold-ensemble pipeline (candidates ``MODELS``) with ``saved`` fold models on disk."""
    pipeline = create_pipeline(champion="fold_ensemble", models=MODELS)
    catalog = _catalog(data_root)
    for name, models in saved.items():
        catalog.save(f"{name}.cv_fold_models", models)
    registry = {**_yaml("parameters_registry.yml")["registry"], "model": model}
    inputs = {
        "clinical_validated": bundle.clinical,
        "image_tensors": bundle.tensors,
        "clinical_features": make_clinical_recipe(),
        "clinical_tokenizer": ClinicalTokenizer(),
        "oof_predictions": cv.oof,
        "optuna_storage": None,
        "params:modeling": {**TINY_MODELING, "models": MODELS},
        "params:preprocessing": bundle.params.model_dump(mode="json"),
        "params:registry": {**registry, "champion": "fold_ensemble"},
        "params:atlas": _yaml("parameters.yml")["atlas"],
    }
    for name, value in inputs.items():
        catalog[name] = MemoryDataset(value, copy_mode="assign")
    for name in pipeline.all_outputs() - set(catalog.keys()):
        catalog[name] = MemoryDataset(copy_mode="assign")
    with mlflow.start_run():
        SequentialRunner().run(pipeline, catalog)
    return catalog.load("promotion_decision")


def test_neural_fold_ensemble_is_registered_and_predicts_the_mean_of_its_members(
    bundle: TinyBundle, cv: CVResult, store: MlflowClient, tmp_path: Path
) -> None:
    members = fold_models(cv, "transeprelap")
    saved = {"transeprelap": members, "rsf_region_measures": {"x": Unreadable()}}
    decision = _run(bundle, cv, tmp_path, "transeprelap", saved)
    assert decision["alias"] == "champion"
    champion = mlflow.pyfunc.load_model("models:/tle_recurrence@champion")
    inner = as_survival_model(champion)
    assert isinstance(inner.fitted, FoldEnsemble)
    assert inner.info["champion"] == "fold_ensemble"
    assert inner.info["members"] == sorted(members)
    tags = store.get_model_version("tle_recurrence", decision["version"]).tags
    assert (tags["model"], tags["champion"]) == ("transeprelap", "fold_ensemble")
    out = champion.predict(model_input(bundle.root))
    # the mean of the members' log-risks, each centred on its mean over the training cohort
    ids = list(bundle.clinical["participant_id"])
    raw = np.stack(
        [m.log_risk(m.arrays(ids, bundle.tensors, bundle.clinical)) for m in members.values()]
    )
    expected = (raw - raw.mean(axis=1, keepdims=True)).mean(axis=0)
    assert list(out["participant_id"]) == ids
    np.testing.assert_allclose(out["risk"].to_numpy(float), expected, rtol=1e-5, atol=1e-6)


def test_classical_fold_ensemble_is_registered_with_the_mean_survival(
    bundle: TinyBundle, cv: CVResult, store: MlflowClient, tmp_path: Path
) -> None:
    members = fold_models(cv, "rsf_region_measures")
    saved = {"rsf_region_measures": members, "transeprelap": {"x": Unreadable()}}
    _run(bundle, cv, tmp_path, "rsf_region_measures", saved)
    champion = mlflow.pyfunc.load_model("models:/tle_recurrence@champion")
    inner = as_survival_model(champion)
    assert isinstance(inner.fitted, ClassicalFoldEnsemble)
    assert inner.info["risk_threshold_scale"] == "p12"
    out = champion.predict(model_input(bundle.root))
    # each member's out-of-fold S(24) is what it recorded, so the ensemble's S(24) of a
    # patient averages its out-of-fold value and the other member's in-fold one
    ensemble = inner.fitted
    data = ensemble.arrays(list(out["participant_id"]), bundle.tensors, bundle.clinical)
    s24 = np.mean([m.predict(d).surv_24 for m, d in zip(ensemble.members, data, strict=True)], 0)
    np.testing.assert_allclose(out["p_recurrence_24"].to_numpy(float), 1 - s24)
    rows = cv.oof[cv.oof["model"] == "rsf_region_measures"].set_index("participant_id")
    for k, member in enumerate(ensemble.members):
        mine = rows[rows["fold"] == k]
        at = [list(out["participant_id"]).index(p) for p in mine.index]
        np.testing.assert_allclose(member.predict(data[k]).surv_24[at], mine["surv_24"])


def test_fold_ensemble_without_saved_fold_models_says_how_to_keep_them(
    bundle: TinyBundle, cv: CVResult, store: MlflowClient, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="keep_fold_models: true"):
        _run(bundle, cv, tmp_path, "transeprelap", {"rsf_region_measures": {}})


def test_fold_model_inputs_follow_the_champion_option() -> None:
    refit = create_pipeline(champion="refit", models=MODELS)
    assert not [d for d in refit.inputs() if d.endswith(".cv_fold_models")]
    ensemble = create_pipeline(champion="fold_ensemble", models=MODELS)
    fit = next(n for n in ensemble.nodes if n.name == "fit_final_model")
    assert [d for d in fit.inputs if d.endswith("cv_fold_models")] == [
        f"{m}.cv_fold_models" for m in MODELS
    ]
    catalog = _catalog(Path("/nonexistent"))
    assert all(catalog.get(d) is not None for d in fit.inputs if d.endswith("cv_fold_models"))
