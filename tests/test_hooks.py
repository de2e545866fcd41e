"""Paths given on the command line are redacted from kedro-mlflow's run tags."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from tle_kedro.hooks import REDACTED, RedactRuntimePaths, looks_like_path, redact_paths


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("cohort_dir", "cohort", True),
        ("modeling.tuning.storage", "sqlite:///data/06_models/optuna.db", True),
        ("inference.output_path", 3, True),
        ("demo_cohort.n_patients", 12, False),
        ("modeling.train.lr", 0.001, False),
        ("evaluation.label", r"C:\\data\\x", True),
    ],
)
def test_path_like_runtime_params_are_recognised(key: str, value: object, expected: bool) -> None:
    assert looks_like_path(key, value) is expected


def test_only_paths_are_redacted() -> None:
    got = redact_paths({"cohort_dir": "/srv/tle", "demo_cohort.seed": 3})
    assert got == {"cohort_dir": REDACTED, "demo_cohort.seed": 3}


def test_the_hook_rewrites_the_tag_of_the_active_run(tmp_path: Path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runtime = {"cohort_dir": "/srv/hospital/tle", "demo_cohort.seed": 3}
    try:
        with mlflow.start_run() as run:
            mlflow.set_tag("runtime_params", str(runtime))  # what kedro-mlflow does
            RedactRuntimePaths().before_pipeline_run({"runtime_params": runtime})
        tags = mlflow.get_run(run.info.run_id).data.tags
    finally:
        mlflow.set_tracking_uri(None)
    assert "/srv/hospital" not in tags["runtime_params"]
    assert REDACTED in tags["runtime_params"] and "'demo_cohort.seed': 3" in tags["runtime_params"]


def test_the_hook_is_registered_after_kedro_mlflow() -> None:
    from tle_kedro import settings

    hooks = [type(h) for h in settings.HOOKS]
    assert RedactRuntimePaths in hooks
    impl = RedactRuntimePaths.before_pipeline_run
    assert getattr(impl, "kedro_impl", {}).get("trylast") is True


def test_the_project_registers_one_local_cluster_per_run() -> None:
    """settings.HOOKS holds ShareLocalCluster, so a kedro run's cross-validation nodes share
    one Dask cluster (tests/training/test_parallel.py checks the sharing itself)."""
    from tle_kedro import settings
    from tle_kedro.hooks import ShareLocalCluster

    assert any(isinstance(hook, ShareLocalCluster) for hook in settings.HOOKS)
