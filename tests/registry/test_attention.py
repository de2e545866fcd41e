"""TransEpRelap's attention rollout: weights, masking, mirroring, ensembles, and the
model-randomisation sanity check (Adebayo et al. 2018) for rollout and integrated gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models import make_batch, single_thread  # noqa: F401
from tests.models.test_transeprelap import GRID, _train_losses, tiny_model
from tle_kedro.models.batch import SurvivalBatch
from tle_kedro.models.ensemble import MeanEnsemble
from tle_kedro.models.measures import measure_names
from tle_kedro.models.side import IpsilateralView
from tle_kedro.registry.attention import attention_rollout
from tle_kedro.registry.explain import attribution_maps

pytestmark = pytest.mark.usefixtures("single_thread")


def _one(batch: SurvivalBatch, i: int = 0) -> SurvivalBatch:
    return batch.select(torch.tensor([i]))


def test_weights_are_a_distribution_over_named_tokens() -> None:
    model = tiny_model().eval()
    rollout = attention_rollout(model, _one(make_batch(2, GRID)))
    assert rollout is not None
    n_image = 2  # tiny GRID: 2 image tokens per modality
    expected = (
        [f"T1 image {i}" for i in range(n_image)]
        + list(measure_names("t1", model.config.atlas))
        + [f"PET image {i}" for i in range(n_image)]
        + list(measure_names("pet", model.config.atlas))
        + ["clinical"]
    )
    assert rollout.names == expected
    assert rollout.weights.shape == (len(expected),)
    assert (rollout.weights >= 0).all() and rollout.weights.sum() == pytest.approx(1.0)
    top = rollout.top(3)
    assert [w for _, w in top] == sorted(rollout.weights, reverse=True)[:3]
    # every image token's weight is painted on its block of voxels, nothing else
    assert rollout.voxel_map.shape == (2, *GRID)
    t1_weights = rollout.weights[:n_image]
    assert set(np.unique(rollout.voxel_map[0])) == set(t1_weights.astype(np.float32))


def test_a_missing_modality_gets_no_attention_and_no_map() -> None:
    model = tiny_model().eval()
    batch = make_batch(2, GRID, modality_mask=np.array([[True, False], [True, True]]))
    rollout = attention_rollout(model, _one(batch))
    pet = [i for i, n in enumerate(rollout.names) if n.startswith(("PET", "pet_"))]
    assert pet and np.allclose(rollout.weights[pet], 0.0)
    assert not rollout.voxel_map[1].any() and rollout.voxel_map[0].any()


def test_clinical_after_has_no_clinical_token_in_the_rollout() -> None:
    rollout = attention_rollout(
        tiny_model(clinical_fusion="after").eval(), _one(make_batch(1, GRID))
    )
    assert "clinical" not in rollout.names


def test_an_ensemble_averages_its_members() -> None:
    a, b = tiny_model(seed=1).eval(), tiny_model(seed=2).eval()
    one = _one(make_batch(2, GRID))
    mean = attention_rollout(MeanEnsemble([a, b]), one)
    separate = [attention_rollout(m, one) for m in (a, b)]
    np.testing.assert_allclose(
        mean.weights, (separate[0].weights + separate[1].weights) / 2, rtol=1e-5
    )


def test_a_mirrored_patient_gets_its_map_mirrored_back() -> None:
    """Without clinical input and region measures (the atlas' left and right regions are not
    mirror images) the network sees the same thing for a right-operated patient and a
    left-operated one with mirrored images; the maps must be each other's mirror."""
    torch.manual_seed(0)
    network = tiny_model(use_clinical=False, region_tokens=False, region_linear=False)
    model = IpsilateralView(network, side_index=0).eval()
    batch = _one(make_batch(1, GRID))
    right = batch.with_clin_cat(torch.ones_like(batch.clin_cat))
    left = batch.with_clin_cat(torch.zeros_like(batch.clin_cat)).with_images(
        batch.images.flip(dims=[2])
    )
    r, l_ = attention_rollout(model, right), attention_rollout(model, left)
    np.testing.assert_allclose(r.weights, l_.weights, rtol=1e-5)
    assert not np.allclose(r.voxel_map, r.voxel_map[:, ::-1])  # the map is not symmetric
    np.testing.assert_allclose(r.voxel_map, l_.voxel_map[:, ::-1], rtol=1e-5)


def test_a_model_without_transeprelap_has_no_rollout() -> None:
    assert attention_rollout(torch.nn.Linear(2, 1), _one(make_batch(1, GRID))) is None


def test_more_than_one_patient_is_refused() -> None:
    with pytest.raises(ValueError, match="one patient"):
        attention_rollout(tiny_model(), make_batch(2, GRID))


def test_randomised_weights_change_both_maps() -> None:
    """A trained network and the same architecture with freshly drawn weights must not
    explain a patient alike (else the maps show the input, not what the model learnt)."""
    model = tiny_model(seed=3)
    losses = _train_losses(model, 30)
    assert losses[-1] < losses[0]
    model.eval()
    one = _one(make_batch(8, GRID, seed=5), 2)  # a patient the network was trained on
    random = tiny_model(seed=9).eval()
    rollout, rollout_random = attention_rollout(model, one), attention_rollout(random, one)
    assert np.abs(rollout.weights - rollout_random.weights).max() > 0.01
    ig = attribution_maps(model, one, "integrated_gradients", n_steps=8).ravel()
    ig_random = attribution_maps(random, one, "integrated_gradients", n_steps=8).ravel()
    # integrated gradients multiply by the input, so some likeness stays (Adebayo et al.
    # 2018); measured 0.51 here: well short of the ~1 of a map that ignores the weights
    assert abs(np.corrcoef(ig, ig_random)[0, 1]) < 0.8
