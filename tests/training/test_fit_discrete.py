"""The fit loop with a discrete-time head (``model.head: discrete``)."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import one_torch_thread
from tests.training import ONE_NETWORK, TinyModel, tiny_cohort, use_tiny_fit_loop
from tle_kedro.evaluation.concordance import harrell_c
from tle_kedro.features.clinical import ClinicalTokenizer
from tle_kedro.models.config import ModelConfig
from tle_kedro.models.discrete import DiscreteTimeSurvival, survival_from_logits
from tle_kedro.models.ensemble import MeanEnsemble
from tle_kedro.training import fit, loop
from tle_kedro.training.config import TrainConfig
from tle_kedro.training.data import make_survival_arrays
from tle_kedro.training.fit import FitInputs, fit_neural_model
from tle_kedro.training.fitted import FittedNeuralModel

BINS = (3.0, 6.0, 12.0, 24.0)
DISCRETE = ModelConfig(grid_shape=(16, 16, 16), head="discrete", time_bins_months=BINS)
COHORT = tiny_cohort(16)
IDS = list(COHORT.clinical["participant_id"])


class TinyDiscrete(TinyModel):
    """TinyModel with one hazard logit per bin."""

    def __init__(self, n_numeric: int) -> None:
        super().__init__(n_numeric)
        self.head = nn.Linear(self.head.in_features, len(BINS) + 1)

    def forward(self, batch: Any) -> torch.Tensor:
        x = torch.relu(self.conv(batch.images)).mean(dim=(2, 3, 4))
        return self.head(torch.cat([x, torch.nan_to_num(batch.clin_num)], dim=1))  # (B, K)


def tiny_discrete(kind: str, config: Any, n_numeric: int, *_: Any, **__: Any) -> nn.Module:
    return DiscreteTimeSurvival(TinyDiscrete(n_numeric), config.time_bins_months)


@pytest.fixture(autouse=True)
def _tiny(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with one_torch_thread():
        use_tiny_fit_loop(monkeypatch)
        monkeypatch.setattr(loop, "build_model", tiny_discrete)
        yield


def _fit(cohort: Any = COHORT, **kw: Any) -> FittedNeuralModel:
    base = {"epochs": 3, "lr": 1e-2, "warmup_epochs": 0, "device": "cpu", "progress": False}
    cfg = TrainConfig(**{**ONE_NETWORK, **base, **kw})
    tok = ClinicalTokenizer()
    return fit_neural_model(
        FitInputs("tiny", DISCRETE, cfg, IDS, cohort.images, cohort.clinical, tok)
    )


def _arrays(model: FittedNeuralModel, cohort: Any = COHORT) -> Any:
    return make_survival_arrays(IDS, cohort.images, model.tokenizer, cohort.clinical)


def test_a_discrete_fit_learns_a_toy_signal_and_its_loss_falls() -> None:
    exact = tiny_cohort(16, exact=True)
    model = _fit(exact, epochs=60, lr=3e-2, inner_val_fraction=0.0)
    arrays = _arrays(model, exact)
    pred = model.predict(arrays)
    assert np.isfinite(pred.risk).all() and np.all(pred.surv_12 >= pred.surv_24)
    assert harrell_c(pred.risk, arrays.event.numpy(), arrays.time.numpy()) > 0.9
    assert model.history[-1]["train_loss"] < model.history[0]["train_loss"]


def test_predictions_come_from_the_head_not_from_a_breslow_baseline() -> None:
    model = _fit(inner_val_fraction=0.3, recalibrate=True)
    assert model.baseline is None and model.time_bins == BINS and model.calibration_slope == 1.0
    arrays = _arrays(model)
    logits = model.logits(arrays)
    assert logits.shape == (len(IDS), 5)
    pred = model.predict(arrays)
    np.testing.assert_allclose(pred.surv_12, survival_from_logits(logits, BINS, 12.0))
    np.testing.assert_allclose(pred.surv_24, survival_from_logits(logits, BINS, 24.0))
    np.testing.assert_allclose(pred.risk, np.log(-np.log(pred.surv_24)), rtol=1e-9)
    np.testing.assert_allclose(model.log_risk(arrays), pred.risk)
    times = np.array([0.0, 3.0, 9.0, 24.0])
    curves = model.survival(arrays, times, risk=pred.risk)
    np.testing.assert_allclose(curves, survival_from_logits(logits, BINS, times))
    # the inner-validation loss is the logistic-hazard loss (a Cox loss per event is larger)
    assert all(np.isfinite(h["val_loss"]) and np.isfinite(h["val_c"]) for h in model.history)


def test_an_ensemble_of_snapshots_mixes_the_members_survival_curves() -> None:
    model = _fit(
        epochs=4, inner_val_fraction=0.3, early_stopping_patience=None, ensemble=2, snapshots=2
    )
    assert isinstance(model.model, MeanEnsemble) and model.model.time_bins == BINS
    arrays = _arrays(model)
    edges = np.array(BINS)
    members = [
        survival_from_logits(loop.predict_logits(m, arrays, fit.resolve_device("cpu")), BINS, edges)
        for m in model.model.members
    ]
    np.testing.assert_allclose(model.survival(arrays, edges), np.mean(members, axis=0), rtol=1e-5)


def test_a_discrete_model_pickles_and_predicts_the_same() -> None:
    model = _fit(inner_val_fraction=0.3, ensemble=2)
    arrays = _arrays(model)
    again = pickle.loads(pickle.dumps(model))
    a, b = model.predict(arrays), again.predict(arrays)
    np.testing.assert_array_equal(a.risk, b.risk)
    np.testing.assert_array_equal(a.surv_12, b.surv_12)
    assert again.baseline is None and again.time_bins == BINS


def test_the_real_transeprelap_with_warm_start_trains_a_discrete_head(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tle_kedro.models.factory import build_model

    monkeypatch.setattr(loop, "build_model", build_model)
    config = DISCRETE.model_copy(update={"widths": (2, 2, 4, 4), "d_model": 8, "n_heads": 2})
    train = {**ONE_NETWORK, "epochs": 2, "warmup_epochs": 0, "device": "cpu", "progress": False}
    train.update(warm_start="cox", inner_val_fraction=0.25)
    inputs = FitInputs(
        "transeprelap",
        config,
        TrainConfig(**train),
        IDS,
        COHORT.images,
        COHORT.clinical,
        ClinicalTokenizer(),
    )
    model = fit_neural_model(inputs)
    core = model.model.model.model  # DiscreteTimeSurvival → IpsilateralView → TransEpRelap
    assert core.head[-1].out_features == 5
    # warm start: the linear term holds the ridge Cox weights, frozen
    assert all(not lin.weight.requires_grad for lin in core.region_linear.values())
    pred = model.predict(_arrays(model))
    assert np.isfinite(pred.risk).all() and np.all(pred.surv_12 >= pred.surv_24)


def test_the_warm_start_bias_is_the_life_table_hazard_of_each_bin() -> None:
    from dataclasses import replace

    from tle_kedro.training.warm_start import life_table_logits

    tok = ClinicalTokenizer().fit(COHORT.clinical)
    arrays = make_survival_arrays(IDS[:4], COHORT.images, tok, COHORT.clinical)
    event, time = torch.tensor([True, False, True, False]), torch.tensor([2.0, 4.0, 5.0, 30.0])
    arrays = replace(arrays, event=event, time=time)
    # bin 0: 1 event of 4 at risk; bin 1: 1 event of 2 (the one censored at 4 is out); bin 2,
    # 3: 0 of 1 (clipped to 0.01); open bin: 0 of 0 (clipped)
    hazard = torch.sigmoid(life_table_logits(arrays, BINS))
    torch.testing.assert_close(hazard, torch.tensor([0.25, 0.5, 0.01, 0.01, 0.01]))
