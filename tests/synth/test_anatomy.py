"""MNI152 anatomy from nilearn's bundled files, the generator's territories, geometry."""

from __future__ import annotations

import socket
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tle_synth.anatomy import (
    axis_codes,
    grid_affine,
    load_template_space,
    pet_base,
    pose_matrix,
    reorient,
)
from tle_synth.territories import TERRITORIES


def voxel_mm_coordinates(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(X, Y, Z, 3) mm of every voxel centre."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def test_template_space_uses_bundled_files_without_any_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the demo anatomy tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("NILEARN_DATA", str(tmp_path / "nilearn_data"))
    load_template_space.cache_clear()
    pet_base.cache_clear()
    space = load_template_space(6)
    assert not (tmp_path / "nilearn_data").exists()  # nothing fetched into the data dir
    assert space.t1.shape == pet_base(6, 8.0).shape
    assert 0 < space.t1.max() <= 1
    assert np.allclose(np.diag(space.affine)[:3], 6)


@pytest.mark.parametrize("name", sorted(TERRITORIES))
def test_each_territory_lies_on_its_hemisphere_inside_the_brain(name: str) -> None:
    space = load_template_space(2)
    xyz = voxel_mm_coordinates(space.affine, space.t1.shape).transpose(3, 0, 1, 2)
    for side, sign in (("L", -1), ("R", 1)):
        mask = TERRITORIES[name].soft_mask(xyz.astype(np.float32), side, 2.0) > 0.5
        assert mask.sum() > 20, name
        assert (np.sign(xyz[0][mask]) == sign).mean() > 0.98, (name, side)
        assert (space.t1[mask] > 0.05).mean() > 0.9, (name, side)  # inside the brain


def test_hippocampus_runs_from_an_anterior_head_to_a_higher_posterior_tail() -> None:
    head, tail = TERRITORIES["hippocampus"].ends("R")
    assert head[1] > tail[1] + 20 and tail[2] > head[2]
    assert 25 <= TERRITORIES["hippocampus"].length_mm <= 45


def test_territory_projection_gives_axis_fraction_and_inside_distance() -> None:
    hippo = TERRITORIES["hippocampus"]
    points = np.stack([hippo.axis_point("L", s) for s in (0.0, 0.5, 1.0)], axis=1)
    s, d = hippo.project(points.astype(np.float32), "L")
    assert np.allclose(s, [0.0, 0.5, 1.0], atol=1e-5)
    assert (d < 0).all()
    rng = np.random.default_rng(0)
    inside = np.stack([hippo.sample_point("L", 0.3, rng) for _ in range(50)], axis=1)
    assert (hippo.project(inside.astype(np.float32), "L")[1] < 0).all()


def test_pet_uptake_is_higher_in_grey_than_white_matter_regions() -> None:
    space = load_template_space(6)
    base = pet_base(6, 8.0)
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
    assert base[cortex].mean() > 1.3 * base[deep_wm].mean()


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
