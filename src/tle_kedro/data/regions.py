"""Temporal-lobe regions and the crop box, defined geometrically in MNI152 millimetres.

nilearn bundles the MNI152 template and brain/grey-matter masks but no hippocampus atlas,
so the regions the project needs are boxes in MNI space, drawn from standard anatomy
(hippocampus and amygdala around (±28, −22, −14) mm; lateral temporal neocortex lateral
to |x| = 45 mm). They are used in two places that must agree: the demo generator (where
atrophy and hypometabolism go) and the hand-crafted imaging features.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Side = Literal["L", "R"]
Box = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]

# Left-hemisphere boxes, (x, y, z) ranges in MNI mm; the right one is the mirror image.
REGIONS_MNI_LEFT: dict[str, Box] = {
    # hippocampus + amygdala
    "mesial_temporal": ((-38.0, -18.0), (-42.0, 0.0), (-30.0, -6.0)),
    # middle/inferior temporal gyri and temporal pole
    "lateral_temporal": ((-68.0, -44.0), (-60.0, 12.0), (-36.0, -2.0)),
    # insula / frontal operculum / orbitofrontal: where hypometabolism goes "beyond the
    # temporal lobe" in TLE, and still inside the default crop box
    "extratemporal": ((-44.0, -26.0), (2.0, 28.0), (-12.0, 14.0)),
}
REGION_NAMES: tuple[str, ...] = tuple(REGIONS_MNI_LEFT)

# Box covering both temporal lobes (and the extratemporal regions above), in MNI mm.
DEFAULT_CROP_BOX_MNI: Box = ((-72.0, 72.0), (-64.0, 32.0), (-48.0, 16.0))


def region_box(name: str, side: Side) -> Box:
    """Return the MNI-mm box of ``name`` on hemisphere ``side`` ("L" or "R")."""
    if name not in REGIONS_MNI_LEFT:
        raise ValueError(f"unknown region {name!r}; known regions: {', '.join(REGION_NAMES)}")
    if side not in ("L", "R"):
        raise ValueError(f"side must be 'L' or 'R', got {side!r}")
    (x0, x1), y, z = REGIONS_MNI_LEFT[name]
    if side == "R":
        x0, x1 = -x1, -x0
    return (x0, x1), y, z


def voxel_mm_coordinates(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """World (mm) coordinates of every voxel centre of a grid.

    Args:
        affine: (4, 4) voxel → mm.
        shape: (D, H, W) grid shape.
    Returns:
        (D, H, W, 3) float64 coordinates in mm.
    """
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def region_mask(
    name: str, side: Side, affine: np.ndarray, shape: tuple[int, int, int]
) -> np.ndarray:
    """Boolean (D, H, W) mask of region ``name`` on ``side`` for a grid in MNI space."""
    xyz = voxel_mm_coordinates(affine, shape)
    mask = np.ones(shape, dtype=bool)
    for axis, (lo, hi) in enumerate(region_box(name, side)):
        mask &= (xyz[..., axis] >= lo) & (xyz[..., axis] <= hi)
    return mask


def crop_grid_affine(box: Box, shape: tuple[int, int, int]) -> np.ndarray:
    """Affine (voxel → MNI mm, RAS axis order) of a grid of ``shape`` voxels filling ``box``.

    Voxel centres sit half a voxel inside the box edges.
    """
    spacing = [(hi - lo) / n for (lo, hi), n in zip(box, shape, strict=True)]
    affine = np.eye(4)
    affine[:3, :3] = np.diag(spacing)
    affine[:3, 3] = [lo + s / 2 for (lo, _), s in zip(box, spacing, strict=True)]
    return affine
