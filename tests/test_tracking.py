"""Nested MLflow runs per model × fold."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from tle_kedro.tracking import MlflowFoldLogger
from tle_kedro.training.cv import FoldReport

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
