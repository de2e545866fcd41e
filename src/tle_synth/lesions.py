"""Per-patient lesion fields: irregular hypometabolism and hippocampal sclerosis.

Hypometabolism is a fractional FDG loss ``h(m)`` in [0, 0.9] over MNI space::

    h(m) = clip((1 − Π_k (1 − a_k g_k(m))) · (1 + α z(m)), 0, 0.9)

with ``g_k`` anisotropic Gaussian blobs (random centre inside a territory, random sd per axis
and random orientation), ``a_k`` their graded amplitudes and ``z`` a smoothed unit-variance
noise field (amplitude α = ``modulation``) that makes the edges and the interior irregular.
The blobs are not clipped to their territory: a diffuse lesion reaches the neighbouring
cortex, posteriorly or beyond the temporal lobe.

Hippocampal sclerosis darkens T1 along the hippocampal axis around a random centre with a
random extent, modulated by the same kind of noise, and shrinks the tissue around that centre.

Blob parameters come from the patient's latent properties (side, severity, spread, position)
and a generator seeded per subject, so they are reproducible but not in the ground truth:
the truth is built from the latent properties only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.spatial.transform import Rotation

from tle_synth.config import LesionConfig
from tle_synth.territories import EXTRATEMPORAL, TERRITORIES, Side, other_side

if TYPE_CHECKING:
    from tle_synth.images import SubjectSpec


@dataclass(frozen=True)
class Blob:
    """One anisotropic Gaussian: ``a · exp(−½ |diag(1/σ) Rᵀ (m − c)|²)``."""

    centre_mm: np.ndarray  # (3,)
    sigma_mm: np.ndarray  # (3,) sd along the blob's own axes
    rotation: np.ndarray  # (3, 3) columns = the blob's axes in MNI
    amplitude: float

    def reach_mm(self) -> float:
        """Radius outside which the blob is below 1 % of its peak."""
        return 3.0 * float(self.sigma_mm.max())

    def evaluate(self, points: np.ndarray) -> np.ndarray:
        """(...) float32 values at ``points`` (3, ...) MNI mm."""
        rel = points - self.centre_mm.astype(np.float32).reshape(3, *([1] * (points.ndim - 1)))
        local = np.tensordot(self.rotation.T.astype(np.float32), rel, axes=1)
        scaled = local / self.sigma_mm.astype(np.float32).reshape(3, *([1] * (points.ndim - 1)))
        return np.float32(self.amplitude) * np.exp(
            -0.5 * np.einsum("i...,i...->...", *[scaled] * 2)
        )


def _blob(centre: np.ndarray, sigma_mm: float, amplitude: float, rng: np.random.Generator) -> Blob:
    sigmas = sigma_mm * rng.uniform(0.6, 1.5, 3)
    return Blob(centre, sigmas, Rotation.random(random_state=rng).as_matrix(), amplitude)


def blob_sigma(spread: float, cfg: LesionConfig) -> float:
    """Typical blob sd (mm) of a lesion with ``spread`` in [0, 1] (0 focal, 1 diffuse)."""
    lo, hi = cfg.blob_sigma_mm
    return lo + spread * (hi - lo)


def _main_territory(k: int, spread: float, rng: np.random.Generator) -> str:
    """The first blob is hippocampal; later ones go lateral more often the more diffuse."""
    if k == 0:
        return "hippocampus"
    p_lateral = 0.2 + 0.6 * spread
    if rng.random() < p_lateral:
        return "lateral_temporal"
    return str(rng.choice(["hippocampus", "amygdala", "temporal_pole"]))


def pet_blobs(spec: SubjectSpec, cfg: LesionConfig, rng: np.random.Generator) -> list[Blob]:
    """The hypometabolism blobs of one patient (main temporal, contralateral, extratemporal)."""
    side: Side = spec.pet_side  # type: ignore[assignment]
    spread, position = spec.pet_spread, spec.pet_position
    sigma = blob_sigma(spread, cfg)
    n_main = 1 + int(round(spread * (cfg.blob_count_max - 1) * rng.uniform(0.7, 1.0)))
    blobs = []
    for k in range(n_main):
        name = _main_territory(k, spread, rng)
        s = float(np.clip(position + rng.normal(0, 0.1 + 0.2 * spread), 0, 1))
        centre = TERRITORIES[name].sample_point(side, s, rng)
        amplitude = cfg.hypo_max * spec.pet_severity * rng.uniform(0.7, 1.0)
        blobs.append(_blob(centre, sigma, amplitude, rng))
    # Contralateral and extratemporal involvement: wide blobs (upper half of the size range),
    # so that their depth, not only the luck of a small blob's placement, shows in the image.
    lo, hi = cfg.blob_sigma_mm
    if spec.contralateral_ratio > 0:
        for _ in range(1 + int(rng.random() < 0.5)):
            name = str(rng.choice(["hippocampus", "temporal_pole", "lateral_temporal"]))
            centre = TERRITORIES[name].sample_point(other_side(side), rng.uniform(0, 1), rng)
            amplitude = cfg.hypo_max * spec.contralateral_ratio * rng.uniform(0.7, 1.0)
            blobs.append(_blob(centre, rng.uniform((lo + hi) / 2, hi), amplitude, rng))
    if spec.extratemporal_severity > 0:
        names = rng.choice(list(EXTRATEMPORAL), size=1 + int(rng.random() < 0.4), replace=False)
        for name in names:
            centre = TERRITORIES[str(name)].sample_point(side, rng.uniform(0, 1), rng)
            amplitude = cfg.hypo_max * spec.extratemporal_severity * rng.uniform(0.7, 1.0)
            blobs.append(_blob(centre, rng.uniform((lo + hi) / 2, hi), amplitude, rng))
    return blobs


def modulation_field(
    shape: tuple[int, ...], sigma_vox: float, amplitude: float, rng: np.random.Generator
) -> np.ndarray:
    """(shape) float32 ``clip(1 + amplitude · z, 0, 2)``, z smoothed unit-variance noise."""
    z = gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma_vox)
    z /= max(float(z.std()), 1e-6)
    return np.clip(1.0 + np.float32(amplitude) * z, 0.0, 2.0)


def hypometabolism(
    blobs: list[Blob],
    points: np.ndarray,
    cfg: LesionConfig,
    voxel_mm: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Fractional FDG loss (...) in [0, 0.9] at ``points`` (3, ...), see the module docstring."""
    survive = np.ones(points.shape[1:], dtype=np.float32)
    for blob in blobs:
        survive *= 1.0 - blob.evaluate(points)
    noise = modulation_field(survive.shape, cfg.modulation_scale_mm / voxel_mm, cfg.modulation, rng)
    return np.clip((1.0 - survive) * noise, 0.0, 0.9)


