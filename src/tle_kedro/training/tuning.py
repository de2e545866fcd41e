"""Optuna tuning of a neural model inside a training fold (nested cross-validation).

How tuning meets the outer folds: a study is run **per outer fold** on that fold's training
patients only (study ``<name>-r{repeat}-f{fold}-<key>``); each trial fits on the inner-training part
and is scored (and pruned, epoch by epoch, by a median pruner) on the inner validation part.
Tuning once and reusing the result in other folds would let those folds' test patients shape
the hyperparameters, so it is not done. The final model gets its own study on all patients
(``<name>-final-<key>``). The default budget is small so this stays cheap on a CPU.

``<key>`` (:func:`study_key`) fingerprints what the trials measure: the training patients
(ids, clinical rows, image tensors), the model and training configuration, the trial
settings and the package version. A study is only ever resumed by a run that would measure
the same thing: another cohort, fold split, configuration or code version gets a study of
its own instead of silently reusing trials scored on something else.

Storage is an RDB URL (a Kedro run's is the catalog's ``optuna_storage``, by default
``data/06_models/optuna.db``; None: in memory, for one call); the study is created once and
loaded by every later call: re-running resumes it and adds ``n_trials`` more. To scale
out, point ``storage`` at a server (``postgresql+psycopg2://…``) and start the same run in
several worker processes: they share the study (tests/servers/test_optuna_postgres.py).
This module holds the project's only direct MLflow calls: one nested run per trial, only when
a parent run is active (otherwise a trial run would be a top-level run that loses its parent).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from pydantic import BaseModel, ValidationError

from tle_kedro import __version__
from tle_kedro.training.config import ParamRange, TrainConfig, TuningConfig
from tle_kedro.training.fit import FitInputs, fit_neural_model

logger = logging.getLogger(__name__)

METRIC_NAME = "inner_val_harrell_c"


def fold_study_name(base: str, repeat: int, fold: int) -> str:
    """Study of one outer fold: ``<base>-r{repeat}-f{fold}``."""
    return f"{base}-r{repeat}-f{fold}"


def final_study_name(base: str) -> str:
    """Study of the final model refitted on every patient: ``<base>-final``."""
    return f"{base}-final"


# What changes what a trial measures. Not in the key: the sampler seed, budget (n_trials,
# timeout), storage, heartbeat and logging, and the device: workers on other machines, with
# their own seeds and budgets, add trials to one study (docs/scaling_out.md).
_KEYED_TUNING_FIELDS = {
    "inner_val_fraction",
    "score",
    "epochs",
    "pruner_startup_trials",
    "pruner_warmup_epochs",
    "enqueue_base",
    "search_space",
}
_UNKEYED_TRAIN_FIELDS = {"progress", "device"}
KEY_LENGTH = 10


def study_key(inputs: FitInputs, config: TuningConfig) -> str:
    """Fingerprint (10 hex digits) of what a study's trials are scored on (module docstring).

    Hashes the sorted training ids, their clinical rows and image tensors, the model kind and
    configuration, the training configuration (not ``progress``/``device``), the trial
    settings of ``config`` (not its seed, budget or storage) and the package version.
    """
    ids = sorted(str(i) for i in inputs.train_ids)
    digest = hashlib.sha256()
    described = {
        "code": __version__,
        "kind": inputs.kind,
        "model": _dump(inputs.model_config),
        "train": inputs.train_config.model_dump(mode="json", exclude=_UNKEYED_TRAIN_FIELDS),
        "tuning": config.model_dump(mode="json", include=_KEYED_TUNING_FIELDS),
        "train_ids": ids,
    }
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    rows = inputs.table.assign(participant_id=inputs.table["participant_id"].astype(str))
    rows = rows.set_index("participant_id").loc[ids]
    rows = rows.reindex(columns=sorted(rows.columns, key=str))
    digest.update(pd.util.hash_pandas_object(rows, index=True).to_numpy().tobytes())
    volumes = inputs.image_tensors.subset(ids).volumes  # the training patients, in id order
    digest.update(np.ascontiguousarray(volumes).tobytes())
    return digest.hexdigest()[:KEY_LENGTH]


def _dump(config: Any) -> Any:
    return config.model_dump(mode="json") if isinstance(config, BaseModel) else config


@dataclass(frozen=True)
class TuningResult:
    """Best hyperparameters of a study and the configurations they give."""

    study_name: str
    params: dict[str, Any]
    best_value: float
    n_trials: int
    model_config: Any
    train_config: TrainConfig
    trials: tuple[optuna.trial.FrozenTrial, ...] = ()


def suggest(trial: optuna.Trial, space: dict[str, ParamRange]) -> dict[str, Any]:
    """Draw one value per dotted path of ``space``."""
    params: dict[str, Any] = {}
    for name, r in space.items():
        if r.choices is not None:
            params[name] = trial.suggest_categorical(name, r.choices)
        elif r.integer:
            params[name] = trial.suggest_int(name, int(r.low or 0), int(r.high or 0), log=r.log)
        else:
            params[name] = trial.suggest_float(
                name, float(r.low or 0), float(r.high or 0), log=r.log
            )
    return params


def _set_path(tree: dict[str, Any], path: list[str], value: Any, where: str) -> None:
    node = tree
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            raise ValueError(f"tuning.search_space: {where!r} has no section {key!r}")
        node = node[key]
    if path[-1] not in node:
        raise ValueError(
            f"tuning.search_space: {where!r} names no field (known: {sorted(node)[:20]})"
        )
    node[path[-1]] = value


def _updated(config: BaseModel, params: dict[str, Any], root: str) -> Any:
    tree = config.model_dump()
    for name, value in params.items():
        parts = name.split(".")
        if parts[0] == root:
            _set_path(tree, parts[1:], value, name)
    try:
        return type(config).model_validate(tree)
    except ValidationError as exc:
        raise ValueError(
            f"tuning: parameters {params} give an invalid {root} config: {exc}"
        ) from exc


def apply_params(
    model_config: Any, train_config: TrainConfig, params: dict[str, Any]
) -> tuple[Any, TrainConfig]:
    """Merge ``{"model.<field>": v, "train.<field>": v}`` into copies of both configs."""
    if not isinstance(model_config, BaseModel) and any(k.startswith("model.") for k in params):
        raise ValueError(f"tuning model.* needs a pydantic model config, got {type(model_config)}")
    new_model = (
        _updated(model_config, params, "model")
        if isinstance(model_config, BaseModel)
        else model_config
    )
    return new_model, _updated(train_config, params, "train")


def open_study(config: TuningConfig, study_name: str) -> tuple[optuna.Study, bool]:
    """Create or resume the study in ``config.storage``; True when this call created it.

    Creation is atomic in the storage (study names are unique), so of several workers that
    open a fresh study at once exactly one is told it created it: only that one enqueues the
    configured values (two workers that each saw 0 trials would both enqueue them).
    """
    url = config.storage
    if url is not None and url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    storage_kwargs: dict[str, Any] = {}
    if url is not None and config.heartbeat_interval_s is not None:
        # A trial whose worker stopped beating for 2 intervals is marked FAIL by the next
        # trial of any worker and queued again once (a killed worker's trial is retried).
        storage_kwargs = {
            "heartbeat_interval": config.heartbeat_interval_s,
            "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=1
            ),
        }
    storage: optuna.storages.BaseStorage = (
        optuna.storages.InMemoryStorage()
        if url is None
        else optuna.storages.RDBStorage(url, **storage_kwargs)
    )
    try:
        done = len(optuna.load_study(study_name=study_name, storage=storage).trials)
    except KeyError:
        done = 0
    # Offset the sampler seed by the trials already run, so a resumed study does not redraw
    # the same start-up points.
    sampler = optuna.samplers.TPESampler(seed=config.seed + done)
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=config.pruner_startup_trials,
        n_warmup_steps=config.pruner_warmup_epochs,
    )
    try:
        study = optuna.create_study(
            study_name=study_name,
            storage=storage,
            direction="maximize",
            sampler=sampler,
            pruner=pruner,
        )
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(
            study_name=study_name, storage=storage, sampler=sampler, pruner=pruner
        ), False
    return study, True


class _NestedTrialRun:
    """Optuna study callback: one nested MLflow run per finished trial under ``parent``.

    Replaces ``optuna_integration.mlflow.MLflowCallback``, deprecated since Optuna 4.9 (removal
    in 6.0). It also logs the per-epoch inner-validation C as metric history.
    """

    def __init__(self, parent_run_id: str, experiment_id: str, study_name: str) -> None:
        self.parent_run_id = parent_run_id
        self.experiment_id = experiment_id
        self.study_name = study_name

    def __call__(self, study: optuna.Study | None, trial: optuna.trial.FrozenTrial) -> None:
        import mlflow

        active = mlflow.active_run()
        if active is None or active.info.run_id != self.parent_run_id:
            logger.warning("MLflow parent run changed: trial %d not logged", trial.number)
            return
        with mlflow.start_run(
            run_name=f"{self.study_name}-trial-{trial.number}",
            experiment_id=self.experiment_id,
            nested=True,
            tags={"optuna_study": self.study_name, "optuna_state": trial.state.name},
        ):
            mlflow.log_params(trial.params)
            for epoch, value in sorted(trial.intermediate_values.items()):
                mlflow.log_metric("val_c", value, step=epoch)
            if trial.value is not None:
                mlflow.log_metric(METRIC_NAME, trial.value)


def mlflow_trial_callbacks(config: TuningConfig, study_name: str) -> list[Callable[..., None]]:
    """One nested MLflow run per finished trial, only under an active parent run.

    Without an active run a trial run would become a top-level run that loses its parent
    (the known trap of Optuna's MLflow callback), so nothing is logged then.
    """
    if not config.mlflow_nested_runs:
        return []
    import mlflow

    parent = mlflow.active_run()
    if parent is None:
        logger.info("no active MLflow run: Optuna trials of %s are not logged", study_name)
        return []
    return [_NestedTrialRun(parent.info.run_id, parent.info.experiment_id, study_name)]


def log_trials(config: TuningConfig, result: TuningResult) -> None:
    """Nested MLflow runs for the trials of a study run elsewhere (a worker process)."""
    for callback in mlflow_trial_callbacks(config, result.study_name):
        for trial in result.trials:
            callback(None, trial)


def base_point(
    space: dict[str, ParamRange], model_config: Any, train_config: TrainConfig
) -> dict[str, Any] | None:
    """The configured values of every tuned path, or None if one lies outside its range.

    Enqueued as a fresh study's first trial, so a small budget compares the configured
    defaults with what the sampler proposes instead of replacing them by a random draw.
    """
    trees = {"train": train_config.model_dump()}
    if isinstance(model_config, BaseModel):
        trees["model"] = model_config.model_dump()
    point: dict[str, Any] = {}
    for name, r in space.items():
        root, *path = name.split(".")
        node: Any = trees.get(root)
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        inside = (
            node in r.choices
            if r.choices is not None
            else isinstance(node, int | float) and float(r.low or 0) <= node <= float(r.high or 0)
        )
        if not inside:
            logger.info("tuning: configured %s=%r is outside the search space", name, node)
            return None
        point[name] = node
    return point


def trial_score(history: list[dict[str, float]], score: str, last: int = 3) -> float:
    """A trial's inner-validation C: ``max`` over epochs, or ``final``: the mean of the last
    ``last`` epochs, which matches final fits on a fixed schedule (no early stopping) and is
    less optimistic than a single best epoch on a small split."""
    values = [h["val_c"] for h in history if not math.isnan(h["val_c"])]
    if not values:
        return math.nan
    return max(values) if score == "max" else sum(values[-last:]) / len(values[-last:])


def _pruning_hook(trial: optuna.Trial) -> Callable[[int, float], bool]:
    def hook(epoch: int, val_c: float) -> bool:
        if math.isnan(val_c):
            return False
        trial.report(val_c, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} (val C {val_c:.3f})")
        return False

    return hook


def tune_hyperparameters(
    inputs: FitInputs,
    config: TuningConfig,
    study_name: str,
    log_to_mlflow: bool = True,
) -> TuningResult:
    """Run (or resume) ``<study_name>-<study_key>`` on ``inputs.train_ids`` only; return the
    best configuration (``result.study_name`` is the keyed name).

    Each trial fits ``inputs`` with drawn hyperparameters on the inner-training split of
    its training patients and maximises the best inner-validation Harrell C; it reports val C every
    epoch so the median pruner can stop poor trials early. ``config.epochs`` (if set)
    overrides the trial length. Budget: ``n_trials`` more trials and/or ``timeout_s``.
    A fresh study's first trial is the configured values (``base_point``) when
    ``config.enqueue_base``. ``result.trials`` are the trials this call ran (not those that
    other workers added to a shared study meanwhile); ``log_to_mlflow=False``: the caller
    logs them.
    """
    # Trials are scored on an inner validation split even when the final fits use the whole
    # training fold (train.inner_val_fraction = 0), and each trial is one network even when
    # the final fits are ensembles (train.ensemble > 1) of snapshots (train.snapshots > 1):
    # the study compares hyperparameters by the history, which neither needs, nor a
    # recalibration.
    model_config, train_config = inputs.model_config, inputs.train_config
    base_train = train_config.model_copy(
        update={
            "progress": False,
            "inner_val_fraction": config.inner_val_fraction,
            "ensemble": 1,
            "snapshots": 1,
            "recalibrate": False,
        }
    )
    if config.epochs is not None:
        warm = min(base_train.warmup_epochs, max(0, config.epochs - 1))
        base_train = base_train.model_copy(update={"epochs": config.epochs, "warmup_epochs": warm})
    apply_params(model_config, base_train, {})  # fail fast on an invalid base
    study_name = f"{study_name}-{study_key(inputs, config)}"

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, dict(config.search_space))
        mc, tc = apply_params(model_config, base_train, params)
        fitted = fit_neural_model(
            inputs.with_configs(mc, tc),
            on_epoch_end=_pruning_hook(trial),
            desc=f"{study_name} trial {trial.number}",
        )
        return trial_score(fitted.history, config.score)

    study, created = open_study(config, study_name)
    if created and config.enqueue_base:
        point = base_point(dict(config.search_space), model_config, base_train)
        if point is not None:
            study.enqueue_trial(point)
    # The trials this process ran: other workers on a shared storage add theirs meanwhile.
    mine: list[int] = []
    study.optimize(
        objective,
        n_trials=config.n_trials,
        timeout=config.timeout_s,
        callbacks=[
            lambda _, trial: mine.append(trial.number),
            *(mlflow_trial_callbacks(config, study_name) if log_to_mlflow else []),
        ],
        gc_after_trial=True,
    )
    result = _result(study, model_config, train_config)
    ran = tuple(t for t in study.trials if t.number in mine)
    return replace(result, trials=ran)


def _result(study: optuna.Study, model_config: Any, train_config: TrainConfig) -> TuningResult:
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        logger.warning(
            "study %s has no complete trial: keeping the base configuration", study.study_name
        )
        return TuningResult(
            study.study_name, {}, math.nan, len(study.trials), model_config, train_config
        )
    best = study.best_trial
    mc, tc = apply_params(model_config, train_config, best.params)
    logger.info("study %s: best %.3f with %s", study.study_name, best.value, best.params)
    return TuningResult(
        study.study_name,
        dict(best.params),
        float(best.value or math.nan),
        len(study.trials),
        mc,
        tc,
    )
