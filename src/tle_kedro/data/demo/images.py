"""One synthetic patient's T1 and FDG PET, rendered on demand from a :class:`SubjectSpec`.

Geometry: each patient has a pose (global scale, rotation, translation) mapping MNI mm to
scanner (world) mm, plus a small smooth deformation. The T1 and the PET are sampled on their
own scanner grids (different voxel sizes, fields of view and offsets) through the same pose,
so the two images of one patient overlap in world space. They may be stored in different
axis orders; the affine always says where each voxel is.

Disease: hippocampal sclerosis darkens and shrinks the mesial temporal region on its side in
T1; hypometabolism lowers FDG uptake in the temporal regions (main side, optionally the
contralateral side) and optionally the ipsilateral extratemporal region.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from tle_kedro.data.demo.anatomy import (
    UPTAKE_GM,
    TemplateSpace,
    grid_affine,
    load_template_space,
    pose_matrix,
    reorient,
    sample_on_grid,
)
from tle_kedro.data.demo.config import AnatomyConfig, LesionConfig
from tle_kedro.data.regions import region_box

T1_FULL_SCALE = 1000.0  # T1 stored as int16, brightest tissue ≈ 1000
_XYZ = ("x", "y", "z")


@dataclass(frozen=True)
class SubjectSpec:
    """Everything needed to render one patient's images (cheap to hold for a whole cohort).

    Sides are "L"/"R" ("" = absent); severities are unitless in [0, 1]; vectors are (x, y, z).
    """

    participant_id: str
    seed: tuple[int, int]
    hs_side: str
    hs_severity: float
    pet_side: str
    pet_severity: float
    pet_mesial_fraction: float
    pet_lateral_fraction: float
    contralateral_ratio: float
    extratemporal_severity: float
    scale: tuple[float, float, float]
    rotation_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]
    t1_offset_mm: tuple[float, float, float]
    pet_offset_mm: tuple[float, float, float]
    t1_orientation: str
    pet_orientation: str
    pet_dtype: str
    pet_frames: int
    pet_scale_factor: float
    t1_gain: float

    @classmethod
    def from_row(cls, row: pd.Series, seed: tuple[int, int]) -> SubjectSpec:
        """Build from a merged latent + acquisition row (see :func:`sample_acquisition`)."""
        vec = {k: tuple(float(row[f"{k}_{a}"]) for a in _XYZ) for k in _VECTOR_FIELDS}
        cast = {"str": str, "int": int, "float": float}  # plain Python values, not numpy
        scalars = {k: cast[t](row[k]) for k, t in _SCALAR_FIELDS.items()}
        return cls(seed=seed, **vec, **scalars)  # type: ignore[arg-type]


_VECTOR_FIELDS = ("scale", "rotation_deg", "translation_mm", "t1_offset_mm", "pet_offset_mm")
_SCALAR_FIELDS = {
    name: str(f.type)
    for name, f in SubjectSpec.__dataclass_fields__.items()
    if name not in (*_VECTOR_FIELDS, "seed")
}


def sample_acquisition(n: int, cfg: AnatomyConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Per-patient pose and acquisition parameters (n rows, recorded in the ground truth)."""
    out: dict[str, np.ndarray] = {}
    global_scale = np.exp(rng.normal(0.0, cfg.scale_sd, n))
    limits = {
        "rotation_deg": cfg.rotation_deg_max,
        "translation_mm": cfg.translation_mm_max,
        "t1_offset_mm": cfg.t1_fov_offset_mm_max,
        "pet_offset_mm": cfg.pet_fov_offset_mm_max,
    }
    for axis in _XYZ:  # mild anisotropy around the global head size
        out[f"scale_{axis}"] = global_scale * np.exp(rng.normal(0.0, cfg.scale_sd / 3, n))
    for name, limit in limits.items():
        for axis in _XYZ:
            out[f"{name}_{axis}"] = rng.uniform(-limit, limit, n)
    for modality in ("t1", "pet"):
        turned = rng.random(n) < cfg.fraction_reoriented
        out[f"{modality}_orientation"] = np.where(
            turned, rng.choice(list(cfg.orientations), n), "RAS"
        )
    out["pet_dtype"] = np.where(rng.random(n) < cfg.fraction_pet_int16, "int16", "float32")
    out["pet_frames"] = np.where(rng.random(n) < cfg.fraction_pet_4d, 1, 0)
    out["pet_scale_factor"] = cfg.pet_scale_median * np.exp(rng.normal(0, cfg.pet_scale_log_sd, n))
    out["t1_gain"] = np.exp(rng.normal(0.0, 0.1, n))
    return pd.DataFrame(out)


def _other(side: str) -> str:
    return "R" if side == "L" else "L"


