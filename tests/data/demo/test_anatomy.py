"""MNI152 anatomy from nilearn's bundled files; geometry helpers."""

from __future__ import annotations

import socket
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tle_kedro.data.demo.anatomy import (
    axis_codes,
    grid_affine,
    load_template_space,
    pose_matrix,
    reorient,
)
from tle_kedro.data.regions import voxel_mm_coordinates


def test_template_space_uses_bundled_files_without_any_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the demo anatomy tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("NILEARN_DATA", str(tmp_path / "nilearn_data"))
    load_template_space.cache_clear()
    space = load_template_space(6, 8.0, 4.0)
    assert not (tmp_path / "nilearn_data").exists()  # nothing fetched into the data dir
    assert space.t1.shape == space.pet_base.shape
    assert 0 < space.t1.max() <= 1
    assert np.allclose(np.diag(space.affine)[:3], 6)


def test_region_uptake_sits_on_its_hemisphere() -> None:
    space = load_template_space(6, 8.0, 4.0)
    x = voxel_mm_coordinates(space.affine, space.t1.shape)[..., 0]
    for name in ("mesial_temporal", "lateral_temporal", "extratemporal"):
        left = space.pet_region_base[name, "L"]
        assert left[x < 0].sum() > 0.95 * left.sum(), name
        right = space.pet_region_base[name, "R"]
        assert right[x > 0].sum() > 0.95 * right.sum(), name


def test_pet_uptake_is_higher_in_grey_than_white_matter_regions() -> None:
    space = load_template_space(6, 8.0, 4.0)
    xyz = voxel_mm_coordinates(space.affine, space.t1.shape)
    # cortex of the lateral temporal lobe vs deep white matter (centrum semiovale)
    cortex = (
        (np.abs(xyz[..., 0] - 60) < 6)
        & (np.abs(xyz[..., 1] + 20) < 6)
        & (np.abs(xyz[..., 2] + 10) < 6)
    )
    deep_wm = (
        (np.abs(xyz[..., 0] - 26) < 4)
        & (np.abs(xyz[..., 1] + 10) < 6)
        & (np.abs(xyz[..., 2] - 30) < 4)
    )
    assert space.pet_base[cortex].mean() > 1.3 * space.pet_base[deep_wm].mean()


@pytest.mark.parametrize("codes", ["RAS", "LAS", "LPS", "RPI", "PIR", "ASR"])
def test_reorient_changes_storage_but_not_world_positions(codes: str) -> None:
    rng = np.random.default_rng(0)
    data = rng.random((5, 6, 7)).astype(np.float32)
    affine = np.diag([2.0, 2.5, 3.0, 1.0])
    affine[:3, 3] = [-5, 7, 11]
    new_data, new_affine = reorient(data, affine, codes)
    assert axis_codes(nib.Nifti1Image(new_data, new_affine)) == codes
    old_world = voxel_mm_coordinates(affine, data.shape)[
        np.unravel_index(data.argmax(), data.shape)
    ]
    new_idx = np.unravel_index(new_data.argmax(), new_data.shape)
    new_world = voxel_mm_coordinates(new_affine, new_data.shape)[new_idx]
    assert np.allclose(old_world, new_world)
    assert np.isclose(new_data.sum(), data.sum())


def test_grid_is_centred_on_the_requested_point() -> None:
    affine, shape = grid_affine(np.array([10.0, -20.0, 5.0]), (2.5, 2.5, 3.3), (100.0, 80.0, 66.0))
    assert shape == (40, 32, 20)
    centre = affine[:3, :3] @ ((np.array(shape) - 1) / 2) + affine[:3, 3]
    assert np.allclose(centre, [10, -20, 5])


def test_pose_is_a_scaled_rotation_plus_translation() -> None:
    pose = pose_matrix(np.array([1.1, 0.9, 1.0]), np.array([5.0, -3.0, 8.0]), np.array([1, 2, 3]))
    linear = pose[:3, :3]
    assert np.isclose(np.linalg.det(linear), 1.1 * 0.9 * 1.0)
    rotation = linear @ np.diag(1 / np.array([1.1, 0.9, 1.0]))
    assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.allclose(pose[:3, 3], [1, 2, 3])
