"""One Optuna study per outer fold, on its own: the tuned hyperparameters as data.

``run_cross_validation`` can tune and fit in one call; the Kedro ``modeling`` pipeline
instead runs a model's studies in a node of their own, so that the tuned values are a
dataset (``transeprelap.tuned_params``) that the model's fits and its ablations' fits read
(the ablations reuse TransEpRelap's study of the same fold, ``ModelSpec.tune_with``). A study
here is the same worker task as in ``run_cross_validation`` (:func:`tune_fold_task`), so both
paths tune identically; the storage checks both paths run live here too.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy

from tle_kedro.training.config import TuningConfig
from tle_kedro.training.cv_data import CVData, Split, check_folds, fold_splits, neural_fit_inputs
from tle_kedro.training.parallel import ExecutorConfig, open_executor
from tle_kedro.training.specs import ModelSpec
from tle_kedro.training.tuning import TuningResult, fold_study_name, tune_hyperparameters

FoldParams = dict[tuple[int, int], dict[str, Any]]
_FOLD_KEY = re.compile(r"r(?P<repeat>\d+)-f(?P<fold>\d+)")


def tune_folds(
    spec: ModelSpec,
    data: CVData,
    tuning: TuningConfig,
    executor: ExecutorConfig | None = None,
    on_study_end: Callable[[TuningResult], None] | None = None,
) -> FoldParams:
    """The best hyperparameters of ``spec``'s study in every outer fold of ``data.folds``.

    Returns ``{(repeat, fold): {"train.lr": ..., ...}}`` (``{}`` for a fold whose study has
    no complete trial, and for every fold when ``tuning.enabled`` is false: the configured
    values are used). Studies run where ``executor`` says (``training.parallel``: a Dask
    cluster; None: inline); ``on_study_end`` is called in this process as each finishes.
    """
    check_folds(data.folds, data.clinical)
    splits = fold_splits(data.folds)
    if not tuning.enabled:
        return {(repeat, fold): {} for repeat, fold, _, _ in splits}
    if spec.family != "neural":
        raise ValueError(f"model {spec.name!r} ({spec.family}) has no Optuna study")
    out: FoldParams = {}
    with open_executor(executor, data) as (pool, shared):
        futures = [pool.submit(tune_fold_task, shared, spec, split, tuning) for split in splits]
        for split, future in zip(splits, futures, strict=True):
            result: TuningResult = future.result()
            if on_study_end is not None:
                on_study_end(result)
            out[split[:2]] = dict(result.params)
    return out


def fold_key(repeat: int, fold: int) -> str:
    """``r{repeat}-f{fold}``: how a fold is named in a JSON dataset and in MLflow."""
    return f"r{repeat}-f{fold}"


def to_json(params: Mapping[tuple[int, int], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{(0, 1): {...}}`` → ``{"r0-f1": {...}}`` (JSON keys are strings)."""
    return {fold_key(r, f): dict(p) for (r, f), p in sorted(params.items())}


def from_json(raw: Mapping[str, Mapping[str, Any]]) -> FoldParams:
    """Inverse of :func:`to_json`; a key that is not ``r<int>-f<int>`` is a ValueError."""
    out: FoldParams = {}
    for key, params in raw.items():
        match = _FOLD_KEY.fullmatch(key)
        if match is None:
            raise ValueError(f"tuned_params: fold key {key!r} is not 'r<repeat>-f<fold>'")
        out[(int(match["repeat"]), int(match["fold"]))] = dict(params)
    return out


def tune_fold_task(
    data: CVData, lead: ModelSpec, split: Split, tuning: TuningConfig
) -> TuningResult:
    """The outer fold's Optuna study (in a worker); trials are logged by the caller."""
    repeat, fold, train_ids, _ = split
    create_optuna_schema(tuning.storage)
    return tune_hyperparameters(
        neural_fit_inputs(lead, data, train_ids),
        tuning,
        study_name=fold_study_name(tuning.study_name, repeat, fold),
        log_to_mlflow=False,
    )


def create_optuna_schema(url: str | None, attempts: int = 3) -> None:
    """Create Optuna's tables in the storage ``url`` if it is new, beside concurrent creators.

    Two workers whose first studies start together on a fresh database both create the
    tables and stamp the schema version; the later one failed with ``IntegrityError: UNIQUE
    constraint failed: alembic_version.version_num`` (2-worker cluster, SQLite, in the
    test suite). Once the first one has committed the schema is complete: open it again.
    None (studies in memory): nothing to create.
    """
    if url is None:
        return
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        try:
            optuna.storages.RDBStorage(url)
            return
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as exc:
            if attempt == attempts - 1 or not _lost_schema_race(exc):
                raise
            time.sleep(0.5 * (attempt + 1))


def _lost_schema_race(exc: Exception) -> bool:
    text = str(exc)
    return "alembic_version" in text or "already exists" in text or "database is locked" in text


def check_storage_reachable(tuning: TuningConfig | None, executor: ExecutorConfig | None) -> None:
    """Raise ValueError if the studies would run on another machine with a relative SQLite file.

    The studies run on the workers; a relative path is resolved in each remote worker's
    working directory, so their trials would land in files the run never reads.
    """
    if tuning is None or executor is None or executor.scheduler_address is None:
        return
    storage = tuning.storage
    if (
        storage is not None
        and storage.startswith("sqlite:///")
        and not storage.removeprefix("sqlite:///").startswith("/")
    ):
        raise ValueError(
            f"modeling.tuning.storage {storage!r} is relative to each Dask worker's working "
            f"directory, but the studies run on {executor.scheduler_address}: use a database "
            "server (docs/scaling_out.md, section 2) or an absolute path on a shared file system"
        )
