"""Per-subject preprocessing and the cohort loop on tiny factory cohorts (8 mm images)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.cohort_factory import tiny_params, write_test_cohort
from tle_kedro.data.cohort import RawCohort, read_cohort
from tle_kedro.data.regions import crop_grid_affine, voxel_mm_coordinates
from tle_kedro.data.schema import validate_participants
from tle_kedro.transforms import preprocess as preprocess_module
from tle_kedro.transforms.params import PreprocessingParams, parse_preprocessing_params
from tle_kedro.transforms.preprocess import preprocess_cohort, preprocess_subject

DEFECTS = {
    2: {"t1": "missing"},
    3: {"pet": "truncated"},
    4: {"pet": "nan_slab"},
    5: {"pet": "multi_frame"},
    6: {"t1": "truncated", "pet": "missing"},
    8: {"t1": "blank"},
    9: {"pet": "cropped"},
}
EXPECTED = {  # participant → (has_t1, has_pet, reasons)
    "sub-001": (True, True, []),
    "sub-002": (True, True, []),
    "sub-003": (False, True, ["missing_modality"]),
    "sub-004": (True, False, ["unreadable_image"]),
    "sub-005": (True, False, ["non_finite_voxels"]),
    "sub-006": (True, False, ["wrong_dimensionality"]),
    "sub-007": (None, None, ["unreadable_image", "missing_modality", "no_images"]),
    "sub-008": (None, None, ["no_images"]),
    "sub-009": (False, True, ["blank_image"]),
    "sub-010": (True, False, ["registration_failed"]),
}


def _paths(root: Path, pid: str) -> tuple[str, str]:
    return (
        str(root / pid / "anat" / f"{pid}_T1w.nii.gz"),
        str(root / pid / "pet" / f"{pid}_trc-FDG_pet.nii.gz"),
    )


def _run(raw: RawCohort, params: PreprocessingParams):
    valid, _ = validate_participants(raw.participants)
    return preprocess_cohort(valid, raw.images, params)


@pytest.fixture(scope="module")
def defect_cohort(tmp_path_factory: pytest.TempPathFactory) -> RawCohort:
    root = tmp_path_factory.mktemp("defects")
    write_test_cohort(root, 10, image_defects=DEFECTS, no_subject_dir={7})
    return read_cohort(root)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory):
    """Make a one-patient cohort (seed 5, operated left) with optional image defects."""
    base = tmp_path_factory.mktemp("pairs")

    def _make(name: str, **defects: str) -> tuple[str, str]:
        write_test_cohort(base / name, 1, seed=5, image_defects={0: defects})
        return _paths(base / name, "sub-001")

    return _make


def test_each_image_problem_is_reported_and_masks_its_modality(
    defect_cohort: RawCohort, tmp_path: Path
) -> None:
    used, exclusions, tensors = _run(defect_cohort, tiny_params(tmp_path))
    for pid, (has_t1, has_pet, reasons) in EXPECTED.items():
        assert sorted(exclusions.loc[exclusions["participant_id"] == pid, "reason"]) == sorted(
            reasons
        ), pid
        row = used.loc[used["participant_id"] == pid]
        if has_t1 is None:
            assert row.empty and pid not in set(tensors.index["participant_id"])
            continue
        assert (bool(row["has_t1"].iloc[0]), bool(row["has_pet"].iloc[0])) == (has_t1, has_pet)
        volume = tensors.subset([pid]).volumes[0]
        assert np.any(volume[0] != 0) == has_t1 and np.any(volume[1] != 0) == has_pet
    assert "PET:" in exclusions.loc[exclusions["participant_id"] == "sub-004", "detail"].iloc[0]
    assert list(tensors.index["participant_id"]) == list(used["participant_id"])
    assert tensors.volumes.shape == (8, 2, 16, 12, 8) and tensors.volumes.dtype == np.float32


def test_orientation_of_storage_does_not_change_the_tensor(pair) -> None:
    params = tiny_params()
    plain = preprocess_subject(*pair("plain"), params)
    flipped = preprocess_subject(*pair("flipped", t1="flip_storage", pet="flip_storage"), params)
    np.testing.assert_allclose(flipped.volume, plain.volume, atol=1e-4)


def test_global_pet_scale_has_no_effect(pair) -> None:
    params = tiny_params()
    plain = preprocess_subject(*pair("plain"), params)
    scaled = preprocess_subject(*pair("scaled", pet="scale:3.7"), params)
    np.testing.assert_allclose(scaled.volume[1], plain.volume[1], rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(scaled.volume[0], plain.volume[0])


def test_int16_and_single_frame_pet_match_float_pet(pair) -> None:
    params = tiny_params()
    plain = preprocess_subject(*pair("plain"), params)
    one_frame = preprocess_subject(*pair("one_frame", pet="one_frame"), params)
    int16 = preprocess_subject(*pair("int16", pet="int16_scaled"), params)
    np.testing.assert_array_equal(one_frame.volume, plain.volume)
    assert int16.has_pet and one_frame.has_pet
    np.testing.assert_allclose(int16.volume[1], plain.volume[1], atol=0.02)


def _left_minus_right_pet(volume: np.ndarray, params: PreprocessingParams) -> float:
    """Mean PET of the left minus the right lateral temporal lobe (x beyond ±44 mm, z < 0)."""
    affine = crop_grid_affine(params.crop_box_mni, params.grid_shape)
    xyz = voxel_mm_coordinates(affine, params.grid_shape)
    lateral = (np.abs(xyz[..., 0]) > 44) & (xyz[..., 2] < 0) & (xyz[..., 1] < 10)
    left, right = lateral & (xyz[..., 0] < 0), lateral & (xyz[..., 0] > 0)
    return float(volume[1][left].mean() - volume[1][right].mean())


@pytest.mark.parametrize("defect", ["none", "flip_storage"])
def test_left_hypometabolism_stays_on_the_left(pair, defect: str) -> None:
    params = tiny_params()
    defects = {} if defect == "none" else {"t1": defect, "pet": defect}
    result = preprocess_subject(*pair(f"lr_{defect}", **defects), params)  # operated left
    assert _left_minus_right_pet(result.volume, params) < -0.05


def test_without_t1_pet_is_registered_to_the_template(pair) -> None:
    params = tiny_params()
    plain = preprocess_subject(*pair("plain"), params)
    no_t1 = preprocess_subject(*pair("no_t1", t1="missing"), params)
    assert (no_t1.has_t1, no_t1.has_pet) == (False, True)
    assert not no_t1.volume[0].any()
    assert np.corrcoef(no_t1.volume[1].ravel(), plain.volume[1].ravel())[0, 1] > 0.9


def test_rerun_reuses_the_cache_without_registering(
    defect_cohort: RawCohort, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = tiny_params(tmp_path / "cache")
    first = _run(defect_cohort, params)

    def _no_registration(*args: object, **kwargs: object) -> None:
        raise AssertionError("registration must not run on a cached subject")

    monkeypatch.setattr(preprocess_module, "register", _no_registration)
    second = _run(defect_cohort, params)
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])  # failures come back from the cache
    np.testing.assert_array_equal(first[2].volumes, second[2].volumes)
    other_grid = tiny_params(tmp_path / "cache", grid_shape=(12, 12, 8))
    with pytest.raises(AssertionError, match="must not run"):
        _run(defect_cohort, other_grid)  # a changed parameter is a new key


def test_parallel_workers_give_the_same_tensors_exclusions_and_cache(
    defect_cohort: RawCohort, tmp_path: Path
) -> None:
    serial = _run(defect_cohort, tiny_params(tmp_path / "serial"))
    parallel = _run(defect_cohort, tiny_params(tmp_path / "parallel", workers=2))
    pd.testing.assert_frame_equal(serial[0], parallel[0])
    pd.testing.assert_frame_equal(serial[1], parallel[1])
    assert not serial[1]["detail"].str.contains("0x").any()  # no memory address in the report
    np.testing.assert_array_equal(serial[2].volumes, parallel[2].volumes)
    # the workers' results were cached by the parent: same files as the serial run
    names = sorted(p.name for p in (tmp_path / "serial").rglob("*") if p.is_file())
    assert names and names == sorted(
        p.name for p in (tmp_path / "parallel").rglob("*") if p.is_file()
    )


def test_auto_workers_is_one_per_core_and_never_more_than_the_subjects() -> None:
    assert preprocess_module.preprocessing_workers(tiny_params(workers=3), 2) == 2
    assert preprocess_module.preprocessing_workers(tiny_params(workers=3), 0) == 1
    auto = preprocess_module.preprocessing_workers(tiny_params(workers="auto"), 1000)
    assert 1 <= auto <= (os.cpu_count() or 1)


def test_bad_parameters_name_the_field() -> None:
    with pytest.raises(ValueError, match="grid_shape"):
        parse_preprocessing_params({"grid_shape": [40, 0, 24]})
    with pytest.raises(ValueError, match="crop_box_mni"):
        parse_preprocessing_params({"crop_box_mni": [[72, -72], [-64, 32], [-48, 16]]})
    with pytest.raises(ValueError, match="smoothing_sigmas_voxels"):
        parse_preprocessing_params({"registration": {"shrink_factors": [4, 2, 1]}})
