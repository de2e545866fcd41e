"""One Optuna study per outer fold, on its own: the tuned hyperparameters as data.

``run_cross_validation`` can tune and fit in one call; the Kedro ``modeling`` pipeline
instead runs a model's studies in a node of their own, so that the tuned values are a
dataset (``transeprelap.tuned_params``) that the model's fits and its ablations' fits read
(the ablations reuse TransEpRelap's study of the same fold, ``ModelSpec.tune_with``). A study
here is the same worker task as in ``run_cross_validation`` (``cv._tune_task``), so both
paths tune identically.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tle_kedro.training.config import TuningConfig
from tle_kedro.training.cv import CVData, _splits, _tune_task, check_folds
from tle_kedro.training.parallel import ExecutorConfig, open_executor
from tle_kedro.training.specs import ModelSpec
from tle_kedro.training.tuning import TuningResult

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
    splits = _splits(data.folds)
    if not tuning.enabled:
        return {(repeat, fold): {} for repeat, fold, _, _ in splits}
    if spec.family != "neural":
        raise ValueError(f"model {spec.name!r} ({spec.family}) has no Optuna study")
    out: FoldParams = {}
    with open_executor(executor, data) as (pool, shared):
        futures = [pool.submit(_tune_task, shared, spec, split, tuning) for split in splits]
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
