"""One synthetic patient's T1 and FDG PET, rendered on demand from a :class:`SubjectSpec`.

Geometry: each patient has a head pose (global scale, rotation, translation) mapping MNI mm
to scanner (world) mm, plus a small smooth deformation. The scanner grids are axis-aligned
and centred on the scanner's isocentre (plus a small field-of-view offset), not on the head:
the pose is in the voxels, never in the affine, and registration has to find it. The PET
session has its own head position (a small rigid motion on top of the T1 pose). Each patient
is scanned at one site, whose voxel sizes, PET resolution, noise and intensity scale apply.
T1 and PET may be stored in different axis orders; the affine always says where a voxel is.

Disease (``lesions.py``): hippocampal sclerosis darkens and shrinks part of the hippocampus in
T1; hypometabolism lowers FDG uptake in an irregular field of blobs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from tle_synth.acquisition import XYZ as _XYZ
from tle_synth.anatomy import (
    UPTAKE_GM,
    TemplateSpace,
    grid_affine,
    load_template_space,
    pet_base,
    pose_matrix,
    reorient,
    sample_on_grid,
)
from tle_synth.config import DemoCohortConfig, SiteConfig
from tle_synth.lesions import hs_centre_mm, hs_darkening, hs_extent_mm, hypometabolism, pet_blobs


@dataclass(frozen=True)
class SubjectSpec:
    """Everything needed to render one patient's images (cheap to hold for a whole cohort).

    Sides are "L"/"R" ("" = absent); latent properties are unitless in [0, 1] (see
    ``latent.py``); vectors are (x, y, z).
    """

    participant_id: str
    seed: tuple[int, int]
    site: str
    hs_side: str
    hs_severity: float
    hs_position: float
    hs_extent: float
    pet_side: str
    pet_severity: float
    pet_spread: float
    pet_position: float
    contralateral_ratio: float
    extratemporal_severity: float
    scale: tuple[float, float, float]
    rotation_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]
    pet_rotation_deg: tuple[float, float, float]
    pet_translation_mm: tuple[float, float, float]
    t1_offset_mm: tuple[float, float, float]
    pet_offset_mm: tuple[float, float, float]
    t1_orientation: str
    pet_orientation: str
    pet_dtype: str
    pet_frames: int
    pet_scale_factor: float
    t1_gain: float
    has_t1: bool  # False: the T1 was never acquired (no file is written)
    has_pet: bool

    @classmethod
    def from_row(cls, row: pd.Series, seed: tuple[int, int]) -> SubjectSpec:
        """Build from a merged latent + acquisition row (see :func:`sample_acquisition`)."""
        vec = {k: tuple(float(row[f"{k}_{a}"]) for a in _XYZ) for k in _VECTOR_FIELDS}
        cast: dict[str, Callable[[Any], object]] = {  # plain Python values, not numpy
            "str": str,
            "int": int,
            "float": float,
            "bool": lambda v: bool(int(v)),
        }
        scalars = {k: cast[t](row[k]) for k, t in _SCALAR_FIELDS.items()}
        return cls(seed=seed, **vec, **scalars)  # type: ignore[arg-type]


_VECTOR_FIELDS = (
    "scale",
    "rotation_deg",
    "translation_mm",
    "pet_rotation_deg",
    "pet_translation_mm",
    "t1_offset_mm",
    "pet_offset_mm",
)
_SCALAR_FIELDS = {
    name: str(f.type)
    for name, f in SubjectSpec.__dataclass_fields__.items()
    if name not in (*_VECTOR_FIELDS, "seed")
}


def without_lesions(spec: SubjectSpec) -> SubjectSpec:
    """The same patient and acquisition with no lesion (a healthy reference rendering)."""
    return replace(
        spec,
        hs_side="",
        hs_severity=0.0,
        pet_severity=0.0,
        contralateral_ratio=0.0,
        extratemporal_severity=0.0,
    )


def subject_pose(spec: SubjectSpec, modality: str = "t1") -> np.ndarray:
    """(4, 4) MNI mm → this patient's scanner mm in a session (before the deformation).

    The PET session adds a rigid motion about the MNI origin (the head lay differently).
    """
    pose = pose_matrix(
        np.array(spec.scale), np.array(spec.rotation_deg), np.array(spec.translation_mm)
    )
    if modality == "pet":
        motion = pose_matrix(
            np.ones(3), np.array(spec.pet_rotation_deg), np.array(spec.pet_translation_mm)
        )
        pose = motion @ pose
    return pose


def _grid_points(voxel_to_mm: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(3, X, Y, Z) float32 mm of every voxel, built by broadcasting 1-D ramps (fast)."""
    out = np.empty((3, *shape), dtype=np.float32)
    ramps = [np.arange(n, dtype=np.float32) for n in shape]
    for row in range(3):
        m = voxel_to_mm[row].astype(np.float32)
        out[row] = (
            (m[0] * ramps[0])[:, None, None]
            + (m[1] * ramps[1])[None, :, None]
            + (m[2] * ramps[2])[None, None, :]
            + m[3]
        )
    return out