def pet_hypometabolism(spec: SubjectSpec, lesions: LesionConfig) -> dict[tuple[str, str], float]:
    """Fractional uptake loss per (region, side): main temporal side, contralateral, extra."""
    main, contra = spec.pet_side, _other(spec.pet_side)
    mesial = lesions.hypo_mesial_max * spec.pet_severity * spec.pet_mesial_fraction
    lateral = lesions.hypo_lateral_max * spec.pet_severity * spec.pet_lateral_fraction
    return {
        ("mesial_temporal", main): mesial,
        ("lateral_temporal", main): lateral,
        ("mesial_temporal", contra): mesial * spec.contralateral_ratio,
        ("lateral_temporal", contra): lateral * spec.contralateral_ratio,
        ("extratemporal", main): lesions.hypo_extratemporal_max * spec.extratemporal_severity,
    }


def _affine_points(voxel_to_mm: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
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
    for _ in range(4):
        direction, polarisation = rng.normal(size=3), rng.normal(size=3)
        wavenumber = 2 * np.pi / rng.uniform(80.0, 140.0) * direction / np.linalg.norm(direction)
        phase = rng.uniform(0, 2 * np.pi)
        vector = amplitude_mm * rng.normal() / 2 * polarisation / np.linalg.norm(polarisation)
        along = wavenumber @ voxel_to_mm[:3, :3]  # phase step per voxel along each axis
        start = np.exp(1j * (wavenumber @ voxel_to_mm[:3, 3] + phase))
        e = [np.exp(1j * along[a] * ramps[a]).astype(np.complex64) for a in range(3)]
        plane = (start * e[0])[:, None] * e[1][None, :]  # (X, Y) complex
        # Im(plane · e2) without a (X, Y, Z) complex temporary
        sine = plane.real[..., None] * e[2].imag + plane.imag[..., None] * e[2].real
        for axis in range(3):
            points[axis] += np.float32(vector[axis]) * sine


def _shrink(points: np.ndarray, centre: np.ndarray, amount: float, sigma_mm: float = 10.0) -> None:
    """Make tissue around ``centre`` look smaller by ``amount`` (sample farther out), in place.

    ``points`` (3, X, Y, Z) MNI mm; displacement amount · exp(-r² / 2σ²) · (m − centre).
    """
    offset = points - centre.astype(np.float32)[:, None, None, None]
    weight = np.exp(-np.einsum("i...,i...->...", offset, offset) / np.float32(2 * sigma_mm**2))
    points += (np.float32(amount) * weight)[None] * offset


def subject_pose(spec: SubjectSpec) -> np.ndarray:
    """(4, 4) MNI mm → this patient's scanner mm (before the small deformation)."""
    return pose_matrix(
        np.array(spec.scale), np.array(spec.rotation_deg), np.array(spec.translation_mm)
    )


def hs_centre_mm(side: str) -> np.ndarray:
    """(3,) MNI-mm centre of the mesial temporal box on ``side``."""
    box = region_box("mesial_temporal", side)  # type: ignore[arg-type]
    return np.array([(lo + hi) / 2 for lo, hi in box])


def subject_mni_points(
    spec: SubjectSpec,
    world_affine: np.ndarray,
    shape: tuple[int, int, int],
    cfg: AnatomyConfig,
    lesions: LesionConfig,
) -> np.ndarray:
    """(3, X, Y, Z) MNI mm that each voxel of a scanner grid images, for this patient.

    Inverse pose, then the patient's seeded smooth deformation, then the HS volume loss.
    """
    voxel_to_mni = np.linalg.inv(subject_pose(spec)) @ world_affine
    mni = _affine_points(voxel_to_mni, shape)
    _deform(mni, voxel_to_mni, cfg.deformation_mm, np.random.default_rng([*spec.seed, 1]))
    if spec.hs_side:
        _shrink(mni, hs_centre_mm(spec.hs_side), lesions.hs_shrink * spec.hs_severity)
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


def _grid(
    spec: SubjectSpec,
    space: TemplateSpace,
    offset: tuple[float, float, float],
    voxel: tuple[float, float, float],
    fov: tuple[float, float, float],
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Scanner grid (affine, shape) centred on the patient's brain plus a field-of-view offset."""
    centre = subject_pose(spec)[:3, :3] @ space.brain_centre_mm + np.array(spec.translation_mm)
    return grid_affine(centre + np.asarray(offset), voxel, fov)


def _support_slices(
    spec: SubjectSpec,
    space: TemplateSpace,
    affine: np.ndarray,
    shape: tuple[int, int, int],
    margin_mm: float,
) -> tuple[slice, slice, slice]:
    """Voxel box of a scanner grid that can hold non-zero signal (the rest stays 0)."""
    corners = np.array(list(itertools.product(*space.support_mm.T)))  # (8, 3) MNI mm
    to_voxel = np.linalg.inv(affine) @ subject_pose(spec)
    voxels = corners @ to_voxel[:3, :3].T + to_voxel[:3, 3]
    pad = margin_mm / np.abs(np.diag(affine)[:3]).min()
    lo = np.clip(np.floor(voxels.min(axis=0) - pad), 0, shape).astype(int)
    hi = np.clip(np.ceil(voxels.max(axis=0) + pad) + 1, 0, shape).astype(int)
    return slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2])


