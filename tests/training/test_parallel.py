"""The cross-validation units on a real Dask cluster (127.0.0.1): the inline result, as they
finish, tuned fits after their study, errors and progress in the caller."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, wait
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest
import torch
import yaml
from distributed import Client

from tests.conftest import PROJECT_ROOT, local_dask_cluster, one_torch_thread
from tests.training import tiny_cohort
from tle_kedro.features.clinical import ClinicalTokenizer, make_clinical_recipe
from tle_kedro.models.classical import SurvivalPrediction
from tle_kedro.models.config import ModelConfig
from tle_kedro.training import cv, fold_tuning, parallel
from tle_kedro.training.config import ClassicalConfig, ParamRange, TrainConfig, TuningConfig
from tle_kedro.training.cv import CVData, FoldReport, run_cross_validation
from tle_kedro.training.parallel import ExecutorConfig, open_executor
from tle_kedro.training.specs import ModelingParams, ModelSpec
from tle_kedro.training.tuning import TuningResult

COHORT = tiny_cohort(18, shape=(8, 8, 8))
IDS = list(COHORT.clinical["participant_id"])
MODEL = ModelConfig(grid_shape=(8, 8, 8), widths=(2, 2, 4, 4), d_model=8, n_heads=2)
TRAIN = TrainConfig(
    epochs=2,
    warmup_epochs=0,
    batch_size=9,
    device="cpu",
    progress=False,
    augment={"p_augment": 1.0},
)
STUDY_SECONDS = 2.0


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A 2-worker cluster started here: the fits reach it by its address, as on a SLURM one."""
    with local_dask_cluster(2) as address:
        yield address


def _data(clinical: pd.DataFrame = COHORT.clinical) -> CVData:
    folds = pd.DataFrame({"participant_id": IDS, "repeat": 0, "fold": np.arange(18) % 2})
    features = pd.DataFrame({"participant_id": IDS, "pet_asym": COHORT.log_hazard})
    return CVData(
        clinical, folds, COHORT.images, features, make_clinical_recipe(), ClinicalTokenizer()
    )


SPECS = [
    ModelSpec("cox_region_measures", "cox_region_measures"),
    ModelSpec("transeprelap", "neural", "transeprelap", MODEL, TRAIN, tune_with="transeprelap"),
    ModelSpec(
        "transeprelap_no_pet",
        "neural",
        "transeprelap",
        MODEL.model_copy(update={"use_pet": False}),
        TRAIN,
        tune_with="transeprelap",
    ),
    ModelSpec("resnet_image", "neural", "resnet_image", MODEL, TRAIN),
]


def _tuning(tmp_path: object, name: str) -> TuningConfig:
    return TuningConfig(
        storage=f"sqlite:///{tmp_path}/{name}.db",
        n_trials=2,
        epochs=2,
        search_space={"train.lr": ParamRange(low=1e-4, high=1e-2, log=True)},
    )


def _worker_processes() -> set[int]:
    """Processes this one spawned to run tasks (not multiprocessing's resource tracker)."""
    out = set()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "spawn_main" in " ".join(child.cmdline()):
                out.add(child.pid)
    return out


@pytest.mark.slow
def test_a_local_cluster_gives_the_inline_result_and_reports_every_unit(tmp_path: object) -> None:
    # the cluster's workers run one torch thread each; the inline run must too for
    # bit-identical sums
    before = _worker_processes()
    with one_torch_thread():
        results, reports, studies = {}, {}, {}
        for workers in (1, 2):
            reports[workers], studies[workers] = [], []
            results[workers] = run_cross_validation(
                SPECS,
                _data(),
                ClassicalConfig(),
                _tuning(tmp_path, f"w{workers}"),
                on_fold_end=reports[workers].append,
                executor=ExecutorConfig(workers=workers),  # 2: a LocalCluster started inside
                on_study_end=studies[workers].append,
            )
    assert _worker_processes() <= before  # the cluster's worker processes are gone
    pd.testing.assert_frame_equal(results[1].oof, results[2].oof, check_exact=True)
    assert results[1].tuned_params == results[2].tuned_params
    assert len(results[2].oof) == len(SPECS) * len(IDS)
    for workers in (1, 2):
        got = sorted((r.model, r.fold) for r in reports[workers])
        assert got == sorted((s.name, f) for s in SPECS for f in (0, 1))
        assert all(isinstance(r, FoldReport) for r in reports[workers])
        assert sorted(s.study_name.rsplit("-", 1)[0] for s in studies[workers]) == [
            "transeprelap-r0-f0",
            "transeprelap-r0-f1",
        ]
        assert all(isinstance(s, TuningResult) and len(s.trials) == 2 for s in studies[workers])
    # the ablation uses its fold's study, like TransEpRelap
    for f in (0, 1):
        tuned = results[2].tuned_params
        assert tuned[("transeprelap_no_pet", 0, f)] == tuned[("transeprelap", 0, f)] != {}
        assert tuned[("resnet_image", 0, f)] == {}


