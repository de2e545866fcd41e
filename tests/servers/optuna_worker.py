"""One Optuna worker process: the project's tuning of one fold's study on a shared storage.

    python -m tests.servers.optuna_worker RESULT_JSON key=value ...

The tuning configuration is ``modeling.tuning`` of the project's conf/base, with the keys a
user overrides per worker (docs/scaling_out.md: ``storage``, ``seed``, ``heartbeat_interval_s``,
``n_trials``, …) given as ``key=value`` (YAML values). The study is opened and run by
``tle_kedro.training.tuning.tune_hyperparameters``, as ``kedro run --pipelines=modeling``
does for each outer fold; only the network is the tests' tiny stand-in (``use_tiny_fit_loop``)
on ``tiny_cohort``, so a trial takes a fraction of a second. The search space is the project's
``train.*`` part (the stand-in has no model configuration for ``model.*``).

Writes ``{"pid", "study_name", "trials": [{"number", "state", "params"}]}`` for the trials this
process ran. With ``TLE_WORKER_BARRIER=<dir>`` it waits, once ready, until the test creates
``<dir>/go`` (workers that open the study at the same moment). With
``TLE_WORKER_HANG_MARKER=<path>`` it writes that file once its first trial has started and then
hangs in it (a worker to kill in the middle of a trial).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kedro.config import OmegaConfigLoader

from tests.conftest import PROJECT_ROOT, one_torch_thread
from tests.training import tiny_cohort, use_tiny_fit_loop
from tle_kedro.features.clinical import ClinicalTokenizer
from tle_kedro.training import tuning
from tle_kedro.training.config import TrainConfig, TuningConfig, parse_section
from tle_kedro.training.fit import FitInputs
from tle_kedro.training.tuning import fold_study_name, tune_hyperparameters

N_PATIENTS = 16


def project_tuning(overrides: dict[str, Any]) -> tuple[TuningConfig, TrainConfig]:
    """``modeling.tuning`` and ``modeling.train`` of conf/base, with ``overrides`` applied."""
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base")
    modeling = loader["parameters"]["modeling"]
    raw = {**modeling["tuning"], **overrides}
    if "search_space" not in raw:
        space = TuningConfig().search_space  # the project's default space
        raw["search_space"] = {n: r.model_dump() for n, r in space.items() if n[:6] == "train."}
    train = {**modeling["train"], "device": "cpu", "progress": False}
    return (
        parse_section(TuningConfig, raw, "modeling.tuning"),
        parse_section(TrainConfig, train, "modeling.train"),
    )


def hang_in_first_trial(marker: Path) -> None:
    """Replace the fit of a trial by: write ``marker``, then sleep until killed."""

    def hang(*args: Any, **kwargs: Any) -> Any:
        marker.write_text(str(os.getpid()))
        while True:
            time.sleep(60)

    tuning.fit_neural_model = hang  # type: ignore[assignment]


def wait_at_barrier(barrier: Path) -> None:
    """Say ready (``ready-<pid>``), then wait for ``go``: workers open the study together."""
    (barrier / f"ready-{os.getpid()}").touch()
    while not (barrier / "go").exists():
        time.sleep(0.02)


def main(argv: list[str]) -> None:
    out = Path(argv[0])
    overrides = {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in argv[1:])}
    config, train = project_tuning(overrides)
    cohort = tiny_cohort(N_PATIENTS)
    monkeypatch = pytest.MonkeyPatch()
    use_tiny_fit_loop(monkeypatch)
    if marker := os.environ.get("TLE_WORKER_HANG_MARKER"):
        hang_in_first_trial(Path(marker))
    if barrier := os.environ.get("TLE_WORKER_BARRIER"):
        wait_at_barrier(Path(barrier))
    study_name = fold_study_name(config.study_name, 0, 0)
    with one_torch_thread():
        inputs = FitInputs(
            "tiny",
            None,
            train,
            list(cohort.clinical["participant_id"]),
            cohort.images,
            cohort.clinical,
            ClinicalTokenizer(),
        )
        result = tune_hyperparameters(
            inputs,
            config,
            study_name=study_name,
            log_to_mlflow=False,
        )
    trials = [
        {"number": t.number, "state": t.state.name, "params": t.params} for t in result.trials
    ]
    out.write_text(
        json.dumps({"pid": os.getpid(), "study_name": result.study_name, "trials": trials})
    )


if __name__ == "__main__":
    main(sys.argv[1:])
