"""Optuna worker processes sharing one study in PostgreSQL (docs/scaling_out.md, section 2).

Each worker is its own Python process running the project's ``tune_hyperparameters`` with
conf/base's ``modeling.tuning`` and the per-worker overrides the docs give
(``tests/servers/optuna_worker.py``), against a throw-away PostgreSQL cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from tests.conftest import PROJECT_ROOT
from tests.servers.optuna_worker import project_tuning
from tests.servers.postgres import Postgres
from tle_kedro.training.tuning import base_point

pytestmark = pytest.mark.slow

WORKER_TIMEOUT_S = 300.0
SEEDS = (42, 1001)  # the docs: every further worker changes modeling.tuning.seed
N_TRIALS = 3
HEARTBEAT_S = 1  # Optuna's grace period is 2 heartbeats


def start_worker(
    out: Path, storage: str, study: str, *overrides: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``python -m tests.servers.optuna_worker``; its output goes to ``out`` + ``.log``."""
    command = [sys.executable, "-m", "tests.servers.optuna_worker", str(out)]
    command += [f"storage={storage}", f"study_name={study}", *overrides]
    log = out.with_suffix(".log").open("w")
    return subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(worker: subprocess.Popen[str], out: Path) -> dict[str, Any]:
    """Wait for a worker; its result, or the test fails with its log."""
    try:
        code = worker.wait(timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        code = worker.wait()
    log = out.with_suffix(".log").read_text(errors="replace")[-6000:]
    assert code == 0, f"worker exited {code}\n--- log ---\n{log}"
    return dict(json.loads(out.read_text()))


def wait_for(
    path: Path, worker: subprocess.Popen[str], what: str, pattern: str | None = None
) -> list[Path]:
    """Wait until ``path`` exists (or, with ``pattern``, holds a match); fail if ``worker`` dies."""
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while not (found := sorted(path.glob(pattern)) if pattern else [path] * path.exists()):
        assert worker.poll() is None, f"the worker exited ({worker.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {WORKER_TIMEOUT_S:.0f} s"
        time.sleep(0.1)
    return found


def test_two_workers_add_their_trials_to_one_study_without_repeating_a_point(
    postgres: Postgres, tmp_path: Path
) -> None:
    storage, study = postgres.url("optuna"), f"pair-{uuid.uuid4().hex[:8]}"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    outs = [tmp_path / f"worker-{seed}.json" for seed in SEEDS]
    workers = [
        start_worker(out, storage, study, f"seed={seed}", f"n_trials={N_TRIALS}",
                     env={"TLE_WORKER_BARRIER": str(barrier)})
        for out, seed in zip(outs, SEEDS, strict=True)
    ]  # fmt: skip
    try:
        # Both open the fresh study at the same moment (the race that matters).
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        while len(list(barrier.glob("ready-*"))) < len(workers):
            assert all(w.poll() is None for w in workers), "a worker exited before the start"
            assert time.monotonic() < deadline, "the workers never got ready"
            time.sleep(0.1)
        (barrier / "go").touch()
        results = [finish(w, out) for w, out in zip(workers, outs, strict=True)]
    finally:
        for worker in workers:
            worker.kill()

    trials = optuna.load_study(study_name=results[0]["study_name"], storage=storage).trials
    assert len(trials) == len(SEEDS) * N_TRIALS  # the count adds up
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    mine = [{t["number"] for t in r["trials"]} for r in results]
    assert all(len(numbers) == N_TRIALS for numbers in mine)
    assert mine[0].isdisjoint(mine[1]) and mine[0] | mine[1] == {t.number for t in trials}
    firsts = [r["trials"][0]["params"] for r in results]
    assert firsts[0] != firsts[1]
    points = [json.dumps(t.params, sort_keys=True) for t in trials]
    assert len(set(points)) == len(points), "two trials of the shared study tried one point"
    # The configured values were enqueued once, by the worker that created the study.
    config, train = project_tuning({})
    base = base_point(dict(config.search_space), None, train)
    assert base is not None and [t.params for t in trials].count(base) == 1
    # They ran at the same time: each worker's trials span the other's.
    spans = [
        (min(t.datetime_start for t in trials if t.number in numbers),
         max(t.datetime_complete for t in trials if t.number in numbers))
        for numbers in mine
    ]  # fmt: skip
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]


def test_a_killed_workers_trial_is_failed_by_the_heartbeat_and_retried(
    postgres: Postgres, tmp_path: Path
) -> None:
    storage, study = postgres.url("optuna"), f"killed-{uuid.uuid4().hex[:8]}"
    heartbeat = f"heartbeat_interval_s={HEARTBEAT_S}"
    marker, barrier = tmp_path / "in-trial", tmp_path / "barrier"
    barrier.mkdir()
    doomed_out, out = tmp_path / "doomed.json", tmp_path / "survivor.json"
    doomed = start_worker(doomed_out, storage, study, heartbeat, "n_trials=1",
                          env={"TLE_WORKER_HANG_MARKER": str(marker)})  # fmt: skip
    # Started now to load meanwhile; it opens the study when told (after the kill).
    survivor = start_worker(out, storage, study, heartbeat, "n_trials=1", "seed=1001",
                            env={"TLE_WORKER_BARRIER": str(barrier)})  # fmt: skip
    try:
        wait_for(marker, doomed, "its first trial started")
        (name,) = [
            n for n in optuna.get_all_study_names(storage) if n.startswith(f"{study}-r0-f0-")
        ]
        (running,) = optuna.load_study(study_name=name, storage=storage).trials
        assert running.state == TrialState.RUNNING
        doomed.send_signal(signal.SIGKILL)  # no cleanup, no last heartbeat
        doomed.wait(timeout=30)
        time.sleep(2 * HEARTBEAT_S + 1)  # past Optuna's grace period
        wait_for(barrier, survivor, "the survivor got ready", "ready-*")
        (barrier / "go").touch()
        result = finish(survivor, out)
    finally:
        doomed.kill()
        survivor.kill()

    failed, retried = optuna.load_study(study_name=name, storage=storage).trials
    assert failed.number == running.number and failed.state == TrialState.FAIL
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(retried) == failed.number
    assert retried.params == running.params
    assert retried.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert [t["number"] for t in result["trials"]] == [retried.number]
