from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.features import GRID, synthetic_tensors, touching
from tle_kedro.data.atlas import AtlasConfig
from tle_kedro.data.regions import DEFAULT_CROP_BOX_MNI, crop_grid_affine
from tle_kedro.features.imaging import imaging_features
from tle_kedro.models.config import ModelConfig
from tle_kedro.models.measures import (
    MeasureTokenizer,
    RegionMeasures,
    StandardisedMeasures,
    grid_affine_or_default,
    linear_basis,
    linear_basis_width,
    measure_names,
)
from tle_kedro.models.side import ipsilateral_images

AFFINE = crop_grid_affine(DEFAULT_CROP_BOX_MNI, GRID)


def _model_view(volumes: np.ndarray, sides: list[str], modality: str) -> np.ndarray:
    """What a model measures: images shown in the ipsilateral view, raw (unstandardised)."""
    right = torch.tensor([s == "R" for s in sides])
    images = ipsilateral_images(torch.from_numpy(volumes), right.long())
    block = StandardisedMeasures(modality, GRID, AFFINE)
    channel = block.channel
    x = images[:, channel : channel + 1]
    x = torch.where(right.view(-1, 1, 1, 1, 1), x.flip(dims=[2]), x)
    return block.measures(x, right).numpy()


def test_model_measures_in_the_ipsilateral_view_equal_the_classical_features() -> None:
    rng = np.random.default_rng(0)
    sides = ["L", "R", "R", "L", "R"]
    ids = [f"sub-{i:02d}" for i in range(len(sides))]
    tensors = synthetic_tensors(ids)
    tensors.volumes[:, 0] = rng.normal(size=(len(ids), *GRID))  # z-scored T1
    tensors.volumes[:, 1] = rng.uniform(0.5, 1.5, size=(len(ids), *GRID))  # PET
    table = pd.DataFrame({"participant_id": ids, "operative_side": sides})
    expected = imaging_features(tensors, table)
    for modality in ("t1", "pet"):
        got = _model_view(tensors.volumes, sides, modality)
        names = measure_names(modality)
        np.testing.assert_allclose(got, expected[list(names)].to_numpy(), rtol=1e-4, atol=1e-5)


def test_standardised_measures_undo_the_mirror_and_match_the_raw_measures() -> None:
    rng = np.random.default_rng(1)
    volumes = rng.uniform(0.5, 1.5, size=(4, 2, *GRID)).astype(np.float32)
    right = torch.tensor([False, True, True, False])
    mirrored = ipsilateral_images(torch.from_numpy(volumes), right.long())
    block = StandardisedMeasures("pet", GRID, AFFINE).eval()
    z = block(mirrored, torch.ones(4, dtype=torch.bool), right)
    raw = block.measures(torch.from_numpy(volumes[:, 1:2]), right)
    torch.testing.assert_close(z, block.standardise(raw))


def test_operated_side_hypometabolism_reads_the_same_on_either_side() -> None:
    volumes = np.ones((2, 2, *GRID), dtype=np.float32)
    for i, side in enumerate(["L", "R"]):  # 20 % less uptake in the operated hippocampus
        volumes[i, 1][touching("hippocampus", side, AFFINE)] = 0.8
    names = measure_names("pet")
    got = _model_view(volumes, ["L", "R"], "pet")[:, names.index("pet_ai_hippocampus")]
    np.testing.assert_allclose(got, [-0.2 / 0.9] * 2, rtol=1e-5)
    # the same right-sided lesion read as a left-operated patient is contralateral
    contra = _model_view(volumes[1:], ["L"], "pet")[:, names.index("pet_ai_hippocampus")]
    np.testing.assert_allclose(contra, [0.2 / 0.9], rtol=1e-5)


