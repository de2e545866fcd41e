from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.features import GRID, synthetic_tensors, touching
from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.data.regions import DEFAULT_CROP_BOX_MNI, crop_grid_affine
from tle_kedro.data.regions import voxel_mm_coordinates as mm
from tle_kedro.features.imaging import asymmetry_index, imaging_features
from tle_kedro.models.measures import measure_names

AI_20_PERCENT = -0.2 / 0.9  # (0.8 - 1) / ((0.8 + 1) / 2)


def _table(sides: list[str]) -> pd.DataFrame:
    ids = [f"sub-{i:02d}" for i in range(len(sides))]
    return pd.DataFrame({"participant_id": ids, "operative_side": sides})


def _hypometabolic(sides: list[str], affine: np.ndarray | None = None) -> ImageTensors:
    """PET reduced by 20 % in every voxel the operated hippocampus and temporal pole touch."""
    tensors = synthetic_tensors(_table(sides)["participant_id"].tolist(), affine)
    for i, side in enumerate(sides):
        for name in ("hippocampus", "temporal_pole"):
            tensors.volumes[i, 1][touching(name, side, tensors.affine)] = 0.8
    return tensors


def test_ipsilateral_hypometabolism_gives_the_expected_negative_asymmetry() -> None:
    sides = ["L", "R", "L"]
    features = imaging_features(_hypometabolic(sides), _table(sides))
    np.testing.assert_allclose(features["pet_ai_hippocampus"], AI_20_PERCENT, rtol=1e-5)
    np.testing.assert_allclose(features["pet_ai_temporal_pole"], AI_20_PERCENT, rtol=1e-5)
    # every region that no lesion voxel touches reads symmetric
    tensors = _hypometabolic(sides)
    lesion = tensors.volumes[:, 1] < 1.0  # (N, D, H, W)
    for region in ("thalamus", "insula", "orbitofrontal", "fusiform", "superior_temporal"):
        for i, side in enumerate(sides):
            if not (lesion[i] & touching(region, side, tensors.affine)).any():
                assert features[f"pet_ai_{region}"].iloc[i] == pytest.approx(0.0, abs=1e-7)
    assert features["participant_id"].tolist() == ["sub-00", "sub-01", "sub-02"]


def test_swapping_the_operative_side_flips_the_sign() -> None:
    tensors = _hypometabolic(["L", "R"])
    same = imaging_features(tensors, _table(["L", "R"]))
    swapped = imaging_features(tensors, _table(["R", "L"]))
    for column in ("pet_ai_hippocampus", "pet_ai_temporal_pole"):
        np.testing.assert_allclose(swapped[column], -same[column])
        np.testing.assert_allclose(swapped[column], -AI_20_PERCENT, rtol=1e-5)


def test_left_is_read_from_the_affine_not_from_the_voxel_order() -> None:
    # x runs right -> left along axis 0 (LAS order): the left hemisphere is at high indices
    affine = crop_grid_affine(DEFAULT_CROP_BOX_MNI, GRID)
    affine[0, 0] = -affine[0, 0]
    affine[0, 3] = -affine[0, 3]
    tensors = synthetic_tensors(["sub-00", "sub-01"], affine)
    left_hemisphere = mm(affine, GRID)[..., 0] < 0
    assert left_hemisphere[-1].all() and not left_hemisphere[0].any()
    tensors.volumes[:, 1][:, left_hemisphere] = 0.8
    features = imaging_features(tensors, _table(["L", "R"]))
    for name in ("hippocampus", "middle_temporal", "insula"):
        np.testing.assert_allclose(
            features[f"pet_ai_{name}"], [AI_20_PERCENT, -AI_20_PERCENT], rtol=1e-6
        )


def test_bilateral_hypometabolism_lowers_the_contralateral_relative_uptake() -> None:
    tensors = _hypometabolic(["L", "L"])
    for name in ("hippocampus", "temporal_pole"):
        tensors.volumes[1, 1][touching(name, "R", tensors.affine)] = 0.8
    features = imaging_features(tensors, _table(["L", "L"]))
    unilateral, bilateral = features["pet_rel_contra_hippocampus"]
    assert unilateral > 1.0  # contralateral uptake above the crop mean
    assert bilateral < 0.85
    assert features["pet_ai_hippocampus"].iloc[1] == pytest.approx(0.0, abs=1e-6)


def test_t1_mesial_atrophy_features() -> None:
    sides = ["L", "R"]
    tensors = synthetic_tensors(_table(sides)["participant_id"].tolist())
    for i, side in enumerate(sides):
        tensors.volumes[i, 0][touching("hippocampus", side, tensors.affine)] = -2.0
    features = imaging_features(tensors, _table(sides))
    np.testing.assert_allclose(features["t1_diff_hippocampus"], [-2.0, -2.0], rtol=1e-6)
    # no tissue left on the operated side: AI = (0 - 1) / 0.5
    np.testing.assert_allclose(features["t1_tissue_ai_hippocampus"], [-2.0, -2.0], rtol=1e-6)
    np.testing.assert_allclose(features["t1_diff_orbitofrontal"], [0.0, 0.0], atol=1e-7)


def test_missing_modality_gives_nan_only_for_its_features() -> None:
    sides = ["L", "R", "L"]
    tensors = _hypometabolic(sides)
    tensors.index.loc[0, "has_pet"] = False
    tensors.index.loc[1, "has_t1"] = False
    features = imaging_features(tensors, _table(sides))
    pet = [c for c in features.columns if c.startswith("pet_")]
    t1 = [c for c in features.columns if c.startswith("t1_")]
    assert pet == list(measure_names("pet")) and t1 == list(measure_names("t1"))
    assert len(pet) == 22 and len(t1) == 15
    assert features.loc[0, pet].isna().all() and features.loc[0, t1].notna().all()
    assert features.loc[1, t1].isna().all() and features.loc[1, pet].notna().all()
    assert features.loc[2].drop("participant_id").notna().all()


def test_rows_follow_the_table_and_patients_without_tensors_are_nan() -> None:
    tensors = _hypometabolic(["L", "R"])  # sub-00, sub-01
    table = pd.DataFrame(
        {"participant_id": ["sub-01", "sub-99", "sub-00"], "operative_side": ["R", "L", "L"]}
    )
    features = imaging_features(tensors, table)
    assert features["participant_id"].tolist() == ["sub-01", "sub-99", "sub-00"]
    assert features.iloc[1].drop("participant_id").isna().all()
    np.testing.assert_allclose(
        features["pet_ai_hippocampus"].iloc[[0, 2]], AI_20_PERCENT, rtol=1e-5
    )


def test_grid_without_a_region_is_an_error() -> None:
    right_half = ((0.0, 72.0), DEFAULT_CROP_BOX_MNI[1], DEFAULT_CROP_BOX_MNI[2])
    tensors = synthetic_tensors(["sub-00"], crop_grid_affine(right_half, GRID))
    with pytest.raises(ValueError, match="mostly outside the image grid"):
        imaging_features(tensors, _table(["L"]))


def test_invalid_operative_side_is_an_error() -> None:
    tensors = synthetic_tensors(["sub-00"])
    with pytest.raises(ValueError, match="must be 'L' or 'R'"):
        imaging_features(tensors, _table(["left"]))


def test_asymmetry_index_is_nan_when_both_sides_are_zero() -> None:
    result = asymmetry_index(np.array([0.0, 1.0]), np.array([0.0, 3.0]))
    assert np.isnan(result[0]) and result[1] == pytest.approx(-1.0)