def _sleep_then_scale(shared: float, seconds: float) -> tuple[float, int]:
    time.sleep(seconds)
    return shared * seconds, torch.get_num_threads()


def _worker_environment(_: object) -> tuple[str | None, str | None]:
    import os

    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")


def test_the_runs_cluster_keeps_glibcs_malloc_trimming_and_one_omp_thread(scheduler: str) -> None:
    """distributed's default MALLOC_TRIM_THRESHOLD_=65536 slowed every fit by ~15 %
    (training.parallel.local_cluster); its one-OpenMP-thread default stays."""
    with open_executor(ExecutorConfig(scheduler_address=scheduler, workers=2), None) as (pool, _):
        assert pool.submit(_worker_environment, 0).result() == (None, "1")


def test_results_reach_the_caller_as_they_finish(scheduler: str) -> None:
    with open_executor(ExecutorConfig(scheduler_address=scheduler), 3.0) as (pool, shared):
        slow = pool.submit(_sleep_then_scale, shared, 8.0)
        fast = pool.submit(_sleep_then_scale, shared, 0.5)
        finished, _ = wait([slow, fast], return_when=FIRST_COMPLETED, timeout=60)
        assert finished == {fast} and not slow.done()
        # the task got the shared object, not its handle; one torch thread per worker
        assert fast.result() == (1.5, 1)


def _fake_study(data: CVData, lead: ModelSpec, split: Any, tuning: Any) -> TuningResult:
    time.sleep(STUDY_SECONDS)
    repeat, fold = split[0], split[1]
    params = {"train.lr": 0.01 * (fold + 1), "finished_at": time.time()}
    return TuningResult(f"fake-r{repeat}-f{fold}", params, 0.5, 1, None, TRAIN)


def _fake_fit(
    data: CVData, spec: ModelSpec, split: Any, classical: Any, params: dict[str, Any]
) -> tuple[Any, SurvivalPrediction, list[dict[str, float]], float]:
    """No model: a constant prediction, and in the ``seconds`` slot the time it started."""
    started = time.time()
    n = len(split[3])
    pred = SurvivalPrediction(np.arange(n, dtype=float), np.full(n, 0.9), np.full(n, 0.8))
    return None, pred, [], started


def _run_fakes(monkeypatch: pytest.MonkeyPatch, executor: ExecutorConfig | None) -> Any:
    monkeypatch.setattr(cv, "tune_fold_task", _fake_study)
    monkeypatch.setattr(cv, "_fit_task", _fake_fit)
    studies: list[TuningResult] = []
    reports: list[FoldReport] = []
    run_cross_validation(
        SPECS,
        _data(),
        tuning=TuningConfig(storage="sqlite:////never/opened/by/the/fake/study.db"),
        on_fold_end=reports.append,
        executor=executor,
        on_study_end=studies.append,
    )
    return studies, reports


