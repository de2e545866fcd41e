"""Optuna tuning inside a training fold: resumable storage, pruning, config merging."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.conftest import one_torch_thread
from tests.training import ONE_NETWORK, tiny_cohort, use_tiny_fit_loop
from tle_kedro.features.clinical import ClinicalTokenizer
from tle_kedro.models.config import ModelConfig
from tle_kedro.training import loop, tuning
from tle_kedro.training.config import ParamRange, TrainConfig, TuningConfig
from tle_kedro.training.fit import FitInputs
from tle_kedro.training.tuning import apply_params, fold_study_name, tune_hyperparameters

COHORT = tiny_cohort(16)
IDS = list(COHORT.clinical["participant_id"])
SPACE = {
    "train.lr": ParamRange(low=1e-3, high=1e-1, log=True),
    "train.weight_decay": ParamRange(choices=[0.0, 0.01]),
}


@pytest.fixture(autouse=True)
def _tiny(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with one_torch_thread():
        use_tiny_fit_loop(monkeypatch)
        yield


def _tune(tmp_path: Path, name: str = "s", **kw: Any) -> tuning.TuningResult:
    config = TuningConfig(
        storage=f"sqlite:///{tmp_path}/sub/optuna.db",
        study_name=name,
        search_space=SPACE,
        **{"n_trials": 2, "epochs": 3, "pruner_warmup_epochs": 0, **kw},
    )
    train = TrainConfig(
        **ONE_NETWORK, epochs=3, lr=1e-3, warmup_epochs=0, device="cpu", progress=False
    )
    return tune_hyperparameters(_inputs(train), config, study_name=fold_study_name(name, 0, 1))


def _inputs(train: TrainConfig) -> FitInputs:
    return FitInputs("tiny", None, train, IDS, COHORT.images, COHORT.clinical, ClinicalTokenizer())


def _only_study(tmp_path: Path) -> optuna.Study:
    """The one study in the test storage (its name ends in the study key)."""
    storage = f"sqlite:///{tmp_path}/sub/optuna.db"
    (name,) = optuna.get_all_study_names(storage)
    assert name.startswith("s-r0-f1-") and len(name) == len("s-r0-f1-") + tuning.KEY_LENGTH
    return optuna.load_study(study_name=name, storage=storage)


def _key(inputs: FitInputs | None = None, **tuning_kw: Any) -> str:
    train = TrainConfig(**ONE_NETWORK, epochs=3, device="cpu", progress=False)
    return tuning.study_key(inputs or _inputs(train), TuningConfig(**tuning_kw))


def test_the_study_key_follows_what_the_trials_are_scored_on() -> None:
    train = TrainConfig(**ONE_NETWORK, epochs=3, device="cpu", progress=False)
    base = _inputs(train)
    key = _key(base)
    assert len(key) == tuning.KEY_LENGTH and key == _key(_inputs(train))  # deterministic
    # the same study for workers with their own seeds, budgets, storages, devices
    assert _key(base, seed=1001, n_trials=40, timeout_s=None, storage="sqlite:///x.db") == key
    quiet = train.model_copy(update={"progress": True, "device": "cuda"})
    assert _key(base.with_configs(None, quiet)) == key
    assert _key(replace(base, train_ids=list(reversed(IDS)))) == key  # a set of patients
    # another study for anything that changes a trial's score
    images = COHORT.images
    volumes = images.volumes.copy()
    volumes[IDS.index(IDS[3]), 1, 2, 2, 2] += 1.0
    clinical = COHORT.clinical.copy()
    clinical.loc[clinical["participant_id"] == IDS[5], "time_months"] += 1.0
    other = {
        "fewer patients": replace(base, train_ids=IDS[1:]),
        "another image": replace(base, image_tensors=replace(images, volumes=volumes)),
        "another outcome": replace(base, table=clinical),
        "another lr": base.with_configs(None, train.model_copy(update={"lr": 0.02})),
        "another model": base.with_configs({"d_model": 8}, train),
        "another kind": replace(base, kind="resnet_image"),
    }
    keys = {what: _key(inputs) for what, inputs in other.items()}
    keys["another trial length"] = _key(base, epochs=4)
    keys["another space"] = _key(base, search_space={"train.lr": ParamRange(low=1e-4, high=1e-2)})
    assert key not in keys.values() and len(set(keys.values())) == len(keys), keys


def test_a_study_on_other_patients_is_not_resumed(tmp_path: Path) -> None:
    first = _tune(tmp_path)
    storage = f"sqlite:///{tmp_path}/sub/optuna.db"
    config = TuningConfig(storage=storage, study_name="s", search_space=SPACE, n_trials=1,
                          epochs=3, pruner_warmup_epochs=0)  # fmt: skip
    train = TrainConfig(
        **ONE_NETWORK, epochs=3, lr=1e-3, warmup_epochs=0, device="cpu", progress=False
    )
    fewer = replace(_inputs(train), train_ids=IDS[2:])
    second = tune_hyperparameters(fewer, config, study_name=fold_study_name("s", 0, 1))
    assert second.study_name != first.study_name and second.n_trials == 1
    assert sorted(optuna.get_all_study_names(storage)) == sorted(
        [first.study_name, second.study_name]
    )
    assert len(optuna.load_study(study_name=first.study_name, storage=storage).trials) == 2


def test_an_interrupted_study_resumes_in_its_storage(tmp_path: Path) -> None:
    first = _tune(tmp_path)
    assert first.study_name.startswith("s-r0-f1-") and first.n_trials == 2
    second = _tune(tmp_path)
    study = _only_study(tmp_path)
    assert len(study.trials) == 4 and second.n_trials == 4
    assert second.train_config.lr == study.best_params["train.lr"]
    assert second.train_config.epochs == 3  # the base length, not the trial length


def test_trials_report_every_epoch_for_the_pruner(tmp_path: Path) -> None:
    _tune(tmp_path, n_trials=1)
    study = _only_study(tmp_path)
    trial = study.trials[0]
    assert sorted(trial.intermediate_values) == [0, 1, 2]
    assert trial.value == max(trial.intermediate_values.values())


def test_a_poor_trial_is_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scores = iter([0.9, 0.9, 0.9, 0.1, 0.1, 0.1])
    real = loop.harrell_c
    monkeypatch.setattr(loop, "harrell_c", lambda r, e, t: next(scores, real(r, e, t)))
    _tune(tmp_path, pruner_startup_trials=1)
    study = _only_study(tmp_path)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]


def test_params_merge_into_both_configs_and_unknown_fields_are_named() -> None:
    model, train = ModelConfig(), TrainConfig()
    m, t = apply_params(model, train, {"model.n_intra_layers": 2, "train.lr": 0.005})
    assert (m.n_intra_layers, t.lr) == (2, 0.005)
    assert (model.n_intra_layers, train.lr) == (1, 3e-3)  # inputs are not mutated
    with pytest.raises(ValueError, match="model.depth"):
        apply_params(model, train, {"model.depth": 3})
    with pytest.raises(ValueError, match="invalid model config"):
        apply_params(model, train, {"model.d_model": 30, "model.n_heads": 4})


def test_default_search_space_fits_the_model_config() -> None:
    config = TuningConfig()
    low = {k: (r.choices[-1] if r.choices else r.low) for k, r in config.search_space.items()}
    m, t = apply_params(ModelConfig(), TrainConfig(), low)
    assert m.d_model == 64 and t.weight_decay == pytest.approx(1e-4)


def test_trials_are_not_logged_without_an_active_mlflow_run() -> None:
    import mlflow

    assert mlflow.active_run() is None
    assert tuning.mlflow_trial_callbacks(TuningConfig(), "s") == []


def test_trials_become_nested_runs_under_the_active_run(tmp_path: Path) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        with mlflow.start_run() as parent:
            _tune(tmp_path, n_trials=1)
        runs = mlflow.search_runs([parent.info.experiment_id], output_format="list")
    finally:
        mlflow.set_tracking_uri(None)
    children = [r for r in runs if r.info.run_id != parent.info.run_id]
    assert len(children) == 1
    assert children[0].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "inner_val_harrell_c" in children[0].data.metrics
    history = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_metric_history(
        children[0].info.run_id, "val_c"
    )
    assert [m.step for m in history] == [0, 1, 2]


def test_a_fresh_study_first_tries_the_configured_values(tmp_path: Path) -> None:
    result = _tune(tmp_path, n_trials=2)
    first = result.trials[0]
    assert first.number == 0
    assert first.params == {"train.lr": 1e-3, "train.weight_decay": 0.01}  # TrainConfig defaults
    assert len(result.trials) == 2 and result.trials[1].params != first.params


def test_a_resumed_study_does_not_enqueue_the_configured_values_again(tmp_path: Path) -> None:
    _tune(tmp_path, n_trials=1)
    again = _tune(tmp_path, n_trials=1)
    assert [t.number for t in again.trials] == [1]
    assert again.trials[0].params != {"train.lr": 1e-3, "train.weight_decay": 0.01}


def test_configured_values_outside_the_space_are_not_enqueued() -> None:
    space = {"train.lr": ParamRange(low=1e-2, high=1e-1, log=True)}
    assert tuning.base_point(space, None, TrainConfig(lr=1e-3)) is None
    assert tuning.base_point(space, None, TrainConfig(lr=2e-2)) == {"train.lr": 2e-2}
    choice = {"model.d_model": ParamRange(choices=[32, 64])}
    assert tuning.base_point(choice, ModelConfig(d_model=32), TrainConfig()) == {
        "model.d_model": 32
    }


def test_trials_are_scored_on_an_inner_split_even_when_fits_use_the_whole_fold(
    tmp_path: Path,
) -> None:
    config = TuningConfig(
        storage=f"sqlite:///{tmp_path}/optuna.db",
        search_space=SPACE,
        n_trials=1,
        epochs=2,
        inner_val_fraction=0.25,
    )
    train = TrainConfig(
        **ONE_NETWORK, epochs=3, warmup_epochs=0, device="cpu", inner_val_fraction=0.0
    )
    result = tune_hyperparameters(_inputs(train), config, "s")
    assert 0.0 <= result.best_value <= 1.0  # a C-index, not NaN: there was a validation set
    assert result.train_config.inner_val_fraction == 0.0  # the fits keep the whole fold


def test_trials_run_elsewhere_are_logged_as_nested_runs_by_the_caller(tmp_path: Path) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        with mlflow.start_run() as parent:
            result = _tune(tmp_path, n_trials=2)  # logs live (in-process)
            quiet = tune_hyperparameters(
                _inputs(
                    TrainConfig(
                        **ONE_NETWORK, epochs=2, warmup_epochs=0, device="cpu", progress=False
                    )
                ),
                TuningConfig(
                    storage=f"sqlite:///{tmp_path}/q.db", search_space=SPACE, n_trials=1, epochs=2
                ),
                "quiet",
                log_to_mlflow=False,
            )
            before = len(mlflow.search_runs([parent.info.experiment_id], output_format="list"))
            tuning.log_trials(TuningConfig(), quiet)
        runs = mlflow.search_runs([parent.info.experiment_id], output_format="list")
    finally:
        mlflow.set_tracking_uri(None)
    assert before == 1 + len(result.trials)  # the parent and the live-logged trials only
    names = {r.info.run_name for r in runs}
    assert f"{quiet.study_name}-trial-0" in names and len(runs) == before + 1
    assert quiet.study_name.startswith("quiet-")


def test_a_trial_is_scored_by_its_last_epochs_or_its_best_one() -> None:
    history = [{"val_c": c} for c in (0.5, 0.9, float("nan"), 0.6, 0.7, 0.8)]
    assert tuning.trial_score(history, "max") == pytest.approx(0.9)
    assert tuning.trial_score(history, "final") == pytest.approx((0.6 + 0.7 + 0.8) / 3)
    assert math.isnan(tuning.trial_score([{"val_c": float("nan")}], "final"))


def test_each_trial_is_one_network_even_when_the_fits_are_ensembles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, int, bool]] = []
    real = tuning.fit_neural_model

    def spy(inputs: FitInputs, *args: Any, **kw: Any) -> Any:
        tc = inputs.train_config
        seen.append((tc.ensemble, tc.snapshots, tc.recalibrate))
        return real(inputs, *args, **kw)

    monkeypatch.setattr(tuning, "fit_neural_model", spy)
    config = TuningConfig(
        storage=f"sqlite:///{tmp_path}/optuna.db", search_space=SPACE, n_trials=2, epochs=2
    )
    train = TrainConfig(
        epochs=3, warmup_epochs=0, device="cpu", progress=False, ensemble=3, snapshots=2,
        recalibrate=True,
    )  # fmt: skip
    result = tune_hyperparameters(_inputs(train), config, "s")
    assert seen == [(1, 1, False), (1, 1, False)]
    # the fits after the study stay recalibrated ensembles of snapshots
    tc = result.train_config
    assert (tc.ensemble, tc.snapshots, tc.recalibrate) == (3, 2, True)
