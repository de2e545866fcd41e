"""The crop grid in MNI152 millimetres: the box around both temporal lobes and its affine.

Anatomical regions are not defined here: they come from a published atlas
(:mod:`tle_kedro.data.atlas`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Side = Literal["L", "R"]
Box = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]

# Box covering both temporal lobes (and the extratemporal regions above), in MNI mm.
DEFAULT_CROP_BOX_MNI: Box = ((-72.0, 72.0), (-64.0, 32.0), (-48.0, 16.0))


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


def crop_grid_affine(box: Box, shape: tuple[int, int, int]) -> np.ndarray:
    """Affine (voxel → MNI mm, RAS axis order) of a grid of ``shape`` voxels filling ``box``.

    Voxel centres sit half a voxel inside the box edges.
    """
    spacing = [(hi - lo) / n for (lo, hi), n in zip(box, shape, strict=True)]
    affine = np.eye(4)
    affine[:3, :3] = np.diag(spacing)
    affine[:3, 3] = [lo + s / 2 for (lo, _), s in zip(box, spacing, strict=True)]
    return affine
