"""Tiny BIDS cohorts for tests: MNI152-based synthetic T1/PET plus knobs for every defect.

``write_test_cohort(root, n)`` writes ``participants.tsv`` and one T1 + one PET per patient.
Images come from nilearn's bundled MNI152 template, coarsened to ``t1_voxel_mm`` /
``pet_voxel_mm`` (about 24³ voxels at 8 mm), each patient moved by a small known affine.
PET has hypometabolism in the temporal lobe of the operated side.

Defects (``image_defects={index: {"t1": name, "pet": name}}``): ``missing``, ``truncated``,
``nan_slab``, ``nan_few``, ``mostly_nan``, ``multi_frame``, ``one_frame``, ``int16_scaled``,
``blank``, ``cropped`` (3-slice field of view), ``flip_storage`` (same image stored with the
x axis reversed, affine adjusted), ``scale:<k>`` (intensities × k); header and folder defects
of issue 17: ``no_orientation`` (sform_code = qform_code = 0), ``orientation_conflict`` (qform
10 mm off the sform), ``huge_header`` (a 2 MiB file claiming 2048³ voxels), ``gzip_as_nii``
(gzip bytes named ``.nii``), ``both_extensions`` (``.nii`` beside ``.nii.gz``),
``outside_link`` / ``inside_link`` (a symlink to a file outside the cohort folder / under its
``.git/annex``); registration-quality defects: ``shuffled`` (voxels permuted), ``rotated_90``
(head turned 90° in the array, affine unchanged: it lies).
``no_subject_dir={index, ...}`` drops a subject folder.
Table edits: ``table_edits={index: {column: value}}`` (None = missing), ``extra_columns``,
``drop_columns``, ``duplicate_rows=[index, ...]``.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn import datasets
from scipy.ndimage import affine_transform, gaussian_filter

from tle_kedro.transforms.params import PreprocessingParams

BASE_ROW: dict[str, str] = {
    "sex": "M",
    "age_at_onset_months": "140",
    "age_at_surgery_months": "280",
    "epilepsy_duration_months": "140",
    "seizure_frequency_per_month": "4",
    "operative_side": "L",
    "febrile_seizures": "0",
    "secondary_generalization": "1",
    "early_brain_injury": "0",
    "family_history": "0",
    "hypoxia": "0",
    "cns_infection": "0",
    "head_trauma": "0",
    "prior_surgery": "0",
    "mri_finding": "hippocampal_sclerosis",
    "engel_class": "I",
    "recurrence": "0",
    "time_months": "24",
}


@dataclass
class TestCohort:
    """What was written: the folder, ids, and each patient's true MNI → patient affine."""

    root: Path
    ids: list[str]
    mni_to_patient: dict[str, np.ndarray] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _mni() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T1, FDG-like PET, affine) of the 2 mm MNI152 template."""
    t1 = datasets.load_mni152_template(resolution=2)
    gm = datasets.load_mni152_gm_template(resolution=2).get_fdata()
    wm = datasets.load_mni152_wm_template(resolution=2).get_fdata()
    pet = gaussian_filter(gm + 0.3 * wm, 2.0)
    return t1.get_fdata().astype(np.float32), pet.astype(np.float32), t1.affine


def random_affine(
    rng: np.random.Generator, max_deg: float = 6.0, max_mm: float = 6.0, max_scale: float = 0.05
) -> np.ndarray:
    """A (4, 4) MNI → patient mm affine: small rotation, translation and scaling."""
    ax, ay, az = np.deg2rad(rng.uniform(-max_deg, max_deg, 3))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    out = np.eye(4)
    out[:3, :3] = rx @ ry @ rz @ np.diag(1 + rng.uniform(-max_scale, max_scale, 3))
    out[:3, 3] = rng.uniform(-max_mm, max_mm, 3)
    return out


def render(
    source: np.ndarray,
    source_affine: np.ndarray,
    mni_to_patient: np.ndarray,
    voxel_mm: float,
    offset_mm: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample an MNI-space volume on a patient grid (voxel ``voxel_mm``, shifted FOV).

    The patient's anatomy at patient point q is the template at MNI point
    ``inv(mni_to_patient) @ q``.
    """
    fov = np.array([200.0, 236.0, 192.0])
    shape = tuple(int(n) for n in np.ceil(fov / voxel_mm))
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = -fov / 2 + np.array([0.0, -18.0, 0.0]) + offset_mm
    vox = np.linalg.inv(source_affine) @ np.linalg.inv(mni_to_patient) @ affine
    data = affine_transform(source, vox[:3, :3], vox[:3, 3], output_shape=shape, order=1)
    return data.astype(np.float32), affine


