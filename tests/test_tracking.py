"""Nested MLflow runs per model × fold, and one per model with its evaluation."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tle_kedro.evaluation import model_metrics
from tle_kedro.tracking import MlflowFoldLogger, log_model_runs
from tle_kedro.training.cv import FoldReport
from tle_kedro.training.specs import model_params

REPORT = FoldReport(
    model="transeprelap",
    repeat=0,
    fold=2,
    history=[
        {"epoch": 0, "train_loss": 4.0, "val_loss": 4.1, "val_c": 0.6},
        {"epoch": 1, "train_loss": 3.5, "val_loss": float("nan"), "val_c": 0.7},
    ],
    metrics={"test_harrell_c": 0.75, "best_val_c": float("nan")},
    params={"train.lr": 0.001},
)


@pytest.fixture
def store(tmp_path: Path):
    # No mlflow.set_experiment: it would leave a global active experiment id behind for
    # other tests' stores.
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    client.create_experiment("t")
    yield client
    mlflow.set_tracking_uri(None)


def test_fold_run_is_nested_with_params_metrics_and_history(store: MlflowClient) -> None:
    experiment_id = store.get_experiment_by_name("t").experiment_id
    with mlflow.start_run(experiment_id=experiment_id) as parent:
        MlflowFoldLogger({"transeprelap": {"kind": "transeprelap"}})(REPORT)
    runs = store.search_runs([parent.info.experiment_id])
    child = next(r for r in runs if r.info.run_id != parent.info.run_id)
    assert child.info.run_name == "transeprelap-r0-f2"
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.data.tags["model"] == "transeprelap"
    assert child.data.tags["run_kind"] == "fold"
    assert child.data.params == {"kind": "transeprelap", "train.lr": "0.001"}
    assert child.data.metrics["test_harrell_c"] == 0.75
    assert "best_val_c" not in child.data.metrics  # NaN is not logged
    history = store.get_metric_history(child.info.run_id, "val_c")
    assert [(m.step, m.value) for m in history] == [(0, 0.6), (1, 0.7)]
    assert len(store.get_metric_history(child.info.run_id, "val_loss")) == 1


def test_nothing_is_logged_without_an_active_run(store: MlflowClient) -> None:
    MlflowFoldLogger()(REPORT)
    experiment = store.get_experiment_by_name("t")
    assert store.search_runs([experiment.experiment_id]) == []


# Two rows of a comparison table (evaluation.comparison_table), reference first.
TABLE = pd.DataFrame(
    {
        "model": ["transeprelap", "cox_clinical"],
        "harrell_c": [0.71, 0.58],
        "harrell_c_lo": [0.65, 0.51],
        "harrell_c_hi": [0.77, 0.64],
        "uno_c": [0.70, 0.57],
        "uno_c_lo": [0.64, 0.50],
        "uno_c_hi": [0.76, 0.63],
        "auc_12": [0.74, 0.60],
        "auc_24": [0.73, 0.59],
        "ibs": [0.19, 0.24],
        "ici_12": [0.04, 0.09],
        "cal_slope_12": [1.1, 0.4],
        "delta_c_vs_transeprelap": [0.0, 0.13],
        "delta_lo": [0.0, 0.05],
        "delta_hi": [0.0, 0.21],
        "oracle_c": [0.85, 0.85],
        "gap_to_oracle": [0.14, 0.27],
    }
)
RESOLVED = {  # a modeling_config: the resolved configuration of the modeling node
    "model": {"d_model": 32, "region_tokens": True, "atlas": {"regions": ["r" * 40] * 10}},
    "train": {"lr": 0.003, "augment": {"enabled": True}},
    "classical": {"cox_penalizer": [0.1, 1.0], "rsf_n_estimators": 200, "seed": 42},
}


def test_one_model_run_per_model_with_the_same_metric_keys(store: MlflowClient) -> None:
    experiment_id = store.get_experiment_by_name("t").experiment_id
    metrics = model_metrics(TABLE)
    params = {m: model_params(m, RESOLVED) for m in metrics}
    with mlflow.start_run(experiment_id=experiment_id) as parent:
        MlflowFoldLogger()(REPORT)
        run_ids = log_model_runs(metrics, params)
    runs = store.search_runs([experiment_id], "tags.run_kind = 'model'")
    assert sorted(r.info.run_name for r in runs) == ["cox_clinical", "transeprelap"]
    assert {r.info.run_name: r.info.run_id for r in runs} == run_ids
    numeric = [c for c in TABLE.columns if c != "model"]
    for run in runs:
        name = run.info.run_name
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["model"] == name
        assert sorted(run.data.metrics) == sorted(numeric)  # the same keys for every model
        row = TABLE.set_index("model").loc[name]
        for column in numeric:
            assert run.data.metrics[column] == pytest.approx(row[column], abs=1e-12)
    by_name = {r.info.run_name: r for r in runs}
    neural = by_name["transeprelap"].data.params
    assert neural["family"] == "neural" and neural["kind"] == "transeprelap"
    assert neural["model.d_model"] == "32" and neural["train.augment.enabled"] == "True"
    assert len(neural["model.atlas.regions"]) == 250  # cut like every other parameter
    assert by_name["cox_clinical"].data.params == {
        "family": "cox_clinical",
        "classical.cox_penalizer": "[0.1, 1.0]",
        "classical.seed": "42",
    }
    # the fold runs are told apart from the model runs by the same tag
    folds = store.search_runs([experiment_id], "tags.run_kind = 'fold'")
    assert [r.info.run_name for r in folds] == ["transeprelap-r0-f2"]


def test_model_runs_leave_out_undefined_metrics(store: MlflowClient) -> None:
    experiment_id = store.get_experiment_by_name("t").experiment_id
    table = TABLE.assign(auc_24=[0.73, np.nan])
    with mlflow.start_run(experiment_id=experiment_id):
        log_model_runs(model_metrics(table))
    runs = {
        r.info.run_name: r for r in store.search_runs([experiment_id], "tags.run_kind = 'model'")
    }
    assert "auc_24" in runs["transeprelap"].data.metrics
    assert "auc_24" not in runs["cox_clinical"].data.metrics  # as in the parent's eval.* metrics
    assert runs["cox_clinical"].data.params == {}


def test_no_model_run_without_an_active_run(store: MlflowClient) -> None:
    assert log_model_runs(model_metrics(TABLE)) == {}
    experiment = store.get_experiment_by_name("t")
    assert store.search_runs([experiment.experiment_id]) == []
