"""Registration recovers known transforms; grids and composition keep world coordinates."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from tle_kedro.transforms.params import RegistrationParams
from tle_kedro.transforms.registration import (
    chain,
    register,
    resample_to_grid,
    to_numpy,
    to_sitk,
)
from tle_kedro.transforms.templates import mni_templates

# Stated tolerance: mean displacement error over the brain after registering at 4 mm.
MEAN_TOLERANCE_MM = 1.0
MAX_TOLERANCE_MM = 2.5


def _known_affine(rigid: bool) -> sitk.AffineTransform:
    """MNI → moving: rotation (6°, -4°, 7°), translation (5, -6, 4) mm, scaling unless rigid."""
    euler = sitk.Euler3DTransform()
    euler.SetRotation(*np.deg2rad([6.0, -4.0, 7.0]))
    scale = np.eye(3) if rigid else np.diag([1.05, 0.96, 1.03])
    transform = sitk.AffineTransform(3)
    transform.SetMatrix((np.reshape(euler.GetMatrix(), (3, 3)) @ scale).flatten().tolist())
    transform.SetTranslation([5.0, -6.0, 4.0])
    return transform


def _moved(image: sitk.Image, truth: sitk.Transform) -> sitk.Image:
    """``image`` seen through ``truth``: moved(truth(p)) = image(p)."""
    return sitk.Resample(image, image, truth.GetInverse(), sitk.sitkLinear, 0.0)


def _errors_mm(estimate: sitk.Transform, truth: sitk.Transform) -> np.ndarray:
    templates = mni_templates(4.0)
    image = templates.t1
    ijk = np.argwhere(templates.brain)[::3]
    points = ijk * np.array(image.GetSpacing()) + np.array(image.GetOrigin())
    return np.array(
        [
            np.linalg.norm(np.subtract(estimate.TransformPoint(p), truth.TransformPoint(p)))
            for p in points.tolist()
        ]
    )


@pytest.mark.parametrize(("kind", "source"), [("affine", "t1"), ("rigid", "pet")])
def test_registration_recovers_a_known_transform(kind: str, source: str) -> None:
    templates = mni_templates(4.0)
    truth = _known_affine(rigid=kind == "rigid")
    moving = _moved(getattr(templates, source), truth)
    # PET-like moving onto the T1 template: the cross-modal (mutual information) case.
    estimate = register(templates.t1, moving, kind, RegistrationParams())  # type: ignore[arg-type]
    errors = _errors_mm(estimate, truth)
    assert errors.mean() < MEAN_TOLERANCE_MM
    assert errors.max() < MAX_TOLERANCE_MM


def test_to_sitk_keeps_world_coordinates_of_every_voxel() -> None:
    affine = np.array([[0, 0, 2.5, -40], [-2.0, 0, 0, 60], [0, 3.0, 0, -20], [0, 0, 0, 1]])
    image = to_sitk(np.zeros((4, 5, 6), np.float32), affine)
    for ijk in [(0, 0, 0), (3, 4, 5), (1, 2, 3)]:
        expected = affine[:3, :3] @ ijk + affine[:3, 3]
        np.testing.assert_allclose(image.TransformIndexToPhysicalPoint(ijk), expected)


def test_to_numpy_inverts_to_sitk_layout() -> None:
    data = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    np.testing.assert_array_equal(to_numpy(to_sitk(data, np.eye(4))), data)


def test_chain_applies_the_first_transform_first() -> None:
    shift = sitk.TranslationTransform(3, (10.0, 0.0, 0.0))
    double = sitk.ScaleTransform(3, (2.0, 2.0, 2.0))
    assert chain(shift, double).TransformPoint((1.0, 1.0, 1.0)) == (22.0, 2.0, 2.0)


def test_resample_to_grid_box_average_of_a_ramp_is_the_ramp_at_voxel_centres() -> None:
    ramp = np.broadcast_to(np.arange(40, dtype=np.float32)[:, None, None], (40, 20, 20)).copy()
    image = to_sitk(ramp, np.eye(4))  # value = x in mm
    grid = np.diag([4.0, 4.0, 4.0, 1.0])
    grid[:3, 3] = [10.0, 5.0, 5.0]
    out = resample_to_grid(image, sitk.Transform(3, sitk.sitkIdentity), grid, (4, 2, 2))
    np.testing.assert_allclose(out[:, 0, 0], [10.0, 14.0, 18.0, 22.0], atol=1e-4)