def _deform(
    points: np.ndarray, voxel_to_mm: np.ndarray, amplitude_mm: float, rng: np.random.Generator
) -> None:
    """Add in place a smooth random displacement d(m) = Σ_q w_q p_q sin(k_q · m + φ_q).

    ``points`` (3, X, Y, Z) are the MNI mm ``voxel_to_mm @ ijk`` of a grid. k · m is affine
    in (i, j, k), so each sinusoid is the imaginary part of an outer product of three 1-D
    complex exponentials (no per-voxel trigonometry). The field depends only on ``rng`` and
    MNI position, so the T1 and PET of one patient share it.
    """
    if amplitude_mm == 0:
        return
    ramps = [np.arange(n, dtype=np.float32) for n in points.shape[1:]]
    sines = np.empty((4, *points.shape[1:]), dtype=np.float32)
    vectors = np.empty((3, 4), dtype=np.float32)
    for q in range(4):
        direction, polarisation = rng.normal(size=3), rng.normal(size=3)
        wavenumber = 2 * np.pi / rng.uniform(80.0, 140.0) * direction / np.linalg.norm(direction)
        phase = rng.uniform(0, 2 * np.pi)
        vectors[:, q] = (
            amplitude_mm * rng.normal() / 2 * polarisation / np.linalg.norm(polarisation)
        )
        along = wavenumber @ voxel_to_mm[:3, :3]  # phase step per voxel along each axis
        start = np.exp(1j * (wavenumber @ voxel_to_mm[:3, 3] + phase))
        e = [np.exp(1j * along[a] * ramps[a]).astype(np.complex64) for a in range(3)]
        plane = (start * e[0])[:, None] * e[1][None, :]  # (X, Y) complex
        # Im(plane · e2) without a (X, Y, Z) complex temporary
        np.multiply(plane.real[..., None], e[2].imag, out=sines[q])
        sines[q] += plane.imag[..., None] * e[2].real
    # (3, 4) @ (4, N): one BLAS call adds the four displacement fields
    points += (vectors @ sines.reshape(4, -1)).reshape(points.shape)


def _shrink(points: np.ndarray, centre: np.ndarray, amount: float, sigma_mm: float) -> None:
    """Make tissue around ``centre`` look smaller by ``amount`` (sample farther out), in place.

    ``points`` (3, X, Y, Z) MNI mm; displacement amount · exp(-r² / 2σ²) · (m − centre).
    """
    offset = points - centre.astype(np.float32)[:, None, None, None]
    weight = np.exp(-np.einsum("i...,i...->...", offset, offset) / np.float32(2 * sigma_mm**2))
    points += (np.float32(amount) * weight)[None] * offset


def subject_mni_points(
    spec: SubjectSpec,
    world_affine: np.ndarray,
    shape: tuple[int, int, int],
    cfg: DemoCohortConfig,
    modality: str = "t1",
) -> np.ndarray:
    """(3, X, Y, Z) MNI mm that each voxel of a scanner grid images, for this patient.

    Inverse pose of the session, then the patient's seeded smooth deformation, then the HS
    volume loss around its centre on the hippocampal axis.
    """
    voxel_to_mni = np.linalg.inv(subject_pose(spec, modality)) @ world_affine
    mni = _grid_points(voxel_to_mni, shape)
    rng = np.random.default_rng([*spec.seed, 1])
    _deform(mni, voxel_to_mni, cfg.anatomy.deformation_mm, rng)
    if spec.hs_side:
        centre = hs_centre_mm(spec.hs_side, spec.hs_position)
        amount = cfg.lesions.hs_shrink * spec.hs_severity
        _shrink(mni, centre, amount, 1.5 * hs_extent_mm(spec.hs_extent, cfg.lesions))
    return mni


def _bias_field(shape: tuple[int, int, int], strength: float, rng: np.random.Generator):
    """(X, Y, Z) smooth multiplicative field exp(strength · Σ_axis quadratic(axis))."""
    log_field = np.zeros(shape, dtype=np.float32)
    for axis, n in enumerate(shape):
        u = np.linspace(-1.0, 1.0, n, dtype=np.float32)
        c1, c2 = rng.normal(0.0, 0.5, 2)
        profile = c1 * u + c2 * (u**2 - 1.0 / 3.0)
        log_field = log_field + profile.reshape([-1 if a == axis else 1 for a in range(3)])
    return np.exp(strength * log_field)