def test_a_folds_tuned_fits_wait_for_its_study_and_others_do_not(
    scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor = ExecutorConfig(scheduler_address=scheduler)
    studies, reports = _run_fakes(monkeypatch, executor)
    by_fold = {int(s.study_name[-1]): s.params for s in studies}
    finished = {fold: params["finished_at"] for fold, params in by_fold.items()}
    for report in reports:
        started = report.metrics["fit_seconds"]  # _fake_fit's start time
        if report.model.startswith("transeprelap"):
            assert started >= finished[report.fold]
            assert report.params == by_fold[report.fold]  # its own fold's values
        else:
            assert report.params == {}
    untuned = [r.metrics["fit_seconds"] for r in reports if r.params == {}]
    assert min(untuned) < min(finished.values())  # ran while a study was running


def test_progress_counts_every_unit_as_it_finishes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(f"{__name__}.STUDY_SECONDS", 0.0)  # inline: this module's value
    with caplog.at_level(logging.INFO, logger="tle_kedro.training.cv"):
        _run_fakes(monkeypatch, None)
    lines = [r.getMessage() for r in caplog.records if "cross-validation " in r.getMessage()]
    n_units = 2 * (1 + len(SPECS))  # per fold: one study, one fit per model
    assert [line.split(":")[0] for line in lines] == [
        f"cross-validation {k}/{n_units}" for k in range(1, n_units + 1)
    ]
    assert sum("study transeprelap r0 f1 done" in line for line in lines) == 1
    assert sum("resnet_image r0 f0 done" in line for line in lines) == 1


def test_studies_on_a_remote_cluster_refuse_a_relative_sqlite_storage(tmp_path: object) -> None:
    remote = ExecutorConfig(scheduler_address="tcp://10.0.0.5:8786")  # never contacted
    relative = TuningConfig(storage="sqlite:///data/06_models/optuna.db")
    with pytest.raises(ValueError, match="relative to each Dask worker's working directory"):
        run_cross_validation(SPECS, _data(), tuning=relative, executor=remote)
    # inline and on a local cluster the workers share the run's working directory
    fold_tuning.check_storage_reachable(relative, ExecutorConfig(workers=2))
    fold_tuning.check_storage_reachable(relative, None)
    absolute = TuningConfig(storage=f"sqlite:///{tmp_path}/optuna.db")
    fold_tuning.check_storage_reachable(absolute, remote)


def test_a_study_that_loses_the_schema_race_opens_the_schema_the_other_wrote(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    import sqlalchemy

    calls: list[str] = []

    def racing(url: str) -> None:
        calls.append(url)
        if len(calls) == 1:  # what the later of two workers on a fresh database saw
            raise sqlalchemy.exc.IntegrityError(
                "INSERT INTO alembic_version", {}, Exception("UNIQUE constraint failed")
            )

    monkeypatch.setattr(fold_tuning.optuna.storages, "RDBStorage", racing)
    url = f"sqlite:///{tmp_path}/fresh/optuna.db"
    fold_tuning.create_optuna_schema(url)
    assert calls == [url, url]

    def broken(url: str) -> None:
        raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(fold_tuning.optuna.storages, "RDBStorage", broken)
    with pytest.raises(sqlalchemy.exc.OperationalError, match="disk I/O error"):
        fold_tuning.create_optuna_schema(url)  # any other error is raised at once


@pytest.mark.parametrize("where", ["inline", "cluster"])
def test_a_failing_unit_raises_its_error_and_cancels_the_rest(scheduler: str, where: str) -> None:
    bad = ModelSpec("transeprelap", "neural", "transeprelap", MODEL, TRAIN)
    broken = _data(COHORT.clinical.assign(time_months=-1.0))
    executor = ExecutorConfig(scheduler_address=scheduler) if where == "cluster" else None
    with pytest.raises(ValueError, match="time_months must be finite and > 0"):
        run_cross_validation([bad, SPECS[0]], broken, executor=executor)
    if where == "inline":
        return
    with Client(scheduler) as client:  # nothing of that run is left on the cluster
        deadline = time.monotonic() + 30
        while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):
            assert time.monotonic() < deadline, "the failed run's tasks are still scheduled"
            time.sleep(0.2)


def _many_tensors(n: int) -> list[torch.Tensor]:
    return [torch.full((3,), float(i)) for i in range(n)]


def _raises_with_a_grad_tensor() -> None:
    leaf = torch.ones(2, requires_grad=True)
    raise ValueError("bad values", leaf * 2)  # a non-leaf tensor with grad inside


def test_fitted_ensembles_and_awkward_errors_come_back_whole(scheduler: str) -> None:
    # a fitted ensemble of snapshot networks holds thousands of tensors (a process pool that
    # sent one file descriptor per tensor broke on them: "received 0 items of ancdata")
    with open_executor(ExecutorConfig(scheduler_address=scheduler), None) as (pool, _):
        out = pool.submit(_many_tensors, 25_000).result(timeout=120)  # > ulimit -n here
        assert len(out) == 25_000 and float(out[4321][0]) == 4321.0
        with pytest.raises(Exception, match="bad values"):
            pool.submit(_raises_with_a_grad_tensor).result(timeout=120)


def test_one_worker_without_a_scheduler_runs_inline_in_this_process() -> None:
    before = _worker_processes()
    with open_executor(ExecutorConfig(workers=1), {"a": 1}) as (pool, shared):
        assert isinstance(pool, parallel.InlineExecutor) and shared == {"a": 1}
        assert pool.submit(lambda x: x["a"] + 1, shared).result() == 2
    with open_executor(None, 5) as (pool, shared):
        assert isinstance(pool, parallel.InlineExecutor) and shared == 5
    assert _worker_processes() == before


def test_workers_auto_is_one_per_core_on_cpu_and_one_on_a_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parallel, "available_cores", lambda: 2)
    monkeypatch.setattr(parallel.torch.cuda, "is_available", lambda: False)
    assert parallel.resolve_workers("auto", "auto") == 2
    assert parallel.resolve_workers("auto", "cuda") == 1
    monkeypatch.setattr(parallel, "available_cores", lambda: 64)
    assert parallel.resolve_workers("auto", "cpu") == parallel.MAX_AUTO_WORKERS
    assert parallel.resolve_workers(3, "cuda") == 3
    with pytest.raises(ValueError, match="workers must be"):
        parallel.resolve_workers(0, "cpu")
    remote = ExecutorConfig(scheduler_address="tcp://10.0.0.5:8786")
    assert parallel.resolve_executor(remote, "cuda") == remote.model_copy(update={"workers": 1})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"workers": 2}, "workers"),  # the key moved into modeling.executor
        ({"executor": {"worker": 2}}, "executor.worker"),
        ({"executor": {"workers": 0}}, "greater than or equal to 1"),
        ({"executor": {"scheduler_address": "10.0.0.5:8786"}}, "tcp://10.0.0.5:8786"),
    ],
)
def test_a_bad_executor_section_is_an_error_naming_the_key(
    raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ModelingParams(**raw)


def test_the_scheduler_snippet_of_the_docs_is_a_valid_modeling_section() -> None:
    page = (PROJECT_ROOT / "docs" / "scaling_out.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", page, re.S)]
    snippets = [b for b in blocks if "executor" in b.get("modeling", {})]
    assert len(snippets) == 1, "docs/scaling_out.md §3 shows one modeling.executor block"
    executor = ModelingParams(**snippets[0]["modeling"]).executor
    assert executor.scheduler_address is not None
    assert executor.scheduler_address.startswith("tcp://")


