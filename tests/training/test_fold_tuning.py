"""Per-fold studies on their own (the modeling pipeline's ``tune`` node) tune like
``run_cross_validation`` does inside, and their values reach the fits of other models."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import optuna
import pandas as pd
import pytest

from tests.conftest import one_torch_thread
from tests.training import use_tiny_fit_loop
from tests.training.test_cv import TRAIN, _data, _folds
from tle_kedro.training.config import ParamRange, TuningConfig
from tle_kedro.training.cv import run_cross_validation
from tle_kedro.training.fold_tuning import from_json, to_json, tune_folds
from tle_kedro.training.specs import ModelSpec

LEAD = ModelSpec("tiny", "neural", kind="tiny", train_config=TRAIN, tune_with="tiny")
ABLATION = ModelSpec("tiny_ablation", "neural", kind="tiny", train_config=TRAIN, tune_with="tiny")


@pytest.fixture(autouse=True)
def _tiny(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with one_torch_thread():
        use_tiny_fit_loop(monkeypatch)
        yield


def _tuning(storage: str | None) -> TuningConfig:
    return TuningConfig(
        storage=storage,
        study_name="tep",
        n_trials=2,
        epochs=2,
        search_space={"train.lr": ParamRange(low=1e-3, high=1e-2, log=True)},
    )


def test_studies_in_their_own_step_give_the_same_fits_as_inside_cross_validation(
    tmp_path: Path,
) -> None:
    data = _data(_folds(n_repeats=1, n_folds=2))
    inside = run_cross_validation(
        [LEAD, ABLATION], data, tuning=_tuning(f"sqlite:///{tmp_path}/a.db"), keep_models=True
    )
    storage = f"sqlite:///{tmp_path}/b.db"
    tuned = tune_folds(LEAD, data, _tuning(storage))
    assert len(optuna.get_all_study_names(storage)) == 2  # one study per outer fold
    # The fits read the tuned values as data (JSON in the catalog), no study of their own.
    given = from_json(to_json(tuned))
    apart = run_cross_validation(
        [replace(LEAD, tune_with=None), replace(ABLATION, tune_with=None)],
        data,
        keep_models=True,
        fold_params=given,
    )
    assert len(optuna.get_all_study_names(storage)) == 2
    for (name, repeat, fold), params in inside.tuned_params.items():
        assert params and apart.tuned_params[(name, repeat, fold)] == params
        assert apart.models[(name, repeat, fold)].train_config.lr == params["train.lr"]
    pd.testing.assert_frame_equal(apart.oof, inside.oof)


def test_without_tuning_every_fold_keeps_the_configured_values() -> None:
    data = _data(_folds(n_repeats=2, n_folds=2))
    off = _tuning(None).model_copy(update={"enabled": False})
    assert tune_folds(LEAD, data, off) == {(r, f): {} for r in (0, 1) for f in (0, 1)}


def test_an_in_memory_study_needs_no_storage() -> None:
    tuned = tune_folds(LEAD, _data(_folds(n_repeats=1, n_folds=2)), _tuning(None))
    assert set(tuned) == {(0, 0), (0, 1)} and all("train.lr" in p for p in tuned.values())


def test_fold_keys_round_trip_and_a_bad_key_is_named() -> None:
    params = {(0, 1): {"train.lr": 0.01}, (1, 0): {}}
    assert to_json(params) == {"r0-f1": {"train.lr": 0.01}, "r1-f0": {}}
    assert from_json(to_json(params)) == params
    with pytest.raises(ValueError, match="'fold-1' is not 'r<repeat>-f<fold>'"):
        from_json({"fold-1": {}})
