"""Load one NIfTI volume safely: canonical RAS orientation, one frame, finite voxels.

Every way a file can be unusable raises :class:`UnusableImageError` with an exclusion reason,
so the caller masks that modality instead of crashing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
from nibabel.spatialimages import SpatialImage

from tle_kedro.data.exclusions import Reason

logger = logging.getLogger(__name__)


class UnusableImageError(ValueError):
    """An image that cannot be used; ``reason`` is an exclusion code."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def load_volume(
    path: str | Path, max_nonfinite_fraction: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI file as a 3-D float32 array in canonical RAS voxel order.

    Scale factors (``scl_slope``/``scl_inter``, e.g. int16 PET) are applied; a 4-D image with
    one frame is squeezed. Reorienting only permutes/flips array axes to match the affine
    (world coordinates are unchanged), so left stays left.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        max_nonfinite_fraction: see :func:`clean_non_finite`.
    Returns:
        ``(data, affine)``: (X, Y, Z) float32, axis 0 runs towards Right; (4, 4) voxel → mm.
    Raises:
        UnusableImageError: ``unreadable_image``, ``wrong_dimensionality``,
            ``non_finite_voxels`` or ``blank_image``.
    """
    try:
        image = _as_3d(cast(SpatialImage, nib.load(str(path))))
        image = nib.as_closest_canonical(image)
        data = np.asarray(image.get_fdata(dtype=np.float32))
        affine = np.asarray(image.affine, dtype=np.float64)
    except UnusableImageError:
        raise
    except Exception as err:  # nibabel/gzip/zlib raise many types for a damaged file
        raise UnusableImageError(
            Reason.UNREADABLE_IMAGE,
            f"{Path(path).name} cannot be read ({type(err).__name__}: {err})",
        ) from err
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise UnusableImageError(
            Reason.UNREADABLE_IMAGE, f"{Path(path).name} has an invalid affine (singular or NaN)"
        )
    data = clean_non_finite(data, max_nonfinite_fraction)
    if float(data.max()) <= float(data.min()):
        raise UnusableImageError(Reason.BLANK_IMAGE, "every voxel has the same value")
    return data, affine


def _as_3d(image: SpatialImage) -> SpatialImage:
    """Drop trailing singleton frames; anything else that is not 3-D is unusable."""
    shape = tuple(int(n) for n in image.shape)
    if len(shape) > 3 and all(n == 1 for n in shape[3:]):
        return image.slicer[(..., *([0] * (len(shape) - 3)))]
    if len(shape) != 3:
        raise UnusableImageError(
            Reason.WRONG_DIMENSIONALITY,
            f"shape {shape}: expected a 3-D volume or a 4-D volume with one frame "
            "(sum or pick the frames first)",
        )
    return image


def clean_non_finite(data: np.ndarray, max_fraction: float) -> np.ndarray:
    """Replace scattered NaN/inf by 0; refuse a volume that is mostly or slab-wise non-finite.

    Rule: unusable when more than ``max_fraction`` of the voxels are non-finite, or when a
    whole slice inside the field of view (finite slices on both sides along that axis) is
    non-finite. Non-finite voxels at the borders (e.g. NaN background) become 0.

    Args:
        data: (X, Y, Z) float array (not modified).
    Returns:
        A finite copy (or ``data`` itself when already finite).
    """
    finite = np.isfinite(data)
    if finite.all():
        return data
    fraction = 1.0 - float(finite.mean())
    if fraction > max_fraction or not finite.any():
        raise UnusableImageError(
            Reason.NON_FINITE_VOXELS,
            f"{fraction:.0%} of voxels are NaN/inf (limit {max_fraction:.0%})",
        )
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        has_finite = finite.any(axis=others)
        inside = np.flatnonzero(has_finite)
        slab = np.flatnonzero(~has_finite[inside[0] : inside[-1] + 1])
        if slab.size:
            raise UnusableImageError(
                Reason.NON_FINITE_VOXELS,
                f"{slab.size} slice(s) along axis {axis} (first: {inside[0] + slab[0]}) are "
                "entirely NaN/inf inside the field of view",
            )
    logger.debug("%d non-finite voxels set to 0", int((~finite).sum()))
    return np.where(finite, data, np.float32(0)).astype(np.float32)