def test_absent_modality_rows_are_zero_and_do_not_train_the_standardisation() -> None:
    rng = np.random.default_rng(2)
    images = torch.from_numpy(rng.uniform(0.5, 1.5, size=(6, 2, *GRID)).astype(np.float32))
    images[3:, 1] = 100.0  # absent rows with garbage content
    present = torch.tensor([True, True, True, False, False, False])
    block = StandardisedMeasures("pet", GRID, AFFINE).train()
    z = block(images, present, None)
    assert torch.equal(z[3:], torch.zeros_like(z[3:]))
    clean = StandardisedMeasures("pet", GRID, AFFINE).train()
    clean(images[:3], torch.ones(3, dtype=torch.bool), None)
    torch.testing.assert_close(block.norm.running_mean, clean.norm.running_mean)


def test_zero_uptake_gives_finite_measures() -> None:
    values = RegionMeasures("pet", GRID, AFFINE)(torch.zeros(2, 1, *GRID))
    assert values.shape == (2, len(measure_names("pet")))
    assert torch.equal(values, torch.zeros_like(values))


def test_measure_names_follow_the_atlas_configuration() -> None:
    atlas = AtlasConfig(regions=("hippocampus", "insula"), t1_volume_regions=("hippocampus",))
    assert measure_names("pet", atlas) == (
        "pet_ai_hippocampus",
        "pet_ai_insula",
        "pet_rel_contra_hippocampus",
        "pet_rel_contra_insula",
    )
    assert measure_names("t1", atlas) == (
        "t1_diff_hippocampus",
        "t1_diff_insula",
        "t1_tissue_ai_hippocampus",
    )
    values = RegionMeasures("t1", GRID, AFFINE, atlas)(torch.randn(3, 1, *GRID))
    assert values.shape == (3, 3)


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


def test_standardisation_uses_training_statistics() -> None:
    torch.manual_seed(0)
    block = StandardisedMeasures("pet", GRID, AFFINE).train()
    data = torch.randn(64, 22) * 0.3 + 1.0
    for _ in range(200):
        block.standardise(data)
    np.testing.assert_allclose(block.norm.running_mean, data.mean(0), atol=1e-3)
    block.eval()
    one = block.standardise(data[:1])
    torch.testing.assert_close(one, block.standardise(data[:5])[:1])
    running = block.norm
    expected = (data[:1] - running.running_mean) / torch.sqrt(running.running_var + running.eps)
    torch.testing.assert_close(one, expected)


def test_standardisation_trains_on_a_batch_of_one_with_running_statistics() -> None:
    block = StandardisedMeasures("t1", GRID, AFFINE).train()
    z = block(torch.randn(1, 2, *GRID), torch.ones(1, dtype=torch.bool), None)
    assert z.shape == (1, len(measure_names("t1"))) and torch.isfinite(z).all()


def test_tokens_are_value_times_vector_plus_variable_and_modality() -> None:
    tokenizer = MeasureTokenizer(3, 4)
    z = torch.tensor([[0.0, 1.0, -2.0]])
    tokens = tokenizer(z)
    assert tokens.shape == (1, 3, 4)
    torch.testing.assert_close(tokens[0, 0], tokenizer.variable[0] + tokenizer.modality)
    torch.testing.assert_close(
        tokens[0, 2], -2.0 * tokenizer.value_vectors[2] + tokenizer.variable[2] + tokenizer.modality
    )


def test_hinge_basis_splits_each_measure_at_zero_into_two_non_negative_inputs() -> None:
    z = torch.tensor([[-1.5, 0.0, 2.0]])
    torch.testing.assert_close(linear_basis(z, "linear"), z)
    hinge = linear_basis(z, "hinge")
    torch.testing.assert_close(hinge, torch.tensor([[0.0, 0.0, 2.0, 1.5, 0.0, 0.0]]))
    assert linear_basis_width(3, "hinge") == 6 and linear_basis_width(3, "linear") == 3
    # a linear term on the hinge basis with equal and opposite weights is the linear term
    w = torch.tensor([0.3, -0.2, 0.5])
    torch.testing.assert_close(hinge @ torch.cat([w, -w]), z @ w)
    with pytest.raises(ValueError, match="linear basis must be one of"):
        linear_basis(z, "spline")
