"""The neural fit loop (with a tiny stand-in model unless stated)."""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import one_torch_thread
from tests.training import ONE_NETWORK, TinyModel, tiny_cohort, use_tiny_fit_loop
from tle_kedro.evaluation.concordance import harrell_c
from tle_kedro.features.clinical import ClinicalTokenizer
from tle_kedro.losses.cox import cox_partial_likelihood
from tle_kedro.models.config import ModelConfig
from tle_kedro.models.ensemble import MeanEnsemble, Recalibrated
from tle_kedro.models.survival import breslow_baseline, calibration_slope
from tle_kedro.training import fit, loop
from tle_kedro.training.config import TrainConfig
from tle_kedro.training.data import EventBatchSampler, make_survival_arrays, outcome_arrays
from tle_kedro.training.device import resolve_device
from tle_kedro.training.fit import (
    FitInputs,
    fit_neural_model,
    inner_split,
    predict_log_risk,
)
from tle_kedro.training.fitted import FittedNeuralModel
from tle_kedro.training.loop import warmup_cosine

COHORT = tiny_cohort(16)
IDS = list(COHORT.clinical["participant_id"])


@pytest.fixture(autouse=True)
def _tiny(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with one_torch_thread():
        use_tiny_fit_loop(monkeypatch)
        yield


def _cfg(**kw: Any) -> TrainConfig:
    base = {"epochs": 3, "lr": 1e-2, "warmup_epochs": 0, "device": "cpu", "progress": False}
    base = {**ONE_NETWORK, **base}
    return TrainConfig(**{**base, **kw})


def _inputs(cfg: TrainConfig, cohort: Any = COHORT, kind: str = "tiny", config: Any = None) -> Any:
    return FitInputs(kind, config, cfg, IDS, cohort.images, cohort.clinical, ClinicalTokenizer())


def _fit(cfg: TrainConfig, **kw: Any) -> FittedNeuralModel:
    return fit_neural_model(_inputs(cfg), **kw)


def _arrays(model: FittedNeuralModel, ids: list[str]) -> Any:
    return make_survival_arrays(ids, COHORT.images, model.tokenizer, COHORT.clinical)


def test_warmup_rises_linearly_then_cosine_decays_to_zero() -> None:
    f = warmup_cosine(total_steps=10, warmup_steps=4)
    values = [f(s) for s in range(11)]
    assert values[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert values[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[4:], values[5:], strict=False))
    assert values[10] == pytest.approx(0.0)


def test_one_training_step_lowers_the_loss() -> None:
    cfg = _cfg(epochs=1)
    tok = ClinicalTokenizer().fit(COHORT.clinical)
    data = make_survival_arrays(IDS, COHORT.images, tok, COHORT.clinical)
    torch.manual_seed(0)
    model, train_loop = loop.build_loop("tiny", None, tok, fit.resolve_device("cpu"), cfg, steps=1)
    sampler = EventBatchSampler(data.event.numpy(), None, torch.Generator())
    batch = data.batch()

    def loss() -> float:
        with torch.no_grad():
            return float(cox_partial_likelihood(model(batch), batch.event, batch.time))

    before = loss()
    loop.train_epoch(train_loop, data, sampler)
    assert loss() < before


def test_a_tiny_set_can_be_overfit() -> None:
    exact = tiny_cohort(16, exact=True)
    model = fit_neural_model(_inputs(_cfg(epochs=60, lr=3e-2, inner_val_fraction=0.0), exact))
    arrays = make_survival_arrays(IDS, exact.images, model.tokenizer, exact.clinical)
    c = harrell_c(model.log_risk(arrays), arrays.event.numpy(), arrays.time.numpy())
    assert c > 0.95
    assert model.history[-1]["train_loss"] < model.history[0]["train_loss"]


def test_one_seed_gives_identical_predictions() -> None:
    a, b = _fit(_cfg(seed=3)), _fit(_cfg(seed=3))
    pa, pb = a.predict(_arrays(a, IDS)), b.predict(_arrays(b, IDS))
    np.testing.assert_array_equal(pa.risk, pb.risk)
    c = _fit(_cfg(seed=4))
    assert not np.array_equal(pa.risk, c.predict(_arrays(c, IDS)).risk)


def test_early_stopping_restores_the_best_epoch() -> None:
    cfg = _cfg(epochs=12, early_stopping_patience=3, inner_val_fraction=0.4, lr=0.2)
    model = _fit(cfg)
    val_c = [h["val_c"] for h in model.history]
    assert model.best_epoch == int(np.nanargmax(val_c))
    assert len(model.history) <= model.best_epoch + 3 + 1
    event = COHORT.clinical["recurrence"].to_numpy().astype(bool)
    _, val_ids = inner_split(IDS, event, cfg.inner_val_fraction, cfg.seed)
    arrays = _arrays(model, val_ids)
    restored = harrell_c(model.log_risk(arrays), arrays.event.numpy(), arrays.time.numpy())
    assert restored == pytest.approx(val_c[model.best_epoch])


def test_callback_can_stop_or_abort_training() -> None:
    seen: list[tuple[int, float]] = []
    model = _fit(_cfg(epochs=5), on_epoch_end=lambda e, c: seen.append((e, c)) or e == 1)
    assert [e for e, _ in seen] == [0, 1] and len(model.history) == 2
    assert all(0.0 <= c <= 1.0 for _, c in seen)

    def boom(epoch: int, val_c: float) -> bool:
        raise RuntimeError("pruned")

    with pytest.raises(RuntimeError, match="pruned"):
        _fit(_cfg(), on_epoch_end=boom)


def test_augmentation_runs_in_training_only_and_a_flip_swaps_the_side(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    seen_codes: list[torch.Tensor] = []

    def flip_all(images: torch.Tensor, mask: torch.Tensor, config: Any, gen: Any) -> Any:
        calls.append(images.shape[0])
        return images, torch.ones(images.shape[0], dtype=torch.bool)

    class Recorder(TinyModel):
        def forward(self, batch: Any) -> torch.Tensor:
            if self.training:
                seen_codes.append(batch.clin_cat.clone())
            return super().forward(batch)

    monkeypatch.setattr(loop, "augment_batch", flip_all)
    monkeypatch.setattr(
        loop, "build_model", lambda k, c, n_numeric, cardinalities, side_index: Recorder(n_numeric)
    )
    model = _fit(_cfg(epochs=2, inner_val_fraction=0.0))
    assert sum(calls) == 2 * len(IDS)  # every training patient, every epoch; never in eval
    model.predict(_arrays(model, IDS))
    assert sum(calls) == 2 * len(IDS)
    side = model.tokenizer.side_index
    original = _arrays(model, IDS).batch().clin_cat[:, side]
    trained = seen_codes[0][:, side]
    assert sorted(trained.tolist()) == sorted((1 - original).tolist())


def test_fitted_model_pickles_and_predicts_survival_probabilities() -> None:
    model = _fit(_cfg())
    arrays = _arrays(model, IDS[:5])
    pred = model.predict(arrays)
    again = pickle.loads(pickle.dumps(model)).predict(arrays)
    np.testing.assert_array_equal(pred.risk, again.risk)
    assert np.all((pred.surv_12 >= pred.surv_24) & (pred.surv_24 > 0) & (pred.surv_12 < 1))
    assert not model.model.training
    assert set(model.history[0]) >= {"epoch", "train_loss", "val_loss", "val_c"}


def test_the_real_transeprelap_trains_through_the_same_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tle_kedro.models.factory import build_model
    from tle_kedro.transforms.augment import AugmentConfig, augment_batch

    monkeypatch.setattr(loop, "build_model", build_model)
    monkeypatch.setattr(loop, "augment_batch", augment_batch)  # the real TorchIO path
    config = ModelConfig(grid_shape=(16, 16, 16), widths=(4, 4, 8, 8), d_model=8, n_heads=2)
    train = _cfg(epochs=2, batch_size=8, augment=AugmentConfig(flip_lr=True))
    model = fit_neural_model(_inputs(train, kind="transeprelap", config=config))
    pred = model.predict(_arrays(model, IDS[:4]))
    assert pred.risk.shape == (4,) and np.isfinite(pred.risk).all()
    assert len(model.history) == 2


def _weights(model: FittedNeuralModel) -> torch.Tensor:
    return torch.cat([t.detach().flatten().float() for t in model.model.state_dict().values()])


def test_the_weight_average_is_what_is_kept_and_a_tiny_decay_is_the_last_step() -> None:
    cfg = _cfg(epochs=4, inner_val_fraction=0.0, batch_size=4)
    last = _fit(cfg)
    near_last = _fit(cfg.model_copy(update={"ema_decay": 1e-9}))
    averaged = _fit(cfg.model_copy(update={"ema_decay": 0.9}))
    torch.testing.assert_close(_weights(near_last), _weights(last), rtol=0, atol=1e-6)
    assert not torch.allclose(_weights(averaged), _weights(last), atol=1e-4)
    arrays = _arrays(averaged, IDS)
    risk = averaged.log_risk(arrays)
    assert np.isfinite(risk).all() and risk.shape == (len(IDS),)


def test_with_early_stopping_the_average_is_validated_and_restored() -> None:
    cfg = _cfg(epochs=5, inner_val_fraction=0.4, early_stopping_patience=10, ema_decay=0.5)
    model = _fit(cfg)
    assert len(model.history) == 5 and 0 <= model.best_epoch < 5
    assert all(not math.isnan(h["val_c"]) for h in model.history)


def test_an_ensemble_predicts_the_mean_log_risk_of_its_seeded_members() -> None:
    cfg = _cfg(epochs=3, inner_val_fraction=0.3, early_stopping_patience=None, ensemble=3)
    model = _fit(cfg)
    assert isinstance(model.model, MeanEnsemble) and len(model.model) == 3
    arrays = _arrays(model, IDS)
    risk = model.log_risk(arrays)
    setup = resolve_device("cpu")
    per_member = [predict_log_risk(m, arrays, setup) for m in model.model.members]
    np.testing.assert_allclose(risk, np.mean(per_member, axis=0), rtol=0, atol=1e-6)
    # members are trained with seeds seed, seed + 1, seed + 2: member k equals a single fit
    # with seed + k on the ensemble's (whole-fold) tokenizer, and the members differ
    member_cfg = cfg.model_copy(update={"ensemble": 1, "seed": cfg.seed + 1})
    member = replace(_inputs(member_cfg), tokenizer=model.tokenizer)
    single, *_ = fit._fit_member(member, None, None, fit_tokenizer=False)
    np.testing.assert_allclose(per_member[1], predict_log_risk(single, arrays, setup), atol=1e-6)
    assert not np.allclose(per_member[0], per_member[1])
    # the Breslow baseline is fitted on the ensemble's risk, so S(t) follows its mean
    pred = model.predict(arrays)
    assert np.all(np.diff(pred.surv_12[np.argsort(risk)]) <= 1e-12)


def test_an_ensemble_pickles_and_its_history_is_the_per_epoch_member_mean() -> None:
    cfg = _cfg(epochs=6, inner_val_fraction=0.4, early_stopping_patience=1, lr=0.2, ensemble=2)
    model = _fit(cfg)
    arrays = _arrays(model, IDS[:5])
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(model.predict(arrays).risk, again.predict(arrays).risk)
    assert not again.model.training and all(not m.training for m in again.model.members)
    assert [h["epoch"] for h in model.history] == list(range(len(model.history)))
    assert all(np.isfinite(h["train_loss"]) for h in model.history)


def test_mean_history_averages_the_members_that_ran_each_epoch() -> None:
    a = [
        {"epoch": 0, "val_c": 0.6, "train_loss": 2.0},
        {"epoch": 1, "val_c": 0.8, "train_loss": 1.0},
    ]
    b = [{"epoch": 0, "val_c": math.nan, "train_loss": 4.0}]
    out = fit.mean_history([a, b])
    assert out == [
        {"epoch": 0, "val_c": 0.6, "train_loss": 3.0},
        {"epoch": 1, "val_c": 0.8, "train_loss": 1.0},
    ]


def test_ensemble_size_is_validated() -> None:
    with pytest.raises(ValueError, match="ensemble"):
        _cfg(ensemble=0)


def test_recalibration_fits_slope_and_baseline_on_the_held_out_patients() -> None:
    cfg = _cfg(epochs=4, inner_val_fraction=0.5, early_stopping_patience=None, lr=0.2)
    cfg = cfg.model_copy(update={"ensemble": 3, "recalibrate": True})
    model = _fit(cfg)
    assert isinstance(model.model, Recalibrated) and isinstance(model.model.model, MeanEnsemble)
    # the slope is the Cox slope of each member's risk on its own inner-validation patients
    _, event = outcome_arrays(COHORT.clinical)
    setup = resolve_device("cpu")
    risks, times, events = [], [], []
    for k, member in enumerate(model.model.model.members):
        _, val_ids = inner_split(IDS, event, 0.5, cfg.seed + k)
        val = _arrays(model, val_ids)
        risks.append(predict_log_risk(member, val, setup))
        times.append(val.time.numpy())
        events.append(val.event.numpy())
    r, t, e = (np.concatenate(x) for x in (risks, times, events))
    assert e.sum() >= fit.MIN_CALIBRATION_EVENTS
    assert model.calibration_slope == pytest.approx(calibration_slope(r, e, t))
    baseline = breslow_baseline(model.calibration_slope * r, e, t)
    np.testing.assert_allclose(model.baseline.cumulative_hazard, baseline.cumulative_hazard)
    # the fitted model's log-risk is the slope times the ensemble's
    arrays = _arrays(model, IDS[:6])
    raw = predict_log_risk(model.model.model, arrays, setup)
    np.testing.assert_allclose(model.log_risk(arrays), model.calibration_slope * raw, atol=1e-6)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(arrays).surv_12, model.predict(arrays).surv_12)


def test_without_held_out_patients_or_events_the_baseline_is_fitted_in_sample(
    caplog: pytest.LogCaptureFixture,
) -> None:
    no_split = _fit(_cfg(inner_val_fraction=0.0, recalibrate=True))
    assert no_split.calibration_slope == 1.0 and not isinstance(no_split.model, Recalibrated)
    with caplog.at_level("WARNING"):
        few = _fit(_cfg(inner_val_fraction=0.15, recalibrate=True))  # 2 held-out patients
    assert few.calibration_slope == 1.0 and not isinstance(few.model, Recalibrated)
    assert "recalibration skipped" in caplog.text
    full = _arrays(few, IDS)
    risk = few.log_risk(full)
    expected = breslow_baseline(risk, full.event.numpy(), full.time.numpy())
    np.testing.assert_allclose(few.baseline.cumulative_hazard, expected.cumulative_hazard)


def test_snapshots_keep_the_best_epochs_by_inner_validation_c_and_average_them() -> None:
    cfg = _cfg(epochs=8, early_stopping_patience=None, inner_val_fraction=0.4, lr=0.2)
    model = _fit(cfg.model_copy(update={"snapshots": 3}))
    assert isinstance(model.model, MeanEnsemble) and len(model.model) == 3
    event = COHORT.clinical["recurrence"].to_numpy().astype(bool)
    _, val_ids = inner_split(IDS, event, cfg.inner_val_fraction, cfg.seed)
    val = _arrays(model, val_ids)
    setup = resolve_device("cpu")
    time, ev = val.time.numpy(), val.event.numpy()
    # each kept state scores one of the three best (val C, -val loss) of the history
    score = [(h["val_c"], -h["val_loss"]) for h in model.history]
    top3 = sorted(score, reverse=True)[:3]
    kept = []
    for member in model.model.members:
        r = predict_log_risk(member, val, setup)
        loss = float(cox_partial_likelihood(torch.as_tensor(r), val.event, val.time.double()))
        kept.append((harrell_c(r, ev, time), -loss))
    for (c, neg_loss), (c_ref, neg_ref) in zip(kept, top3, strict=True):
        assert c == pytest.approx(c_ref) and neg_loss == pytest.approx(neg_ref, rel=1e-4)
    assert model.best_epoch == score.index(top3[0])
    # the network predicts their mean log-risk, and snapshots=1 is the single best state
    arrays = _arrays(model, IDS)
    per_state = [predict_log_risk(m, arrays, setup) for m in model.model.members]
    np.testing.assert_allclose(model.log_risk(arrays), np.mean(per_state, 0), atol=1e-6)
    single = _fit(cfg)
    assert not isinstance(single.model, MeanEnsemble)
    np.testing.assert_allclose(single.log_risk(arrays), per_state[0], atol=1e-6)


def test_snapshots_need_an_inner_split_and_are_validated() -> None:
    model = _fit(_cfg(inner_val_fraction=0.0, snapshots=3))  # nothing to rank epochs by
    assert not isinstance(model.model, MeanEnsemble)
    with pytest.raises(ValueError, match="snapshots"):
        _cfg(snapshots=0)


def test_models_pickled_before_the_fitted_model_moved_still_load() -> None:
    model = _fit(_cfg(epochs=1))
    new = pickle.dumps(model, protocol=2)
    old = new.replace(
        b"tle_kedro.training.fitted\nFittedNeuralModel",
        b"tle_kedro.training.fit\nFittedNeuralModel",
    )
    assert old != new
    loaded = pickle.loads(old)
    arrays = _arrays(model, IDS[:4])
    np.testing.assert_array_equal(loaded.log_risk(arrays), model.log_risk(arrays))


@pytest.mark.parametrize(("rows", "expected"), [("inner_train", 11), ("training_fold", 16)])
def test_the_warm_start_sees_the_inner_training_rows_or_the_whole_training_fold(
    monkeypatch: pytest.MonkeyPatch, rows: str, expected: int
) -> None:
    seen: list[tuple[str, ...]] = []

    def _record(model: Any, arrays: Any, *args: Any) -> float:
        seen.append(arrays.participant_ids)
        return 1.0

    monkeypatch.setattr(fit, "warm_start_from_cox", _record)
    monkeypatch.setattr(fit, "_core", lambda m: type("Core", (), {"region_linear": {"pet": 1}}))
    cfg = _cfg(epochs=1, inner_val_fraction=0.3, warm_start="cox", warm_start_rows=rows)
    fit._fit_member(_inputs(cfg), None, None)
    assert len(seen) == 1 and len(seen[0]) == expected
    assert set(seen[0]) <= set(IDS)


def test_a_network_that_diverges_keeps_its_best_epochs_or_says_what_to_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = {"n": 0}
    real = loop.train_epoch

    def _diverge_at_epoch_2(state: Any, data: Any, sampler: Any) -> float:
        calls["n"] += 1
        if calls["n"] >= 3:
            raise loop.DivergedError("non-finite log-risk in training: the network diverged")
        return real(state, data, sampler)

    monkeypatch.setattr(loop, "train_epoch", _diverge_at_epoch_2)
    model = _fit(_cfg(epochs=6, inner_val_fraction=0.3, early_stopping_patience=None))
    assert len(model.history) == 2 and model.best_epoch in (0, 1)  # stopped, best kept
    assert np.isfinite(model.log_risk(_arrays(model, IDS))).all()
    calls["n"] = 2  # diverges at the first epoch: nothing to keep
    with pytest.raises(loop.DivergedError, match="lower train.lr"):
        _fit(_cfg(epochs=6, inner_val_fraction=0.3))
    with pytest.raises(loop.DivergedError, match="non-finite log-risk in training"):
        loop.check_finite(torch.tensor([0.0, float("nan")]), "training")
    loop.check_finite(np.array([0.0, 1.0]), "inner validation")  # finite: no error


@pytest.mark.parametrize("measures_from", ["augmented", "original"])
def test_training_batches_carry_the_images_the_measures_come_from(
    monkeypatch: pytest.MonkeyPatch, measures_from: str
) -> None:
    """``augment.measures_from: original``: the model gets the augmented images and, for its
    region measures, the un-augmented ones; ``augmented``: only the augmented ones."""
    seen: list[Any] = []
    real_to_device = loop.to_device

    def shifted(images: torch.Tensor, mask: torch.Tensor, config: object, seed: int) -> Any:
        return images + 1.0, torch.zeros(images.shape[0], dtype=torch.bool)

    def spy(batch: Any, setup: Any) -> Any:
        seen.append(batch)
        return real_to_device(batch, setup)

    monkeypatch.setattr(loop, "augment_batch", shifted)
    monkeypatch.setattr(loop, "to_device", spy)
    _fit(_cfg(epochs=1, augment={"measures_from": measures_from}))
    training = [b for b in seen if b.time is not None]  # (evaluation batches carry no outcomes)
    assert training
    originals = {tuple(v.flatten()[:8].tolist()) for v in COHORT.images.volumes}
    for batch in training:
        if measures_from == "augmented":
            assert batch.measure_images is None
            continue
        assert batch.measure_images is not None
        torch.testing.assert_close(batch.images, batch.measure_images + 1.0)
        assert all(tuple(v.flatten()[:8].tolist()) in originals for v in batch.measure_images)


@pytest.mark.parametrize("metric", ["c", "loss"])
def test_early_stopping_keeps_the_epoch_best_by_its_metric(
    monkeypatch: pytest.MonkeyPatch, metric: str
) -> None:
    """``early_stopping_metric``: the kept epoch has the best inner-validation C, or the
    lowest inner-validation loss; scripted so the two disagree."""
    #        epoch:    0     1     2     3     4     5
    scripted_c = [0.50, 0.70, 0.60, 0.55, 0.52, 0.51]
    scripted_loss = [2.0, 1.9, 1.5, 1.6, 1.7, 1.8]
    script = iter(zip(scripted_loss, scripted_c, strict=True))
    monkeypatch.setattr(loop, "validate", lambda state, val: next(script))
    model = _fit(_cfg(epochs=6, early_stopping_patience=None, early_stopping_metric=metric))
    assert model.best_epoch == (1 if metric == "c" else 2)
    assert [h["val_loss"] for h in model.history] == scripted_loss
