"""Cross-validation of every model on the same folds, fitted inside training folds only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin

from tests.conftest import one_torch_thread
from tests.training import ONE_NETWORK, tiny_cohort, use_tiny_fit_loop
from tle_kedro.features.clinical import ClinicalTokenizer, make_clinical_recipe
from tle_kedro.training.config import ClassicalConfig, ParamRange, TrainConfig, TuningConfig
from tle_kedro.training.cv import CVData, FoldReport, run_cross_validation
from tle_kedro.training.final import fit_final_model
from tle_kedro.training.specs import ModelSpec

COHORT = tiny_cohort(18, shape=(8, 8, 8))
IDS = list(COHORT.clinical["participant_id"])
FITTED_ON: list[tuple[str, frozenset[str]]] = []
TRAIN = TrainConfig(**ONE_NETWORK, epochs=2, warmup_epochs=0, device="cpu", progress=False)
CLASSICAL = ClassicalConfig(rsf_n_estimators=10, rsf_min_samples_leaf=3)


class SpyTokenizer(ClinicalTokenizer):
    def fit(self, df: pd.DataFrame, y: Any = None) -> SpyTokenizer:
        FITTED_ON.append(("tokenizer", frozenset(df["participant_id"])))
        return super().fit(df)


class SpyRecipe(BaseEstimator, TransformerMixin):
    def __init__(self, inner: Any = None) -> None:
        self.inner = inner

    def fit(self, df: pd.DataFrame, y: Any = None) -> SpyRecipe:
        FITTED_ON.append(("recipe", frozenset(df["participant_id"])))
        self.inner_ = make_clinical_recipe().fit(df)
        return self

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        return self.inner_.transform(df)


@pytest.fixture(autouse=True)
def _tiny(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with one_torch_thread():
        use_tiny_fit_loop(monkeypatch)
        FITTED_ON.clear()
        yield


def _folds(n_repeats: int = 2, n_folds: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.concat(
        pd.DataFrame({"participant_id": IDS, "repeat": r, "fold": rng.permutation(18) % n_folds})
        for r in range(n_repeats)
    )


def _data(folds: pd.DataFrame) -> CVData:
    features = pd.DataFrame(
        {
            "participant_id": IDS,
            "pet_asym": COHORT.log_hazard,
            "hip_asym": np.r_[np.nan, np.ones(17)],
        }
    )
    return CVData(COHORT.clinical, folds, COHORT.images, features, SpyRecipe(), SpyTokenizer())


SPECS = [
    ModelSpec("cox_clinical", "cox_clinical"),
    ModelSpec("cox_region_measures", "cox_region_measures"),
    ModelSpec("rsf_region_measures", "rsf_region_measures"),
    ModelSpec("tiny", "neural", kind="tiny", train_config=TRAIN),
]


def test_one_oof_row_per_patient_model_and_repeat_on_the_given_folds() -> None:
    folds = _folds()
    reports: list[FoldReport] = []
    result = run_cross_validation(SPECS, _data(folds), CLASSICAL, on_fold_end=reports.append)
    oof = result.oof
    assert list(oof.columns) == [
        "participant_id",
        "model",
        "repeat",
        "fold",
        "risk",
        "surv_12",
        "surv_24",
    ]
    assert len(oof) == 18 * 4 * 2
    assert not oof.duplicated(["participant_id", "model", "repeat"]).any()
    merged = oof.merge(folds, on=["participant_id", "repeat"], suffixes=("", "_cv"))
    assert (merged["fold"] == merged["fold_cv"]).all() and len(merged) == len(oof)
    assert np.isfinite(oof[["risk", "surv_12", "surv_24"]].to_numpy()).all()
    assert len(reports) == 4 * 2 * 3 == len(result.fold_metrics)
    neural = [r for r in reports if r.model == "tiny"]
    assert all(len(r.history) == 2 and "test_harrell_c" in r.metrics for r in neural)
    # neural fits report their calibration slope (1 = not recalibrated), classical ones none
    assert all(0 < r.metrics["calibration_slope"] <= 1 for r in neural)
    assert all("calibration_slope" not in r.metrics for r in reports if r.model != "tiny")
    assert result.models == {}


def test_recipe_and_tokenizer_are_fitted_on_training_ids_only() -> None:
    folds = _folds(n_repeats=1)
    run_cross_validation(SPECS, _data(folds), CLASSICAL)
    test_sets = [set(g["participant_id"]) for _, g in folds.groupby("fold")]
    kinds = [kind for kind, _ in FITTED_ON]
    assert kinds.count("recipe") == 3 * 3 and kinds.count("tokenizer") == 3
    for kind, ids in FITTED_ON:
        own_test = [t for t in test_sets if not ids & t]
        assert len(own_test) == 1, kind  # disjoint from exactly its own test fold
        training = set(IDS) - own_test[0]
        if kind == "recipe":
            assert ids == training
        else:  # the tokenizer sees only the inner-training part of the training fold
            assert ids < training


def test_tuned_models_get_one_study_per_outer_fold(tmp_path: Path) -> None:
    folds = _folds(n_repeats=1, n_folds=2)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    tuning = TuningConfig(
        storage=storage,
        study_name="tep",
        n_trials=1,
        epochs=2,
        search_space={"train.lr": ParamRange(low=1e-3, high=1e-2, log=True)},
    )
    specs = [
        ModelSpec("tiny", "neural", kind="tiny", train_config=TRAIN, tune_with="tiny"),
        ModelSpec("tiny_ablation", "neural", kind="tiny", train_config=TRAIN, tune_with="tiny"),
    ]
    result = run_cross_validation(specs, _data(folds), tuning=tuning, keep_models=True)
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
    # <name>-r<repeat>-f<fold>-<study key>: one study per outer fold (the ablation shares it)
    assert [n.rsplit("-", 1)[0] for n in names] == ["tep-r0-f0", "tep-r0-f1"]
    for f in (0, 1):
        params = result.tuned_params[("tiny", 0, f)]
        assert params == result.tuned_params[("tiny_ablation", 0, f)]
        assert result.models[("tiny", 0, f)].train_config.lr == params["train.lr"]


def test_folds_that_do_not_cover_the_table_are_rejected() -> None:
    folds = _folds(n_repeats=1).iloc[1:]
    with pytest.raises(ValueError, match="without a fold"):
        run_cross_validation(SPECS[:1], _data(folds), CLASSICAL)


def test_a_model_missing_its_inputs_is_named() -> None:
    data = CVData(COHORT.clinical, _folds(1), recipe=make_clinical_recipe())
    with pytest.raises(ValueError, match="'cox_region_measures'.*imaging_features"):
        run_cross_validation(SPECS[:2], data, CLASSICAL)


def test_the_final_model_is_tuned_and_fitted_on_every_patient(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/optuna.db"
    tuning = TuningConfig(
        storage=storage,
        study_name="tep",
        n_trials=1,
        epochs=2,
        search_space={"train.lr": ParamRange(low=1e-3, high=1e-2, log=True)},
    )
    spec = ModelSpec("tiny", "neural", kind="tiny", train_config=TRAIN, tune_with="tiny")
    model, params = fit_final_model(spec, _data(_folds(1)), tuning)
    (name,) = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    assert name.rsplit("-", 1)[0] == "tep-final"
    assert model.train_config.lr == params["train.lr"]
    assert model.train_config.epochs == TRAIN.epochs


def test_pooled_risk_is_the_log_cumulative_hazard_at_24_months_and_keeps_fold_order() -> None:
    from tle_kedro.training.cv import pooled_risk

    log_risk = np.array([-1.0, 0.0, 0.5, 2.0])
    surv_24 = np.exp(-0.3 * np.exp(log_risk))  # Cox: S = exp(-H0(24) e^eta), H0(24) = 0.3
    np.testing.assert_allclose(pooled_risk(surv_24), np.log(0.3) + log_risk)
    assert np.isfinite(pooled_risk(np.array([0.0, 1.0]))).all()
