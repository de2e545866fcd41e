"""Loading NIfTI safely: orientation, frames, scale factors, non-finite voxels, damage."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tle_kedro.transforms.io import UnusableImageError, clean_non_finite, load_volume

AFFINE = np.diag([3.0, 3.0, 4.0, 1.0])


def _volume(shape: tuple[int, ...] = (12, 14, 10)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(1, 100, shape).astype(np.float32)


def _save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def _reason(path: Path, **kwargs: float) -> str:
    with pytest.raises(UnusableImageError) as err:
        load_volume(path, **kwargs)
    return str(err.value.reason)


def test_image_stored_left_to_right_reversed_loads_as_the_same_ras_array(tmp_path: Path) -> None:
    data = _volume()
    flipped_affine = AFFINE @ np.array(
        [[-1, 0, 0, data.shape[0] - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float
    )
    ras, ras_affine = load_volume(_save(tmp_path / "a.nii.gz", data))
    las, las_affine = load_volume(_save(tmp_path / "b.nii.gz", data[::-1].copy(), flipped_affine))
    np.testing.assert_array_equal(ras, las)
    np.testing.assert_allclose(ras_affine, las_affine)


def test_int16_with_scale_factors_is_rescaled(tmp_path: Path) -> None:
    data = _volume()
    image = nib.Nifti1Image(np.round(data * 100).astype(np.int16), AFFINE)
    image.header.set_slope_inter(0.01, 5.0)
    nib.save(image, tmp_path / "a.nii.gz")
    loaded, _ = load_volume(tmp_path / "a.nii.gz")
    assert loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, data + 5.0, atol=0.006)


def test_single_frame_4d_is_squeezed(tmp_path: Path) -> None:
    data = _volume()
    loaded, _ = load_volume(_save(tmp_path / "a.nii.gz", data[..., None]))
    np.testing.assert_array_equal(loaded, data)


@pytest.mark.parametrize("shape", [(12, 14, 10, 3), (12, 14)])
def test_several_frames_or_2d_is_wrong_dimensionality(tmp_path: Path, shape: tuple) -> None:
    path = _save(tmp_path / "a.nii.gz", _volume(shape))
    assert _reason(path) == "wrong_dimensionality"


def test_truncated_gzip_is_unreadable(tmp_path: Path) -> None:
    path = _save(tmp_path / "a.nii.gz", _volume())
    path.write_bytes(path.read_bytes()[:200])
    assert _reason(path) == "unreadable_image"


def test_a_file_that_is_not_nifti_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "a.nii.gz"
    path.write_text("hello")
    assert _reason(path) == "unreadable_image"


def test_a_few_non_finite_voxels_become_zero(tmp_path: Path) -> None:
    data = _volume()
    data[2, 3, 4], data[5, 5, 5] = np.nan, -np.inf
    loaded, _ = load_volume(_save(tmp_path / "a.nii.gz", data))
    assert np.isfinite(loaded).all() and loaded[2, 3, 4] == 0 and loaded[5, 5, 5] == 0
    assert loaded[0, 0, 0] == data[0, 0, 0]


def test_non_finite_background_at_the_borders_is_accepted() -> None:
    data = _volume()
    data[:2], data[:, :, -3:] = np.nan, np.nan  # e.g. SPM's NaN outside the head
    assert np.isfinite(clean_non_finite(data, max_fraction=0.5)).all()


def test_an_interior_non_finite_slab_makes_the_image_unusable(tmp_path: Path) -> None:
    data = _volume()
    data[:, :, 5] = np.nan
    assert _reason(_save(tmp_path / "a.nii.gz", data)) == "non_finite_voxels"


def test_a_mostly_non_finite_image_is_unusable(tmp_path: Path) -> None:
    data = _volume()
    data[:, :10] = np.inf
    path = _save(tmp_path / "a.nii.gz", data)
    assert _reason(path, max_nonfinite_fraction=0.5) == "non_finite_voxels"


def test_a_constant_image_is_blank(tmp_path: Path) -> None:
    assert _reason(_save(tmp_path / "a.nii.gz", np.full((8, 8, 8), 3.0, np.float32))) == (
        "blank_image"
    )


def test_clean_non_finite_does_not_modify_its_input() -> None:
    data = _volume()
    data[1, 1, 1] = np.nan
    clean_non_finite(data, 0.5)
    assert np.isnan(data[1, 1, 1])
