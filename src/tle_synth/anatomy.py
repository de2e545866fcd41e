"""MNI152 anatomy of the synthetic cohort, and the geometry that places it in a scanner.

The template, grey/white-matter maps and brain mask come from the files bundled inside the
``nilearn`` package (``nilearn.datasets.load_mni152_*``): nothing is downloaded. What does
not depend on the patient (the template, the FDG uptake, its smoothing to each site's PET
resolution) is computed once per process and cached.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import nibabel as nib
import numpy as np
from nibabel.orientations import (
    apply_orientation,
    axcodes2ornt,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)
from scipy.ndimage import gaussian_filter, map_coordinates

logger = logging.getLogger(__name__)

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
# Relative FDG uptake of grey matter, white matter and CSF inside the brain.
UPTAKE_GM, UPTAKE_WM, UPTAKE_CSF = 1.0, 0.3, 0.05


@dataclass(frozen=True)
class TemplateSpace:
    """Patient-independent volumes on the MNI152 template grid (all (X, Y, Z) float32).

    Attributes:
        affine: (4, 4) voxel → MNI mm (RAS).
        resolution_mm: template voxel size.
        t1: T1 template scaled to [0, 1].
        uptake: FDG uptake before any smoothing (grey-matter weighted).
        brain_centre_mm: (3,) centre of the brain mask in MNI mm.
        support_mm: (2, 3) MNI-mm bounding box (min, max) outside which every volume is 0.
    """

    affine: np.ndarray
    resolution_mm: int
    t1: np.ndarray
    uptake: np.ndarray
    brain_centre_mm: np.ndarray
    support_mm: np.ndarray

    def voxel_sigma(self, fwhm_mm: float) -> float:
        """Gaussian sigma in template voxels of a ``fwhm_mm`` blur."""
        return fwhm_mm * FWHM_TO_SIGMA / self.resolution_mm


def _load_bundled(resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(affine, t1, gm, wm) from nilearn's bundled MNI152 files (no download)."""
    from nilearn import datasets  # heavy import, only when images are made

    t1_img = datasets.load_mni152_template(resolution=resolution)
    gm = datasets.load_mni152_gm_template(resolution=resolution).get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=resolution).get_fdata(dtype=np.float32)
    t1 = t1_img.get_fdata(dtype=np.float32)
    t1 = np.where(t1 > 0.01, t1, 0).clip(0, 1)  # resampling leaves a faint non-zero halo
    return t1_img.affine, t1, np.clip(gm, 0, 1), np.clip(wm, 0, 1)


@lru_cache(maxsize=2)
def load_template_space(resolution: int) -> TemplateSpace:
    """Build (once per process and resolution) the :class:`TemplateSpace`."""
    affine, t1, gm, wm = _load_bundled(resolution)
    brain = t1 > 0.05
    uptake = brain * (UPTAKE_GM * gm + UPTAKE_WM * wm + UPTAKE_CSF * (1 - gm - wm).clip(0))
    centre = np.argwhere(brain).mean(axis=0)
    # PET blur (<= ~10 mm FWHM) spreads uptake a few mm past the brain: pad the support.
    pad = int(np.ceil(8.0 / resolution))
    support = np.argwhere(t1 > 0)
    corners = np.stack([support.min(axis=0) - pad, support.max(axis=0) + pad]).astype(float)
    logger.info("MNI152 template space ready: %s voxels at %d mm", t1.shape, resolution)
    return TemplateSpace(
        affine=affine,
        resolution_mm=resolution,
        t1=t1,
        uptake=uptake.astype(np.float32),
        brain_centre_mm=centre @ affine[:3, :3].T + affine[:3, 3],
        support_mm=np.sort(corners @ affine[:3, :3].T + affine[:3, 3], axis=0),
    )


@lru_cache(maxsize=8)
def pet_base(resolution: int, fwhm_mm: float) -> np.ndarray:
    """(X, Y, Z) float32 healthy FDG uptake smoothed to a site's PET resolution (cached)."""
    space = load_template_space(resolution)
    out = gaussian_filter(space.uptake, space.voxel_sigma(fwhm_mm)).astype(np.float32)
    out.setflags(write=False)  # shared between patients: a patient works on a copy
    return out


def rotation_matrix(angles_deg: np.ndarray) -> np.ndarray:
    """(3, 3) rotation R = Rz · Ry · Rx for angles (x, y, z) in degrees."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def pose_matrix(scale: np.ndarray, angles_deg: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(4, 4) MNI mm → the patient's scanner (world) mm: ``world = R · diag(scale) · m + t``."""
    pose = np.eye(4)
    pose[:3, :3] = rotation_matrix(angles_deg) @ np.diag(scale)
    pose[:3, 3] = translation
    return pose


def grid_affine(
    centre_mm: np.ndarray, voxel_mm: tuple[float, float, float], fov_mm: tuple[float, float, float]
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """RAS grid (affine (4, 4), shape) of ``voxel_mm`` voxels covering ``fov_mm`` at a centre."""
    voxel = np.asarray(voxel_mm, dtype=float)
    nx, ny, nz = (int(np.ceil(f / v)) for f, v in zip(fov_mm, voxel, strict=True))
    shape = (nx, ny, nz)
    affine = np.diag([*voxel, 1.0])
    affine[:3, 3] = np.asarray(centre_mm) - (np.asarray(shape) - 1) / 2 * voxel
    return affine, shape


def sample_on_grid(volume: np.ndarray, volume_affine: np.ndarray, mni_points: np.ndarray):
    """Trilinear sample of an MNI-grid ``volume`` at MNI-mm points (3, ...); 0 outside.

    Returns:
        float32 array of shape ``mni_points.shape[1:]``.
    """
    inv = np.linalg.inv(volume_affine).astype(np.float32)
    flat = mni_points.reshape(3, -1)
    coords = inv[:3, :3] @ flat + inv[:3, 3:]  # (3, N) template voxel coordinates
    out = map_coordinates(volume, coords, order=1, mode="constant", cval=0.0, output=np.float32)
    return out.reshape(mni_points.shape[1:])


def reorient(data: np.ndarray, affine: np.ndarray, codes: str) -> tuple[np.ndarray, np.ndarray]:
    """Store (X, Y, Z) ``data`` in axis order ``codes`` (e.g. "LPS"), adjusting the affine.

    The world coordinates of every voxel are unchanged: only the storage order differs.
    """
    transform = ornt_transform(io_orientation(affine), axcodes2ornt(tuple(codes)))
    new_data = apply_orientation(data, transform)
    new_affine = affine @ inv_ornt_aff(transform, data.shape)
    return np.ascontiguousarray(new_data), new_affine


def axis_codes(img: nib.Nifti1Image) -> str:
    """Orientation of an image as a 3-letter code (e.g. ``"RAS"``)."""
    return "".join(nib.aff2axcodes(img.affine))
