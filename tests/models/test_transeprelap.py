from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.models import CARDINALITIES, N_NUMERIC, make_batch, single_thread  # noqa: F401
from tle_kedro.losses.cox import cox_partial_likelihood
from tle_kedro.models.batch import SurvivalBatch
from tle_kedro.models.config import ModelConfig
from tle_kedro.models.transeprelap import TransEpRelap

pytestmark = pytest.mark.usefixtures("single_thread")

GRID = (24, 16, 16)  # 2 image tokens per modality without max pooling


def tiny_config(**overrides: object) -> ModelConfig:
    values: dict[str, object] = {
        "grid_shape": GRID,
        "widths": (4, 4, 8, 8),
        "no_max_pool": True,
        "d_model": 8,
        "n_heads": 2,
        "dropout": 0.0,
        "region_tokens": True,  # the product defaults: every test below covers them
        "region_linear": True,
    }
    values.update(overrides)
    return ModelConfig.model_validate(values)


def tiny_model(seed: int = 0, **overrides: object) -> TransEpRelap:
    torch.manual_seed(seed)
    model = TransEpRelap(tiny_config(**overrides), N_NUMERIC, CARDINALITIES)
    for linear in model.region_linear.values():  # zero at initialisation: make it count
        torch.nn.init.normal_(linear.weight, std=0.5)
    return model