def _nifti(data: np.ndarray, affine: np.ndarray, dtype: str | None = None) -> nib.Nifti1Image:
    """NIfTI-1 image with scanner-anatomical qform/sform and mm units."""
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    if dtype is not None:
        img.set_data_dtype(np.dtype(dtype))  # float data + int16 on disk → scl_slope is set
    return img


def _support_slices(
    pose: np.ndarray,
    space: TemplateSpace,
    affine: np.ndarray,
    shape: tuple[int, int, int],
    margin_mm: float,
) -> tuple[slice, slice, slice]:
    """Voxel box of a scanner grid that can hold non-zero signal (the rest stays 0)."""
    corners = np.array(list(itertools.product(*space.support_mm.T)))  # (8, 3) MNI mm
    to_voxel = np.linalg.inv(affine) @ pose
    voxels = corners @ to_voxel[:3, :3].T + to_voxel[:3, 3]
    pad = margin_mm / np.abs(np.diag(affine)[:3]).min()
    lo = np.clip(np.floor(voxels.min(axis=0) - pad), 0, shape).astype(int)
    hi = np.clip(np.ceil(voxels.max(axis=0) + pad) + 1, 0, shape).astype(int)
    return slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2])


def _sample_subject(
    mni_volume: np.ndarray,
    spec: SubjectSpec,
    space: TemplateSpace,
    grid: tuple[np.ndarray, tuple[int, int, int]],
    cfg: DemoCohortConfig,
    modality: str,
) -> np.ndarray:
    """(X, Y, Z) float32: ``mni_volume`` seen through the patient's geometry on a grid.

    Only the box that can hold signal is sampled (about half the field of view).
    """
    affine, shape = grid
    margin = 4 + 3 * cfg.anatomy.deformation_mm
    box = _support_slices(subject_pose(spec, modality), space, affine, shape, margin)
    start = np.array([b.start for b in box])
    sub_affine = affine.copy()
    sub_affine[:3, 3] = affine[:3, :3] @ start + affine[:3, 3]
    sub_shape = (box[0].stop - box[0].start, box[1].stop - box[1].start, box[2].stop - box[2].start)
    out = np.zeros(shape, dtype=np.float32)
    if min(sub_shape) > 0:
        points = subject_mni_points(spec, sub_affine, sub_shape, cfg, modality)
        out[box] = sample_on_grid(mni_volume, space.affine, points)
    return out


def _template_box(space: TemplateSpace, centres: np.ndarray, reach_mm: float) -> tuple[slice, ...]:
    """Template-voxel box covering every centre (k, 3) MNI mm ± ``reach_mm``."""
    inv = np.linalg.inv(space.affine)
    lo = centres.min(axis=0) - reach_mm
    hi = centres.max(axis=0) + reach_mm
    corners = np.array(list(itertools.product(*zip(lo, hi, strict=True))))
    vox = corners @ inv[:3, :3].T + inv[:3, 3]
    shape = np.array(space.t1.shape)
    a = np.clip(np.floor(vox.min(axis=0)), 0, shape).astype(int)
    b = np.clip(np.ceil(vox.max(axis=0)) + 1, 0, shape).astype(int)
    return tuple(slice(int(i), int(j)) for i, j in zip(a, b, strict=True))


def _box_points(space: TemplateSpace, box: tuple[slice, ...]) -> np.ndarray:
    """(3, x, y, z) MNI mm of the template voxels in ``box``."""
    affine = space.affine.copy()
    affine[:3, 3] = space.affine[:3, :3] @ [b.start for b in box] + space.affine[:3, 3]
    return _grid_points(affine, tuple(b.stop - b.start for b in box))  # type: ignore[arg-type]


def t1_template(spec: SubjectSpec, space: TemplateSpace, cfg: DemoCohortConfig) -> np.ndarray:
    """The MNI T1 template with this patient's hippocampal-sclerosis darkening (a copy)."""
    if not spec.hs_side:
        return space.t1
    hippo_box = _template_box(
        space,
        np.stack([hs_centre_mm(spec.hs_side, s) for s in (0.0, 1.0)]),
        reach_mm=12.0,
    )
    loss = hs_darkening(
        spec,
        _box_points(space, hippo_box),
        cfg.lesions,
        space.resolution_mm,
        np.random.default_rng([*spec.seed, 5]),
    )
    template = space.t1.copy()
    template[hippo_box] *= 1.0 - loss
    return template