def _sample_subject(
    mni_volume: np.ndarray,
    spec: SubjectSpec,
    space: TemplateSpace,
    affine: np.ndarray,
    shape: tuple[int, int, int],
    cfg: AnatomyConfig,
    lesions: LesionConfig,
) -> np.ndarray:
    """(X, Y, Z) float32: ``mni_volume`` seen through the patient's geometry on a grid.

    Only the box that can hold signal is sampled (about half the field of view).
    """
    box = _support_slices(spec, space, affine, shape, margin_mm=10 + 4 * cfg.deformation_mm)
    start = np.array([b.start for b in box])
    sub_affine = affine.copy()
    sub_affine[:3, 3] = affine[:3, :3] @ start + affine[:3, 3]
    sub_shape = (box[0].stop - box[0].start, box[1].stop - box[1].start, box[2].stop - box[2].start)
    out = np.zeros(shape, dtype=np.float32)
    if min(sub_shape) > 0:
        points = subject_mni_points(spec, sub_affine, sub_shape, cfg, lesions)
        out[box] = sample_on_grid(mni_volume, space.affine, points)
    return out


def render_t1(
    spec: SubjectSpec, space: TemplateSpace, cfg: AnatomyConfig, lesions: LesionConfig
) -> nib.Nifti1Image:
    """T1w image: int16, ``t1_voxel_mm`` grid, HS darkening, bias field, Rician-like noise."""
    affine, shape = _grid(spec, space, spec.t1_offset_mm, cfg.t1_voxel_mm, cfg.t1_fov_mm)
    template = space.t1
    if spec.hs_side:
        loss = lesions.hs_t1_darkening * spec.hs_severity
        template = template * (1 - loss * space.soft_masks["mesial_temporal", spec.hs_side])
    volume = _sample_subject(template, spec, space, affine, shape, cfg, lesions)
    rng = np.random.default_rng([*spec.seed, 2])
    volume *= _bias_field(shape, cfg.bias_field_strength, rng) * (spec.t1_gain * T1_FULL_SCALE)
    # Noise inside the head only: the template is brain-extracted, and a zero background
    # keeps the files small.
    head = volume > 0
    noise = rng.standard_normal(int(head.sum()), dtype=np.float32)
    volume[head] = np.abs(volume[head] + noise * np.float32(cfg.t1_noise_sd * T1_FULL_SCALE))
    data = np.round(volume).clip(0, 32767).astype(np.int16)
    return _nifti(*reorient(data, affine, spec.t1_orientation))


def render_pet(
    spec: SubjectSpec, space: TemplateSpace, cfg: AnatomyConfig, lesions: LesionConfig
) -> nib.Nifti1Image:
    """FDG PET: coarse anisotropic grid, smoothed uptake with hypometabolism, scanner scale."""
    affine, shape = _grid(spec, space, spec.pet_offset_mm, cfg.pet_voxel_mm, cfg.pet_fov_mm)
    uptake = space.pet_base.copy()
    for key, loss in pet_hypometabolism(spec, lesions).items():
        if loss > 0:
            uptake -= loss * space.pet_region_base[key]
    volume = _sample_subject(uptake, spec, space, affine, shape, cfg, lesions)
    rng = np.random.default_rng([*spec.seed, 3])
    # Counting noise: variance proportional to the (smoothed) activity; zero background.
    noise = gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 1.0)
    noise *= np.float32(cfg.pet_noise_sd / max(float(noise.std()), 1e-6))
    volume = np.clip(volume + noise * np.sqrt(np.clip(volume, 0, None) * UPTAKE_GM), 0, None)
    data = (volume * spec.pet_scale_factor).astype(np.float32)
    data, affine = reorient(data, affine, spec.pet_orientation)
    if spec.pet_frames:
        data = data[..., np.newaxis]  # one-frame 4-D series, as some scanners export
    return _nifti(data, affine, dtype=spec.pet_dtype)


def render_subject(
    spec: SubjectSpec, cfg: AnatomyConfig, lesions: LesionConfig
) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """(T1w, PET) images of one patient; deterministic given ``spec``."""
    space = load_template_space(
        cfg.template_resolution_mm, cfg.pet_fwhm_mm, cfg.region_smoothing_mm
    )
    return render_t1(spec, space, cfg, lesions), render_pet(spec, space, cfg, lesions)
