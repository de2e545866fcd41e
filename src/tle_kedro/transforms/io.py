"""Load one NIfTI volume safely: canonical RAS orientation, one frame, finite voxels.

Every way a file can be unusable raises :class:`UnusableImageError` with an exclusion reason,
so the caller masks that modality instead of crashing. The header is judged before any voxel is
read (:func:`check_header`): a file whose header claims more voxels than allowed, or more bytes
than the file holds, is refused in milliseconds and without allocating the claimed array (a
truncated 2 MiB file claiming 2048³ voxels once took 8 GiB); so is an image without a trusted
orientation, since left and right are the question in epilepsy surgery.
"""

from __future__ import annotations

import gzip
import logging
import struct
import zlib
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
from nibabel.spatialimages import SpatialImage

from tle_kedro.data.exclusions import Reason
from tle_kedro.transforms.params import HeaderChecks

logger = logging.getLogger(__name__)


class UnusableImageError(ValueError):
    """An image that cannot be used; ``reason`` is an exclusion code."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def load_volume(
    path: str | Path,
    max_nonfinite_fraction: float = 0.5,
    checks: HeaderChecks | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI file as a 3-D float32 array in canonical RAS voxel order.

    Scale factors (``scl_slope``/``scl_inter``, e.g. int16 PET) are applied; a 4-D image with
    one frame is squeezed. Reorienting only permutes/flips array axes to match the affine
    (world coordinates are unchanged), so left stays left.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        max_nonfinite_fraction: see :func:`clean_non_finite`.
        checks: header limits (:func:`check_header`); ``HeaderChecks()`` when None.
    Returns:
        ``(data, affine)``: (X, Y, Z) float32, axis 0 runs towards Right; (4, 4) voxel → mm.
    Raises:
        UnusableImageError: ``unreadable_image``, ``image_too_large``, ``no_orientation``,
            ``orientation_conflict``, ``wrong_dimensionality``, ``non_finite_voxels`` or
            ``blank_image``.
    """
    try:
        header_checked = check_header(path, checks or HeaderChecks())
        image = _as_3d(header_checked)
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


def check_header(path: str | Path, checks: HeaderChecks) -> SpatialImage:
    """Open ``path`` lazily and refuse it from its header alone (no voxel is read).

    In order: the compression must match the name (gzip magic bytes iff ``.gz``); the header
    must claim at most ``checks.max_voxels`` voxels; the file must hold the bytes the header
    claims (``.nii``: its size; ``.nii.gz``: the gzip trailer's length, confirmed by a streamed
    count when it disagrees, so memory stays at one 1 MiB chunk); at least one of ``sform_code``
    / ``qform_code`` must be set, and when both are, the two affines must place every corner of
    the field of view within ``checks.orientation_tolerance_mm`` of each other.

    Returns:
        The lazily loaded image (its ``affine`` is the sform when set, else the qform).
    Raises:
        UnusableImageError: ``unreadable_image``, ``image_too_large``, ``no_orientation`` or
            ``orientation_conflict``.
    """
    path = Path(path)
    name = path.name
    _check_compression(path)
    image = cast(SpatialImage, nib.load(str(path)))
    header = image.header
    if not isinstance(header, nib.Nifti1Header):  # Nifti2Header subclasses it
        raise UnusableImageError(Reason.UNREADABLE_IMAGE, f"{name} is not a NIfTI image")
    shape = tuple(int(n) for n in header.get_data_shape())
    n_voxels = int(np.prod(shape, dtype=np.int64))
    if n_voxels > checks.max_voxels:
        raise UnusableImageError(
            Reason.IMAGE_TOO_LARGE,
            f"{name}: header claims shape {shape} = {n_voxels:,} voxels, above "
            f"preprocessing.header_checks.max_voxels = {checks.max_voxels:,}",
        )
    # The proxy keeps the file's vox_offset (the image's header copy resets it to 0).
    offset = int(getattr(image.dataobj, "offset", header.get_data_offset()))
    claimed = offset + n_voxels * header.get_data_dtype().itemsize
    held = _stored_bytes(path, claimed)
    if held < claimed:
        raise UnusableImageError(
            Reason.UNREADABLE_IMAGE,
            f"{name} is truncated: its header claims {claimed:,} bytes of image "
            f"(shape {shape}, {header.get_data_dtype()}) but the file holds {held:,}",
        )
    _check_orientation(name, header, shape, checks.orientation_tolerance_mm)
    return image


def _check_compression(path: Path) -> None:
    with open(path, "rb") as handle:
        is_gzip = handle.read(2) == GZIP_MAGIC
    named_gzip = path.name.endswith(".gz")
    if is_gzip and not named_gzip:
        raise UnusableImageError(
            Reason.UNREADABLE_IMAGE,
            f"{path.name} is gzip-compressed but not named .gz; rename it to {path.name}.gz",
        )
    if named_gzip and not is_gzip:
        raise UnusableImageError(
            Reason.UNREADABLE_IMAGE,
            f"{path.name} is named .gz but is not gzip-compressed; rename it without .gz",
        )


def _stored_bytes(path: Path, claimed: int) -> int:
    """Bytes the file really holds (uncompressed), counted up to ``claimed``."""
    size = path.stat().st_size
    if not path.name.endswith(".gz"):
        return size
    with open(path, "rb") as handle:
        handle.seek(max(0, size - 4))
        trailer = handle.read(4)
    # ISIZE: the uncompressed length modulo 2**32 (RFC 1952); a match is the common case.
    if len(trailer) == 4 and struct.unpack("<I", trailer)[0] == claimed % 2**32:
        return claimed
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while total < claimed and (chunk := stream.read(min(_CHUNK, claimed - total))):
                total += len(chunk)
    except (EOFError, OSError, zlib.error):
        pass  # a truncated or damaged stream holds what was decompressed so far
    return total


def _check_orientation(
    name: str, header: nib.Nifti1Header, shape: tuple[int, ...], tolerance_mm: float
) -> None:
    sform, sform_code = header.get_sform(coded=True)
    qform, qform_code = header.get_qform(coded=True)
    if not sform_code and not qform_code:
        raise UnusableImageError(
            Reason.NO_ORIENTATION,
            f"{name}: sform_code and qform_code are both 0, so left and right are unknown; "
            "re-export it from the scanner data (e.g. dcm2niix) with its orientation",
        )
    if sform_code and qform_code:
        corners = np.array(np.meshgrid(*[(0, max(n - 1, 0)) for n in shape[:3]])).reshape(3, -1)
        homogeneous = np.vstack([corners, np.ones(corners.shape[1])])
        gap = float(np.linalg.norm((sform - qform)[:3] @ homogeneous, axis=0).max())
        if gap > tolerance_mm:
            raise UnusableImageError(
                Reason.ORIENTATION_CONFLICT,
                f"{name}: qform and sform disagree by up to {gap:.1f} mm over the field of view "
                f"(limit preprocessing.header_checks.orientation_tolerance_mm = {tolerance_mm})",
            )


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