@lru_cache(maxsize=8)
def _sources(side: str, voxel_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T1, PET with ``side`` hypometabolism, affine), pre-smoothed for ``voxel_mm`` voxels."""
    t1, pet, affine = _mni()
    sigma = 0.4 * voxel_mm / 2.0
    pet = _pet_for(side, pet, affine)
    return gaussian_filter(t1, sigma), gaussian_filter(pet, sigma), affine


def _pet_for(side: str, pet: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Template PET with 30 % less uptake in the temporal lobe of ``side``."""
    ijk = np.indices(pet.shape).reshape(3, -1).T
    xyz = (ijk @ affine[:3, :3].T + affine[:3, 3]).reshape(*pet.shape, 3)
    x = xyz[..., 0] if side == "R" else -xyz[..., 0]
    temporal = (x > 25) & (xyz[..., 1] > -60) & (xyz[..., 1] < 10) & (xyz[..., 2] < 0)
    return np.where(temporal, 0.7 * pet, pet).astype(np.float32)


def write_test_cohort(
    root: Path,
    n: int = 4,
    *,
    seed: int = 0,
    t1_voxel_mm: float = 8.0,
    pet_voxel_mm: float = 8.0,
    motion: bool = True,
    table_edits: dict[int, dict[str, str | None]] | None = None,
    extra_columns: dict[str, str] | None = None,
    drop_columns: list[str] | None = None,
    duplicate_rows: list[int] | None = None,
    image_defects: dict[int, dict[str, str]] | None = None,
    no_subject_dir: set[int] | None = None,
) -> TestCohort:
    """Write a cohort of ``n`` patients under ``root`` (see module docstring for knobs)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ids = [f"sub-{i + 1:03d}" for i in range(n)]
    rows = []
    for i, pid in enumerate(ids):
        row = {"participant_id": pid, **BASE_ROW}
        row["operative_side"] = "L" if i % 2 == 0 else "R"
        if i % 3 == 1:
            row.update(engel_class="II", recurrence="1", time_months="7")
        row.update(extra_columns or {})
        row.update((table_edits or {}).get(i, {}))
        rows.append(row)
    rows += [dict(rows[i]) for i in duplicate_rows or []]
    table = pd.DataFrame(rows).drop(columns=drop_columns or [])
    table.to_csv(root / "participants.tsv", sep="\t", index=False, na_rep="n/a")
    cohort = TestCohort(root=root, ids=ids)
    for i, pid in enumerate(ids):
        if i in (no_subject_dir or set()):
            continue
        moved = random_affine(rng) if motion else np.eye(4)
        cohort.mni_to_patient[pid] = moved
        defects = (image_defects or {}).get(i, {})
        side = rows[i]["operative_side"] or "L"
        offset = rng.uniform(-4, 4, 3)
        t1_mni, _, mni_affine = _sources(side, t1_voxel_mm)
        _, pet_mni, _ = _sources(side, pet_voxel_mm)
        t1, t1_aff = render(t1_mni, mni_affine, moved, t1_voxel_mm, np.zeros(3))
        pet, pet_aff = render(pet_mni, mni_affine, moved, pet_voxel_mm, offset)
        pet = pet * 5000.0
        _write(root / pid / "anat" / f"{pid}_T1w.nii.gz", t1, t1_aff, defects.get("t1"))
        _write(root / pid / "pet" / f"{pid}_trc-FDG_pet.nii.gz", pet, pet_aff, defects.get("pet"))
    return cohort


def _write(path: Path, data: np.ndarray, affine: np.ndarray, defect: str | None) -> None:
    """Save ``data`` as NIfTI with an optional defect."""
    if defect == "missing":
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    data = data.copy()
    affine = affine.copy()
    if defect and defect.startswith("scale:"):
        data *= float(defect.split(":")[1])
    elif defect == "nan_slab":
        data[:, :, data.shape[2] // 2] = np.nan
    elif defect == "nan_few":
        data[3, 4, 5] = np.nan
        data[0, 0, 0] = np.inf
    elif defect == "mostly_nan":
        data[:, : int(data.shape[1] * 0.8)] = np.nan
    elif defect == "blank":
        data[:] = 7.0
    elif defect == "cropped":  # a field of view of 3 slices: most of the brain is outside
        z0 = data.shape[2] // 2
        data = data[:, :, z0 : z0 + 3].copy()
        affine[:3, 3] += affine[:3, 2] * z0
    elif defect == "flip_storage":
        data = data[::-1].copy()
        flip = np.eye(4)
        flip[0, 0], flip[0, 3] = -1, data.shape[0] - 1
        affine = affine @ flip
    elif defect == "shuffled":
        data = np.random.default_rng(0).permutation(data.ravel()).reshape(data.shape)
    elif defect == "rotated_90":
        data = np.ascontiguousarray(np.rot90(data, 1, axes=(0, 1)))
    if defect == "multi_frame":
        data = np.stack([data, data * 1.1], axis=-1)
    elif defect == "one_frame":
        data = data[..., None]
    image = nib.Nifti1Image(data.astype(np.float32), affine)
    if defect == "int16_scaled":
        slope = float(np.nanmax(np.abs(data))) / 30000.0
        raw = np.round(data / slope).astype(np.int16)
        image = nib.Nifti1Image(raw, affine)
        image.header.set_slope_inter(slope, 0.0)
    if defect == "no_orientation":
        image.set_sform(None, code=0)
        image.set_qform(None, code=0)
    elif defect == "orientation_conflict":
        shifted = affine.copy()
        shifted[:3, 3] += 10.0
        image.set_sform(affine, code=1)
        image.set_qform(shifted, code=1)
    if defect in ("outside_link", "inside_link"):
        _write_linked(path, image, defect)
        return
    nib.save(image, path)
    if defect == "huge_header":
        path.write_bytes(gzip.compress(_claiming_2048_cubed(affine))[: 1 << 20])
    elif defect == "gzip_as_nii":
        path.rename(path.with_name(path.name.removesuffix(".gz")))
    elif defect == "both_extensions":
        gunzip_copy(path, path.with_name(path.name.removesuffix(".gz")))
    if defect == "truncated":
        blob = path.read_bytes()
        path.write_bytes(blob[: len(blob) // 3])


def _claiming_2048_cubed(affine: np.ndarray) -> bytes:
    """A NIfTI header claiming 2048³ float32 voxels, followed by only 2 MiB of data."""
    header = nib.Nifti1Header()
    header.set_data_shape((2048, 2048, 2048))
    header.set_data_dtype(np.float32)
    header.set_sform(affine, code=1)
    header.set_data_offset(352)
    return header.binaryblock + b"\0" * 4 + np.ones(1 << 19, np.float32).tobytes()


def _write_linked(path: Path, image: nib.Nifti1Image, defect: str) -> None:
    """Save ``image`` elsewhere and make ``path`` a symlink to it.

    ``outside_link``: beside the cohort folder (``<root>/../outside/``); ``inside_link``: under
    the cohort's ``.git/annex/objects/`` as git-annex and DataLad keep their files.
    """
    cohort_root = path.parents[2]
    if defect == "outside_link":
        target = cohort_root.parent / "outside" / path.name
    else:
        target = cohort_root / ".git" / "annex" / "objects" / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, target)
    path.symlink_to(target)


def gunzip_copy(src: Path, dst: Path) -> None:
    """Store ``src`` (.nii.gz) uncompressed at ``dst`` (.nii)."""
    with gzip.open(src, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)


def tiny_params(cache_dir: Path | None = None, **overrides: object) -> PreprocessingParams:
    """Preprocessing parameters for 8 mm test images: one 8 mm registration level, 16×12×8 grid."""
    values: dict[str, object] = {
        "grid_shape": (16, 12, 8),
        "cache_dir": None if cache_dir is None else str(cache_dir),
        "progress_bar": False,
        "workers": 1,  # in-process (monkeypatching tests); test_preprocess checks 2 workers
        "registration": {
            "resolution_mm": 8.0,
            "shrink_factors": (1,),
            "smoothing_sigmas_voxels": (0.0,),
            "sampling_fraction": 0.25,
        },
    }
    values.update(overrides)
    return PreprocessingParams.model_validate(values)
