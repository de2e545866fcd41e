"""The ``modeling`` pipeline: one namespace per configured model, gathered for evaluation."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from kedro.pipeline import Pipeline

from tests.conftest import PROJECT_ROOT, make_project_copy, run_kedro_command
from tle_kedro.config_loader import LOADER_ARGS, ProjectConfigLoader
from tle_kedro.pipelines.modeling import create_pipeline
from tle_kedro.training.specs import DEFAULT_MODELS, ON_REQUEST

OPTIONS = {"transeprelap_clinical_after", "transeprelap_no_flip", "transeprelap_discrete"}
ABLATIONS_ENV = ["cox_clinical", "transeprelap", *ON_REQUEST]


def namespaces(pipeline: Pipeline) -> set[str]:
    return {node.namespace for node in pipeline.nodes if node.namespace}


def node(pipeline: Pipeline, name: str) -> object:
    (found,) = [n for n in pipeline.nodes if n.name == name]
    return found


@pytest.fixture
def session_loader(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No configuration loaded by an earlier session in this process leaks into the test."""
    monkeypatch.setattr(ProjectConfigLoader, "latest", None)
    yield


def test_each_model_is_a_namespace_with_its_fits_and_predictions() -> None:
    pipeline = create_pipeline(models=DEFAULT_MODELS)
    assert namespaces(pipeline) == set(DEFAULT_MODELS)
    for model in DEFAULT_MODELS:
        fits = pipeline.only_nodes_with_namespaces([model])
        assert f"{model}.cross_validate" in {n.name for n in fits.nodes}
        assert {f"{model}.oof_predictions", f"{model}.cv_fold_metrics"} <= fits.all_outputs()
    # What evaluation and final_model read is gathered outside the namespaces.
    assert {"oof_predictions", "cv_fold_metrics", "modeling_metrics", "modeling_config"} <= (
        pipeline.outputs()
    )


def test_only_transeprelap_tunes_and_its_ablations_read_its_studies() -> None:
    pipeline = create_pipeline(models=ABLATIONS_ENV)
    tuning = [n.name for n in pipeline.nodes if n.name.endswith(".tune")]
    assert tuning == ["transeprelap.tune"]
    assert "optuna_storage" in node(pipeline, "transeprelap.tune").inputs
    for model in ["transeprelap", *ON_REQUEST]:
        assert "transeprelap.tuned_params" in node(pipeline, f"{model}.cross_validate").inputs
    assert not any("tuned" in i for i in node(pipeline, "cox_clinical.cross_validate").inputs)
    # An ablation alone runs on the study results a TransEpRelap run left in the catalog.
    alone = pipeline.only_nodes_with_namespaces(["transeprelap_no_pet"])
    assert "transeprelap.tuned_params" in alone.inputs()
    assert namespaces(alone) == {"transeprelap_no_pet"}  # not transeprelap_no_pet*-prefixed


def test_without_transeprelap_the_ablations_are_not_tuned() -> None:
    pipeline = create_pipeline(models=["transeprelap_no_pet"])
    assert not any("tuned" in name for name in pipeline.all_inputs() | pipeline.all_outputs())


@pytest.mark.parametrize(
    ("env", "runtime_params", "models"),
    [
        ("base", None, set(DEFAULT_MODELS)),
        ("ablations", None, {*DEFAULT_MODELS, *ON_REQUEST}),
        # issue 15's options beside the default TransEpRelap (make confirm ENV=options)
        ("options", None, {*DEFAULT_MODELS, *OPTIONS}),
        ("smoke", {"modeling": {"models": ["cox_clinical"]}}, {"cox_clinical"}),
    ],
)
def test_the_sessions_environment_and_params_decide_the_namespaces(
    session_loader: None, env: str, runtime_params: dict | None, models: set[str]
) -> None:
    # What `kedro run --env=<env> --params=...` does before it registers the pipelines.
    ProjectConfigLoader(
        str(PROJECT_ROOT / "conf"),
        env=env,
        runtime_params=runtime_params,
        **{**LOADER_ARGS, "default_run_env": env},
    )
    assert namespaces(create_pipeline()) == models


@pytest.mark.slow
def test_namespaces_option_trains_one_model(smoke_run: Path, tmp_path: Path) -> None:
    """``kedro run --pipelines=modeling --namespaces=cox_clinical`` on the smoke run's inputs
    fits that model only, with the same predictions as the full run."""
    project = make_project_copy(tmp_path)
    for layer in ("02_intermediate", "03_primary", "04_feature", "05_model_input"):
        shutil.copytree(smoke_run / "data" / layer, project / "data" / layer, dirs_exist_ok=True)
    proc = run_kedro_command(
        project, "run", "--env=smoke", "--pipelines=modeling", "--namespaces=cox_clinical"
    )
    log = proc.stdout + proc.stderr
    assert "cox_clinical.cross_validate" in log.replace("\n", "")
    written = {p.parent.name for p in (project / "data" / "07_model_output").rglob("*.parquet")}
    assert written == {"cox_clinical"}  # no other model, no gathered dataset
    assert {p.name for p in (project / "data" / "06_models").iterdir()} == {"cox_clinical"}
    alone = pd.read_parquet(project / "data/07_model_output/cox_clinical/oof_predictions.parquet")
    full = pd.read_parquet(smoke_run / "data/07_model_output/oof_predictions.parquet")
    full = full[full["model"] == "cox_clinical"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, full)