def pet_uptake(
    spec: SubjectSpec, space: TemplateSpace, site: SiteConfig, cfg: DemoCohortConfig
) -> np.ndarray:
    """Smoothed FDG uptake on the template grid with this patient's hypometabolism."""
    base = pet_base(space.resolution_mm, site.pet_fwhm_mm)
    rng = np.random.default_rng([*spec.seed, 4])
    blobs = pet_blobs(spec, cfg.lesions, rng)
    if not blobs:
        return base
    sigma = space.voxel_sigma(site.pet_fwhm_mm)
    reach = max(b.reach_mm() for b in blobs) + 4 * sigma * space.resolution_mm
    box = _template_box(space, np.stack([b.centre_mm for b in blobs]), reach)
    h = hypometabolism(blobs, _box_points(space, box), cfg.lesions, space.resolution_mm, rng)
    # smoothing is linear: smooth(u · (1 − h)) = smooth(u) − smooth(u · h), and u · h is 0
    # farther than ``reach`` from every blob, so only the box is filtered
    uptake = base.copy()
    uptake[box] -= gaussian_filter(space.uptake[box] * h, sigma, mode="constant")
    return uptake


def render_t1(
    spec: SubjectSpec, space: TemplateSpace, site: SiteConfig, cfg: DemoCohortConfig
) -> nib.Nifti1Image:
    """T1w image: int16 on the site's grid, HS change, bias field, Rician-like noise."""
    centre = space.brain_centre_mm + np.asarray(spec.t1_offset_mm)
    grid = grid_affine(centre, site.t1_voxel_mm, cfg.anatomy.t1_fov_mm)
    volume = _sample_subject(t1_template(spec, space, cfg), spec, space, grid, cfg, "t1")
    affine, shape = grid
    rng = np.random.default_rng([*spec.seed, 2])
    volume *= _bias_field(shape, site.bias_field_strength, rng) * (
        spec.t1_gain * site.t1_full_scale
    )
    # Noise inside the head only: the template is brain-extracted, and a zero background
    # keeps the files small.
    head = volume > 0
    noise = rng.standard_normal(int(head.sum()), dtype=np.float32)
    volume[head] = np.abs(volume[head] + noise * np.float32(site.t1_noise_sd * site.t1_full_scale))
    data = np.round(volume).clip(0, 32767).astype(np.int16)
    return _nifti(*reorient(data, affine, spec.t1_orientation))


def render_pet(
    spec: SubjectSpec, space: TemplateSpace, site: SiteConfig, cfg: DemoCohortConfig
) -> nib.Nifti1Image:
    """FDG PET: the site's grid and resolution, hypometabolism, counting noise, scanner scale."""
    centre = space.brain_centre_mm + np.asarray(spec.pet_offset_mm)
    grid = grid_affine(centre, site.pet_voxel_mm, cfg.anatomy.pet_fov_mm)
    volume = _sample_subject(pet_uptake(spec, space, site, cfg), spec, space, grid, cfg, "pet")
    affine, shape = grid
    rng = np.random.default_rng([*spec.seed, 3])
    # Counting noise: variance proportional to the (smoothed) activity; zero background.
    noise = gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 1.0)
    noise *= np.float32(site.pet_noise_sd / max(float(noise.std()), 1e-6))
    volume = np.clip(volume + noise * np.sqrt(np.clip(volume, 0, None) * UPTAKE_GM), 0, None)
    data = (volume * spec.pet_scale_factor).astype(np.float32)
    data, affine = reorient(data, affine, spec.pet_orientation)
    if spec.pet_frames:
        data = data[..., np.newaxis]  # one-frame 4-D series, as some scanners export
    return _nifti(data, affine, dtype=spec.pet_dtype)


def render_subject(
    spec: SubjectSpec, cfg: DemoCohortConfig
) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """(T1w, PET) images of one patient; deterministic given ``spec`` and ``cfg``.

    Both are rendered even when ``spec`` says a scan was not acquired (what it would have
    shown); :func:`render_acquired` renders only the acquired ones.
    """
    space = load_template_space(cfg.anatomy.template_resolution_mm)
    site = cfg.site(spec.site)
    return render_t1(spec, space, site, cfg), render_pet(spec, space, site, cfg)


def render_acquired(
    spec: SubjectSpec, cfg: DemoCohortConfig
) -> tuple[nib.Nifti1Image | None, nib.Nifti1Image | None]:
    """(T1w, PET) of one patient, None for a scan not acquired (``has_t1``/``has_pet``).

    Each modality has its own noise stream (``(seed, i, 2)`` and ``(seed, i, 3)``), so an
    acquired scan is the same image whether or not the other one is rendered.
    """
    space = load_template_space(cfg.anatomy.template_resolution_mm)
    site = cfg.site(spec.site)
    t1 = render_t1(spec, space, site, cfg) if spec.has_t1 else None
    pet = render_pet(spec, space, site, cfg) if spec.has_pet else None
    return t1, pet