def risk(model: TransEpRelap, batch: SurvivalBatch, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    with torch.no_grad():
        return model(batch)


@pytest.mark.parametrize("train", [False, True])
def test_masked_modality_content_does_not_change_the_risk(train: bool) -> None:
    model = tiny_model().train(train)
    mask = np.array([[True, True], [True, False], [False, True], [True, False]])
    batch = make_batch(4, GRID, modality_mask=mask)
    images = batch.images.clone()
    images[1, 1] = torch.randn(GRID) * 5  # PET of patient 1 is marked absent
    images[2, 0] = 3.0  # T1 of patient 2 is marked absent
    torch.testing.assert_close(risk(model, batch), risk(model, batch.with_images(images)))


def test_present_modality_content_changes_the_risk() -> None:
    model = tiny_model().eval()
    batch = make_batch(2, GRID)
    images = batch.images.clone()
    images[:, 1] = torch.randn(2, *GRID)
    assert not torch.allclose(risk(model, batch), risk(model, batch.with_images(images)))


def test_missing_pet_is_masked_not_zero_filled() -> None:
    full = tiny_model().eval()
    no_pet = tiny_model(seed=9, use_pet=False).eval()
    result = no_pet.load_state_dict(full.state_dict(), strict=False)
    assert not result.missing_keys and all(".pet" in k for k in result.unexpected_keys)
    batch = make_batch(3, GRID, modality_mask=np.array([[True, False]] * 3))
    # absent PET tokens take no part in attention: same risk as the model without PET
    torch.testing.assert_close(risk(full, batch), risk(no_pet, batch))


@pytest.mark.parametrize("switch", ["use_t1", "use_pet"])
def test_image_ablation_ignores_its_modality_and_builds_no_encoder(switch: str) -> None:
    model = tiny_model(**{switch: False}).eval()
    off = "t1" if switch == "use_t1" else "pet"
    assert model.encoders is not None and off not in model.encoders.encoders
    batch = make_batch(3, GRID)
    images = batch.images.clone()
    images[:, 0 if off == "t1" else 1] = torch.randn(3, *GRID)
    torch.testing.assert_close(risk(model, batch), risk(model, batch.with_images(images)))


def test_clinical_ablation_ignores_clinical_data() -> None:
    model = tiny_model(use_clinical=False).eval()
    assert model.clinical is None
    batch = make_batch(3, GRID)
    other = SurvivalBatch(
        batch.images,
        batch.modality_mask,
        torch.randn_like(batch.clin_num),
        torch.zeros_like(batch.clin_cat),
    )
    torch.testing.assert_close(risk(model, batch), risk(model, other))


def test_missing_clinical_value_is_masked_not_zero_imputed() -> None:
    model = tiny_model().eval()
    batch = make_batch(2, GRID)
    num = batch.clin_num.clone()
    num[1, 0] = math.nan
    with_nan = SurvivalBatch(batch.images, batch.modality_mask, num, batch.clin_cat)
    num_zero = num.clone()
    num_zero[1, 0] = 0.0
    with_zero = SurvivalBatch(batch.images, batch.modality_mask, num_zero, batch.clin_cat)
    r_nan, r_zero, r_orig = risk(model, with_nan), risk(model, with_zero), risk(model, batch)
    assert not torch.isclose(r_nan[1], r_zero[1])  # NaN is not treated as 0
    assert not torch.isclose(r_nan[1], r_orig[1])  # another missing pattern, another risk
    torch.testing.assert_close(r_nan[0], r_orig[0])  # patient 0 untouched
    cat = batch.clin_cat.clone()
    cat[0, 1] = -1
    r_cat = risk(model, SurvivalBatch(batch.images, batch.modality_mask, batch.clin_num, cat))
    assert not torch.isclose(r_cat[0], r_orig[0])


@pytest.mark.parametrize("train", [False, True])
def test_no_nan_when_a_modality_is_missing_for_the_whole_batch(train: bool) -> None:
    model = tiny_model(modality_dropout=0.5).train(train)
    batch = make_batch(3, GRID, modality_mask=np.array([[True, False]] * 3))
    out = model(batch)
    assert out.shape == (3,) and torch.isfinite(out).all()
    # a patient with no image and no clinical value at all: only the summary token remains
    empty = SurvivalBatch(
        torch.zeros(1, 2, *GRID),
        torch.zeros(1, 2, dtype=torch.bool),
        torch.full((1, N_NUMERIC), math.nan),
        torch.full((1, len(CARDINALITIES)), -1, dtype=torch.int64),
    )
    assert torch.isfinite(model(empty)).all()


def test_modality_dropout_acts_only_in_training() -> None:
    model = tiny_model(modality_dropout=1.0)
    batch = make_batch(6, GRID)
    model.train()
    torch.manual_seed(0)
    assert model.present_modalities(batch).sum(dim=1).tolist() == [1] * 6
    model.eval()
    assert torch.equal(model.present_modalities(batch), batch.modality_mask)
    reference = tiny_model(modality_dropout=0.0).eval()
    torch.testing.assert_close(risk(model, batch), risk(reference, batch))


def test_same_seed_gives_identical_outputs() -> None:
    batch = make_batch(3, GRID)
    a = tiny_model(seed=3, dropout=0.2, modality_dropout=0.5).train()
    b = tiny_model(seed=3, dropout=0.2, modality_dropout=0.5).train()
    assert torch.equal(risk(a, batch, seed=7), risk(b, batch, seed=7))
    assert not torch.equal(risk(a, batch, seed=7), risk(a, batch, seed=8))


def test_pooled_clinical_tokens_mode_gives_finite_risks() -> None:
    model = tiny_model(clinical_tokens="pooled").eval()
    batch = make_batch(3, GRID)
    num = torch.full_like(batch.clin_num, math.nan)
    cat = torch.full_like(batch.clin_cat, -1)
    no_clin = SurvivalBatch(batch.images, batch.modality_mask, num, cat)
    r, r_none = risk(model, batch), risk(model, no_clin)
    assert torch.isfinite(r_none).all() and not torch.allclose(r, r_none)


def _train_losses(model: TransEpRelap, steps: int) -> list[float]:
    batch = make_batch(8, GRID, seed=5)
    assert batch.event is not None and batch.time is not None
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = cox_partial_likelihood(model(batch), batch.event, batch.time)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_training_steps_lower_the_loss_and_can_overfit_a_tiny_set() -> None:
    losses = _train_losses(tiny_model(seed=1, region_tokens=False, region_linear=False).train(), 12)
    assert losses[1] < losses[0]
    assert losses[-1] < 0.5 * losses[0]


def test_a_tiny_set_can_be_overfit_with_region_tokens() -> None:
    # 6 more tokens per modality of random-image measures: slower, but it still fits (the
    # loss went 1.59 -> 0.50 in 30 steps when this test was written)
    losses = _train_losses(tiny_model(seed=1).train(), 30)
    assert losses[-1] < 0.5 * losses[0]
    assert losses[-1] < min(losses[:5])


@pytest.mark.parametrize("basis", ["linear", "hinge"])
def test_region_linear_adds_a_linear_term_of_the_standardised_measures(basis: str) -> None:
    model = tiny_model(region_linear_basis=basis).eval()
    batch = make_batch(5, GRID, modality_mask=np.array([[True, True]] * 4 + [[True, False]]))
    without = tiny_model(region_linear=False).eval()
    without.load_state_dict(model.state_dict(), strict=False)
    expected = risk(without, batch)
    for m, channel in (("t1", 0), ("pet", 1)):
        values = model.measures[m].measures(batch.images[:, channel : channel + 1])
        z = model.measures[m].standardise(values)
        if basis == "hinge":  # written out here, not by the code under test
            z = torch.cat([z.clamp(min=0), (-z).clamp(min=0)], dim=1)
        term = (z @ model.region_linear[m].weight.T).squeeze(-1).detach()
        if m == "pet":
            term[4] = 0.0  # patient 4 has no PET: no PET term
        expected = expected + term
    torch.testing.assert_close(risk(model, batch), expected, rtol=1e-5, atol=1e-5)
    # zero at initialisation: the model starts as the attention path alone
    torch.manual_seed(3)
    fresh = TransEpRelap(tiny_config(), N_NUMERIC, CARDINALITIES)
    assert all(int(torch.count_nonzero(w.weight)) == 0 for w in fresh.region_linear.values())


def test_region_linear_needs_region_tokens() -> None:
    with pytest.raises(ValueError, match="region_linear needs region_tokens"):
        tiny_config(region_tokens=False)
    assert not tiny_model(region_tokens=False, region_linear=False).region_linear


def _summary_output(model: TransEpRelap, batch: SurvivalBatch) -> torch.Tensor:
    """The summary token after the joint attention (what the head reads first)."""
    seen: list[torch.Tensor] = []
    handle = model.inter.register_forward_hook(lambda _m, _i, out: seen.append(out[:, 0]))
    risk(model, batch)
    handle.remove()
    return seen[0]


def _other_clinical(batch: SurvivalBatch) -> SurvivalBatch:
    torch.manual_seed(11)
    num = torch.randn_like(batch.clin_num) * 3
    return SurvivalBatch(batch.images, batch.modality_mask, num, batch.clin_cat)


def test_clinical_after_keeps_clinical_tokens_out_of_attention() -> None:
    batch = make_batch(3, GRID)
    after = tiny_model(clinical_fusion="after").eval()
    assert after.head[-1].in_features == 2 * after.config.d_model
    # the attention never sees the clinical values; the risk still depends on them
    torch.testing.assert_close(
        _summary_output(after, batch), _summary_output(after, _other_clinical(batch))
    )
    assert not torch.allclose(risk(after, batch), risk(after, _other_clinical(batch)))
    inside = tiny_model(clinical_fusion="attention").eval()
    assert inside.head[-1].in_features == inside.config.d_model
    assert not torch.allclose(
        _summary_output(inside, batch), _summary_output(inside, _other_clinical(batch))
    )


@pytest.mark.parametrize("train", [False, True])
def test_clinical_after_without_any_clinical_value_is_finite_and_trains(train: bool) -> None:
    model = tiny_model(clinical_fusion="after").train(train)
    batch = make_batch(3, GRID)
    none = SurvivalBatch(
        batch.images,
        batch.modality_mask,
        torch.full_like(batch.clin_num, math.nan),
        torch.full_like(batch.clin_cat, -1),
    )
    out = model(none)
    assert torch.isfinite(out).all()
    model(batch).sum().backward()
    grads = [p.grad for p in model.clinical.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_clinical_after_with_clinical_switched_off_is_the_plain_head() -> None:
    model = tiny_model(clinical_fusion="after", use_clinical=False)
    assert model.clinical is None and not model.clinical_after
    assert model.head[-1].in_features == model.config.d_model
