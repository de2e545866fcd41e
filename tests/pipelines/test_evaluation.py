"""The evaluation pipeline end to end on synthetic out-of-fold predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from matplotlib.figure import Figure

from tests.evaluation import make_cohort, make_oof
from tle_kedro.evaluation import COMPARISON_COLUMNS
from tle_kedro.pipelines.evaluation.nodes import EvaluationParams, report_tables
from tle_kedro.pipelines.evaluation.pipeline import create_pipeline

PARAMS = {
    "n_boot": 50,
    "n_boot_secondary": 10,
    "seed": 1,
    "reference_model": "transeprelap",
    "decision_thresholds": [0.1, 0.5, 0.1],
}

MODELING_CONFIG = {"model": {"d_model": 32}, "train": {"lr": 0.003}, "classical": {"seed": 1}}


def _run(ground_truth: pd.DataFrame) -> dict:
    clinical, truth = make_cohort(120, seed=3)
    # data_processing's availability columns: the first 20 patients without PET
    clinical = clinical.assign(has_t1=True, has_pet=np.arange(len(clinical)) >= 20)
    oof = make_oof(truth)
    catalog = DataCatalog(
        {
            "oof_predictions": MemoryDataset(oof),
            "clinical_validated": MemoryDataset(clinical),
            "ground_truth": MemoryDataset(ground_truth if ground_truth is not None else truth),
            "params:evaluation": MemoryDataset(PARAMS),
            "modeling_config": MemoryDataset(MODELING_CONFIG),
        }
    )
    pipeline = create_pipeline()
    for name in pipeline.outputs():
        catalog[name] = MemoryDataset()
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in pipeline.outputs()}


def test_pipeline_writes_tables_plots_and_metrics_with_oracle() -> None:
    out = _run(ground_truth=None)
    table = out["comparison_table"]
    assert list(table.columns[: len(COMPARISON_COLUMNS)]) == list(COMPARISON_COLUMNS)
    assert table["model"].iloc[0] == "transeprelap"
    assert "oracle_c" in table.columns
    assert (table["harrell_c_lo"] <= table["harrell_c"]).all()
    assert (table["harrell_c"] <= table["harrell_c_hi"]).all()
    assert out["comparison_table_md"].startswith("| model")
    for name in (
        "c_index_forest_plot",
        "km_risk_groups_plot",
        "calibration_12m_plot",
        "decision_curve_12m_plot",
    ):
        assert isinstance(out[name], Figure)
    curve = out["decision_curve_12m"]
    assert set(curve["model"]) == {*table["model"], "treat_all", "treat_none"}
    assert metrics_have_calibration(out["evaluation_metrics"])
    metrics = out["evaluation_metrics"]
    assert metrics["transeprelap.harrell_c"]["value"] == pytest.approx(table.loc[0, "harrell_c"])
    baseline = out["clinical_baseline_table"]
    assert {"variable", "p_value"} <= set(baseline.columns)
    by_modality = out["c_by_modality"].set_index(["model", "subgroup"])
    assert by_modality.loc[("transeprelap", "PET missing"), "n_patients"] == 20
    assert by_modality.loc[("transeprelap", "both images"), "n_patients"] == 100
    assert by_modality.loc[("transeprelap", "T1 missing"), "note"] == "no patient in this subgroup"
    assert out["c_by_modality_md"].startswith("| model | subgroup")


def test_pipeline_opens_one_mlflow_run_per_model_with_its_row(tmp_path) -> None:
    """Inside a ``kedro run`` (an active MLflow run) the node ``log_model_runs`` gives each
    model a nested run whose metrics are the parent's ``eval.<model>.*`` without the prefix."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        client = MlflowClient()
        experiment_id = client.create_experiment("t")
        with mlflow.start_run(experiment_id=experiment_id) as parent:
            out = _run(ground_truth=None)
        runs = client.search_runs([experiment_id], "tags.run_kind = 'model'")
    finally:
        mlflow.set_tracking_uri(None)
    table, metrics = out["comparison_table"], out["evaluation_metrics"]
    assert sorted(r.info.run_name for r in runs) == sorted(table["model"])
    for run in runs:
        name = run.info.run_name
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        expected = {
            key.removeprefix(f"{name}."): m["value"]
            for key, m in metrics.items()
            if key.startswith(f"{name}.")
        }
        assert run.data.metrics == pytest.approx(expected)
        assert {"harrell_c", "uno_c_lo", "oracle_c", "delta_c_vs_transeprelap"} <= set(expected)
    assert len({frozenset(r.data.metrics) for r in runs}) == 1
    params = {r.info.run_name: r.data.params for r in runs}
    assert params["transeprelap"]["model.d_model"] == "32"
    assert params["transeprelap"]["train.lr"] == "0.003"


def metrics_have_calibration(metrics: dict) -> bool:
    names = {f"transeprelap.cal_{k}_{t}{s}" for k in ("slope", "intercept") for t in (12, 24)
             for s in ("", "_lo", "_hi")}  # fmt: skip
    return names <= set(metrics)


def test_real_cohort_without_ground_truth_has_no_oracle_column() -> None:
    out = _run(ground_truth=pd.DataFrame())
    assert "oracle_c" not in out["comparison_table"].columns


def test_metrics_dict_skips_non_finite_values() -> None:
    table = pd.DataFrame({"model": ["a"], "harrell_c": [0.7], "delta_lo": [np.nan]})

    class _Result:
        comparison = table
        intervals = pd.DataFrame()

    _, _, _, metrics = report_tables(_Result())  # type: ignore[arg-type]
    assert metrics == {"a.harrell_c": {"value": 0.7, "step": 0}}


def test_params_reject_unknown_keys_with_their_name() -> None:
    with pytest.raises(ValueError, match="n_bootstrap"):
        EvaluationParams(n_bootstrap=10)
