"""The generator's own anatomical territories: tapered capsules in MNI152 millimetres.

A territory is a segment from its anterior to its posterior end with a radius that varies
linearly along it (a tapered capsule): the hippocampus is a curved-up tube along its long
axis, the lateral temporal neocortex a long thick one, the thalamus a short one. Position
along a territory is ``s`` in [0, 1] (0 anterior, 1 posterior), so a lesion can sit at the
hippocampal head or tail, or in the anterior or posterior temporal neocortex.

These numbers are the generator's own, read off standard anatomy (Duvernoy's hippocampus;
the MNI152 template) and deliberately coarse: they are *not* the boxes or the atlas labels the
pipeline measures. Lesions are drawn with centres inside a territory and spread freely
beyond it (``lesions.py``); FDG loss follows the tissue's uptake, so it is grey-matter
weighted wherever it lands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Side = Literal["L", "R"]


@dataclass(frozen=True)
class Territory:
    """A tapered capsule on the left hemisphere (the right one is its mirror in x).

    Attributes:
        anterior_mm, posterior_mm: (x, y, z) MNI mm of the two ends of the axis.
        radius_mm: (anterior, posterior) radius.
    """

    anterior_mm: tuple[float, float, float]
    posterior_mm: tuple[float, float, float]
    radius_mm: tuple[float, float]

    def ends(self, side: Side) -> tuple[np.ndarray, np.ndarray]:
        """(anterior, posterior) (3,) MNI mm on ``side``."""
        flip = np.array([1.0 if side == "L" else -1.0, 1.0, 1.0])
        return np.asarray(self.anterior_mm) * flip, np.asarray(self.posterior_mm) * flip

    def axis_point(self, side: Side, s: float) -> np.ndarray:
        """(3,) MNI mm of the point at fraction ``s`` of the axis (0 anterior)."""
        a, b = self.ends(side)
        return a + float(np.clip(s, 0, 1)) * (b - a)

    def radius(self, s: np.ndarray | float) -> np.ndarray:
        """Radius (mm) at axis fraction ``s``."""
        r0, r1 = self.radius_mm
        return r0 + np.clip(s, 0, 1) * (r1 - r0)

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(np.subtract(self.posterior_mm, self.anterior_mm)))

    def project(self, points: np.ndarray, side: Side) -> tuple[np.ndarray, np.ndarray]:
        """Axis fraction ``s`` and signed distance to the surface (mm, < 0 inside).

        Args:
            points: (3, ...) MNI mm.
        Returns:
            ``(s, d)``, each of shape ``points.shape[1:]``.
        """
        a, b = self.ends(side)
        axis = (b - a).astype(np.float32)
        rel = points - a.astype(np.float32).reshape(3, *([1] * (points.ndim - 1)))
        s = np.clip(np.tensordot(axis, rel, axes=1) / np.float32(axis @ axis), 0, 1)
        closest = rel - axis.reshape(3, *([1] * (points.ndim - 1))) * s[None]
        dist = np.sqrt(np.einsum("i...,i...->...", closest, closest))
        return s, dist - self.radius(s).astype(np.float32)

    def soft_mask(self, points: np.ndarray, side: Side, edge_mm: float) -> np.ndarray:
        """(...) float32 in (0, 1): a logistic step of width ``edge_mm`` at the surface."""
        _, d = self.project(points, side)
        return (1.0 / (1.0 + np.exp(np.clip(d / np.float32(edge_mm), -30, 30)))).astype(np.float32)

    def sample_point(self, side: Side, s: float, rng: np.random.Generator) -> np.ndarray:
        """A random (3,) point inside the capsule at axis fraction ``s`` (within 0.7 radius)."""
        a, b = self.ends(side)
        axis = (b - a) / np.linalg.norm(b - a)
        offset = rng.normal(size=3)
        offset -= (offset @ axis) * axis  # perpendicular to the axis
        norm = max(float(np.linalg.norm(offset)), 1e-9)
        offset *= rng.uniform(0, 0.7) * float(self.radius(s)) / norm
        return self.axis_point(side, s) + offset


TERRITORIES: dict[str, Territory] = {
    # hippocampus: head (anterior, inferior, lateral) to tail (posterior, rising, medial)
    "hippocampus": Territory((-29.0, -11.0, -20.0), (-23.0, -39.0, -1.0), (5.5, 3.5)),
    "amygdala": Territory((-21.0, 0.0, -20.0), (-25.0, -6.0, -16.0), (6.5, 5.5)),
    "temporal_pole": Territory((-35.0, 19.0, -33.0), (-45.0, 4.0, -29.0), (9.0, 11.0)),
    # middle/inferior/superior temporal gyri, anterior to posterior
    "lateral_temporal": Territory((-55.0, -3.0, -25.0), (-59.0, -55.0, 3.0), (10.0, 10.0)),
    "insula_operculum": Territory((-35.0, 17.0, -1.0), (-40.0, -15.0, 9.0), (8.0, 8.0)),
    "orbitofrontal": Territory((-17.0, 37.0, -19.0), (-29.0, 17.0, -16.0), (8.0, 8.0)),
    "thalamus": Territory((-8.0, -7.0, 5.0), (-13.0, -29.0, 8.0), (6.5, 7.0)),
}
MESIAL: tuple[str, ...] = ("hippocampus", "amygdala")
TEMPORAL: tuple[str, ...] = (*MESIAL, "temporal_pole", "lateral_temporal")
EXTRATEMPORAL: tuple[str, ...] = ("insula_operculum", "orbitofrontal", "thalamus")


def other_side(side: str) -> Side:
    """The contralateral side."""
    return "R" if side == "L" else "L"