def hs_centre_mm(side: str, position: float) -> np.ndarray:
    """(3,) MNI mm of the HS centre at axis fraction ``position`` of the hippocampus."""
    return TERRITORIES["hippocampus"].axis_point(side, position)  # type: ignore[arg-type]


def hs_extent_mm(extent: float, cfg: LesionConfig) -> float:
    """Sd (mm) along the hippocampal axis of an HS with unitless ``extent`` in [0, 1]."""
    lo, hi = cfg.hs_extent_mm
    return lo + extent * (hi - lo)


def hs_darkening(
    spec: SubjectSpec,
    points: np.ndarray,
    cfg: LesionConfig,
    voxel_mm: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Fractional T1 loss (...) of hippocampal sclerosis at ``points`` (3, ...) MNI mm.

    ``darkening · severity · exp(−½ (L (s − s0) / extent)²) · mask · (1 + α z)``, with ``s``
    the hippocampal axis fraction, ``L`` the axis length, ``s0`` the patient's HS position.
    """
    hippo = TERRITORIES["hippocampus"]
    side: Side = spec.hs_side  # type: ignore[assignment]
    s, d = hippo.project(points, side)
    along = (s - np.float32(spec.hs_position)) * np.float32(hippo.length_mm)
    extent = hs_extent_mm(spec.hs_extent, cfg)
    mask = 1.0 / (1.0 + np.exp(np.clip(d / np.float32(cfg.territory_edge_mm), -30, 30)))
    profile = np.exp(-0.5 * (along / np.float32(extent)) ** 2) * mask
    noise = modulation_field(s.shape, cfg.modulation_scale_mm / voxel_mm, cfg.modulation, rng)
    loss = cfg.hs_t1_darkening * spec.hs_severity * profile * noise
    return np.clip(loss, 0.0, 0.95).astype(np.float32)
