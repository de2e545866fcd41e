from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.features import GRID, synthetic_tensors
from tle_kedro.data.regions import DEFAULT_CROP_BOX_MNI, crop_grid_affine, region_mask
from tle_kedro.features.imaging import imaging_features
from tle_kedro.models.factory import ModelConfig
from tle_kedro.models.measures import (
    PET_MEASURES,
    T1_MEASURES,
    MeasureTokenizer,
    RegionMeasures,
    grid_affine_or_default,
)
from tle_kedro.models.side import ipsilateral_images

AFFINE = crop_grid_affine(DEFAULT_CROP_BOX_MNI, GRID)


def _measures(volumes: np.ndarray, sides: list[str]) -> dict[str, np.ndarray]:
    """The model's measures of (N, 2, D, H, W) volumes, shown in the ipsilateral view."""
    codes = torch.tensor([1 if s == "R" else 0 for s in sides])
    images = ipsilateral_images(torch.from_numpy(volumes), codes)
    out = {}
    for channel, modality in enumerate(("t1", "pet")):
        module = RegionMeasures(modality, GRID, AFFINE)
        values = module(images[:, channel : channel + 1]).numpy()
        out.update({name: values[:, j] for j, name in enumerate(module.names)})
    return out


def test_measures_equal_the_hand_crafted_features_of_the_classical_baselines() -> None:
    rng = np.random.default_rng(0)
    sides = ["L", "R", "R", "L", "R"]
    ids = [f"sub-{i:02d}" for i in range(len(sides))]
    tensors = synthetic_tensors(ids)
    tensors.volumes[:, 0] = rng.normal(size=(len(ids), *GRID))  # z-scored T1
    tensors.volumes[:, 1] = rng.uniform(0.5, 1.5, size=(len(ids), *GRID))  # PET
    table = pd.DataFrame({"participant_id": ids, "operative_side": sides})
    expected = imaging_features(tensors, table)
    got = _measures(tensors.volumes, sides)
    assert set(got) == set(PET_MEASURES) | set(T1_MEASURES)
    for name, values in got.items():
        np.testing.assert_allclose(values, expected[name].to_numpy(), rtol=1e-4, atol=1e-5)


def test_operated_side_hypometabolism_reads_the_same_on_either_side() -> None:
    volumes = np.zeros((2, 2, *GRID), dtype=np.float32)
    volumes[:, 1] = 1.0
    for i, side in enumerate(["L", "R"]):  # 20 % less uptake in the operated mesial region
        volumes[i, 1][region_mask("mesial_temporal", side, AFFINE, GRID)] = 0.8
    got = _measures(volumes, ["L", "R"])
    np.testing.assert_allclose(got["pet_ai_mesial_temporal"], [-0.2 / 0.9] * 2, rtol=1e-5)
    np.testing.assert_allclose(got["pet_ai_lateral_temporal"], [0.0, 0.0], atol=1e-7)
    # the same right-sided lesion read as a left-operated patient is contralateral
    contra = _measures(volumes[1:], ["L"])
    np.testing.assert_allclose(contra["pet_ai_mesial_temporal"], [0.2 / 0.9], rtol=1e-5)


def test_zero_uptake_gives_finite_measures() -> None:
    values = RegionMeasures("pet", GRID, AFFINE)(torch.zeros(2, 1, *GRID))
    assert values.shape == (2, len(PET_MEASURES))
    assert torch.equal(values, torch.zeros_like(values))


def test_a_grid_without_the_regions_is_an_error_naming_the_crop_box() -> None:
    far = crop_grid_affine(((100.0, 200.0), (100.0, 200.0), (100.0, 200.0)), GRID)
    with pytest.raises(ValueError, match="crop_box_mni"):
        RegionMeasures("pet", GRID, far)
    with pytest.raises(ValueError, match="'t1' or 'pet'"):
        RegionMeasures("ct", GRID, AFFINE)


def test_default_affine_and_its_validation() -> None:
    np.testing.assert_array_equal(grid_affine_or_default(None, GRID), AFFINE)
    with pytest.raises(ValueError, match="4x4"):
        grid_affine_or_default(np.eye(3), GRID)
    with pytest.raises(ValueError, match="4 rows"):
        ModelConfig(grid_affine=((1.0, 0.0, 0.0, 0.0),))


def test_tokenizer_standardises_with_training_statistics() -> None:
    torch.manual_seed(0)
    tokenizer = MeasureTokenizer(3, 8).train()
    data = torch.randn(64, 3) * torch.tensor([0.1, 2.0, 5.0]) + torch.tensor([-0.2, 1.0, 3.0])
    for _ in range(200):
        tokenizer(data)
    np.testing.assert_allclose(tokenizer.norm.running_mean, data.mean(0), atol=1e-3)
    tokenizer.eval()
    one, z = tokenizer(data[:1])
    # in eval a patient's tokens do not depend on who else is in the batch
    torch.testing.assert_close(one, tokenizer(data[:5])[0][:1])
    assert one.shape == (1, 3, 8)
    # the standardised values it returns are (x - running mean) / running SD
    running = tokenizer.norm
    expected = (data[:1] - running.running_mean) / torch.sqrt(running.running_var + running.eps)
    torch.testing.assert_close(z, expected)


def test_tokenizer_trains_on_a_batch_of_one_with_running_statistics() -> None:
    tokenizer = MeasureTokenizer(2, 4).train()
    out, z = tokenizer(torch.tensor([[0.5, -1.0]]))  # BatchNorm alone would raise here
    assert out.shape == (1, 2, 4) and torch.isfinite(out).all() and z.shape == (1, 2)