def _worker_pid(_: object) -> int:
    import os

    return os.getpid()


def test_a_kedro_runs_nodes_share_one_local_cluster_closed_when_the_run_ends() -> None:
    """``hooks.ShareLocalCluster``: the run's second cross-validation node reuses the first
    one's workers (no second start-up), and nothing outlives the run; outside a run each
    call starts and closes its own cluster."""
    from tle_kedro.hooks import ShareLocalCluster

    hook, config = ShareLocalCluster(), ExecutorConfig(workers=2)
    before = _worker_processes()
    hook.before_pipeline_run()
    try:
        pids = []
        for _ in range(2):  # two nodes of one run
            with open_executor(config, None) as (pool, _):
                pids.append({pool.submit(_worker_pid, i).result() for i in range(6)})
            assert len(_worker_processes() - before) >= 2  # the workers stay between nodes
        assert pids[0] & pids[1]
        [cluster] = parallel.RUN_CLUSTERS.clusters.values()
    finally:
        hook.after_pipeline_run()
    assert cluster.status.name == "closed" and not parallel.RUN_CLUSTERS.clusters
    # after the run: a call owns its cluster again
    with open_executor(config, None) as (pool, _):
        first = {pool.submit(_worker_pid, i).result() for i in range(6)}
    assert not first & pids[0] and not parallel.RUN_CLUSTERS.keeping


def test_a_failed_run_closes_its_cluster() -> None:
    from tle_kedro.hooks import ShareLocalCluster

    hook = ShareLocalCluster()
    hook.before_pipeline_run()
    with open_executor(ExecutorConfig(workers=2), None) as (pool, _):
        assert pool.submit(_worker_pid, 0).result() > 0
    [cluster] = parallel.RUN_CLUSTERS.clusters.values()
    hook.on_pipeline_error()
    assert cluster.status.name == "closed" and not parallel.RUN_CLUSTERS.keeping
