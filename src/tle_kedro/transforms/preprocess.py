"""Per-subject image preprocessing and the cohort loop that builds :class:`ImageTensors`.

Per subject: load (canonical RAS, one frame, finite voxels) → T1 → MNI152 affine registration
→ PET → T1 rigid registration (or PET → FDG-like template when the T1 is unusable) → one
composed transform per modality → anti-aliased resampling onto the crop grid → intensity
normalisation (T1: z-score or median/IQR inside the MNI brain mask; PET: ratio to the mean
whole-brain uptake, so a global scanner scale has no effect). Nothing mirrors an image: the
grid axis 0 always runs from MNI left (x < 0) to right.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import SimpleITK as sitk
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from tle_kedro.data.exclusions import Reason, exclusion_row, exclusions_frame
from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.data.regions import crop_grid_affine
from tle_kedro.training.parallel import available_cores
from tle_kedro.transforms.cache import SubjectCache, SubjectResult, cache_key
from tle_kedro.transforms.io import UnusableImageError, load_volume
from tle_kedro.transforms.params import PreprocessingParams
from tle_kedro.transforms.registration import (
    chain,
    downsample,
    register,
    resample_to_grid,
    to_numpy,
    to_sitk,
)
from tle_kedro.transforms.templates import Templates, mni_templates

__all__ = [
    "CohortImages",
    "ImageTensors",
    "preprocess_cohort",
    "preprocess_cohort_qc",
    "preprocess_subject",
]

logger = logging.getLogger(__name__)

# Below this fraction of the MNI brain inside an image's field of view after registration,
# the registration (or the acquisition) is not trusted.
MIN_BRAIN_COVERAGE = 0.5


@dataclass(frozen=True)
class _Grid:
    """The output grid (voxel → MNI mm, RAS) and the templates at registration resolution."""

    affine: np.ndarray
    shape: tuple[int, int, int]
    templates: Templates

    @classmethod
    def from_params(cls, params: PreprocessingParams) -> _Grid:
        return cls(
            affine=crop_grid_affine(params.crop_box_mni, params.grid_shape),
            shape=params.grid_shape,
            templates=mni_templates(params.registration.resolution_mm),
        )


_Registered = tuple[sitk.Image, sitk.Transform]  # (image at registration resolution, MNI → it)


def preprocess_subject(
    t1_path: str | None, pet_path: str | None, params: PreprocessingParams
) -> SubjectResult:
    """Preprocess one subject's T1 and PET (either may be None = no file).

    Returns:
        ``volume`` (2, D, H, W) float32 on the crop grid, channel-wise ``has_t1``/``has_pet``,
        each modality's registration quality (``t1_ncc``/``pet_ncc``, NaN when not measured)
        and ``(reason, detail)`` for each modality that is missing or unusable.
    """
    grid = _Grid.from_params(params)
    problems: list[tuple[str, str]] = []
    t1 = _load("T1", t1_path, params, problems)
    pet = _load("PET", pet_path, params, problems)
    volume = np.zeros((2, *grid.shape), dtype=np.float32)
    # Filled by the channel functions before their quality check may raise, so a score below
    # the threshold still reaches the registration_qc table.
    quality = {"T1": float("nan"), "PET": float("nan")}
    t1_registered: _Registered | None = None
    if t1 is not None:
        try:
            t1_registered = _register_t1(t1, grid, params)
            volume[0] = _t1_channel(t1, t1_registered, grid, params, quality)
        except (RuntimeError, UnusableImageError) as err:
            problems.append(_problem("T1", err))
            t1_registered = None
    has_pet = False
    if pet is not None:
        try:
            mni_to_pet = _register_pet(pet, t1_registered, grid, params)
            volume[1] = _pet_channel(pet, mni_to_pet, grid, params, quality)
            has_pet = True
        except (RuntimeError, UnusableImageError) as err:
            problems.append(_problem("PET", err))
    return SubjectResult(
        volume=volume,
        has_t1=t1_registered is not None,
        has_pet=has_pet,
        problems=tuple(problems),
        t1_ncc=quality["T1"],
        pet_ncc=quality["PET"],
    )


def _register_t1(t1: sitk.Image, grid: _Grid, params: PreprocessingParams) -> _Registered:
    """T1 → MNI152 affine registration at low resolution."""
    small = downsample(t1, params.registration.resolution_mm)
    return small, register(grid.templates.t1, small, "affine", params.registration)


def _register_pet(
    pet: sitk.Image, t1: _Registered | None, grid: _Grid, params: PreprocessingParams
) -> _Registered:
    """PET → T1 (rigid) composed with T1 → MNI; PET → FDG-like template if no usable T1."""
    small = downsample(pet, params.registration.resolution_mm)
    if t1 is None:
        return small, register(grid.templates.pet, small, "affine", params.registration)
    t1_small, mni_to_t1 = t1
    t1_to_pet = register(t1_small, small, "rigid", params.registration)
    return small, chain(mni_to_t1, t1_to_pet)


def _problem(modality: str, err: Exception) -> tuple[str, str]:
    if isinstance(err, UnusableImageError):
        return str(err.reason), f"{modality}: {err.detail}"
    message = str(err).strip()
    last_line = message.splitlines()[-1] if message else type(err).__name__
    # ITK names the failing filter by its memory address: drop it, so the report is the same
    # on every run and with any number of workers
    last_line = re.sub(r"\(0x[0-9a-fA-F]+\)", "", last_line)
    return str(Reason.REGISTRATION_FAILED), f"{modality}: registration failed ({last_line})"


def _load(
    modality: str, path: str | None, params: PreprocessingParams, problems: list[tuple[str, str]]
) -> sitk.Image | None:
    if path is None:
        problems.append((str(Reason.MISSING_MODALITY), f"{modality}: no image file"))
        return None
    try:
        data, affine = load_volume(path, params.max_nonfinite_fraction, params.header_checks)
    except UnusableImageError as err:
        problems.append(_problem(modality, err))
        return None
    return to_sitk(data, affine)


def _warp(
    image: sitk.Image, registered: _Registered, template: sitk.Image, grid: _Grid
) -> tuple[np.ndarray, np.ndarray, float]:
    """Brain voxel values (for normalisation), the crop, and the registration quality.

    Returns:
        ``(brain_values, crop, ncc)``: (n,) float32 finite values inside the MNI brain mask at
        the registration resolution; (D, H, W) float32 on the crop grid (NaN outside the
        image); Pearson correlation of those brain values with ``template``'s.
    """
    small, mni_to_image = registered
    templates = grid.templates
    reference = sitk.Resample(small, templates.t1, mni_to_image, sitk.sitkLinear, np.nan)
    values = to_numpy(reference)[templates.brain]
    coverage = float(np.isfinite(values).mean())
    if coverage < MIN_BRAIN_COVERAGE:
        raise UnusableImageError(
            Reason.REGISTRATION_FAILED,
            f"only {coverage:.0%} of the MNI brain lies inside the image after registration",
        )
    finite = np.isfinite(values)
    expected = to_numpy(template)[templates.brain][finite]
    ncc = normalised_cross_correlation(values[finite], expected)
    crop = resample_to_grid(image, mni_to_image, grid.affine, grid.shape)
    return values[finite], crop, ncc


def normalised_cross_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally long value vectors (0 when either is constant).

    The zero-lag normalised cross-correlation used as a registration quality measure
    (e.g. Avants et al., NeuroImage 2011, for ANTs' ``CC`` metric).
    """
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def _check_quality(modality: str, ncc: float, minimum: float, template: str) -> None:
    if not ncc >= minimum:
        raise UnusableImageError(
            Reason.REGISTRATION_FAILED,
            f"registration quality {ncc:.2f} (correlation with the {template} inside the brain "
            f"mask) is below preprocessing.registration_qc.min_{modality.lower()}_ncc = "
            f"{minimum}; check the image's orientation and content",
        )


def _t1_channel(
    t1: sitk.Image,
    registered: _Registered,
    grid: _Grid,
    params: PreprocessingParams,
    quality: dict[str, float],
) -> np.ndarray:
    """T1 on the crop grid, z-scored (or median/IQR-scaled) inside the brain; 0 outside FOV."""
    brain, crop, quality["T1"] = _warp(t1, registered, grid.templates.t1, grid)
    _check_quality("T1", quality["T1"], params.registration_qc.min_t1_ncc, "MNI152 T1")
    if params.t1_normalisation == "zscore":
        centre, scale = float(brain.mean()), float(brain.std())
    else:
        q25, centre, q75 = (float(q) for q in np.percentile(brain, [25, 50, 75]))
        scale = q75 - q25
    if not scale > 0:
        raise UnusableImageError(Reason.BLANK_IMAGE, "no intensity variation inside the brain")
    return np.nan_to_num((crop - centre) / scale, nan=0.0).astype(np.float32)


def _pet_channel(
    pet: sitk.Image,
    registered: _Registered,
    grid: _Grid,
    params: PreprocessingParams,
    quality: dict[str, float],
) -> np.ndarray:
    """PET on the crop grid as a ratio to the mean whole-brain uptake; 0 outside FOV."""
    brain, crop, quality["PET"] = _warp(pet, registered, grid.templates.pet, grid)
    _check_quality("PET", quality["PET"], params.registration_qc.min_pet_ncc, "FDG-like template")
    reference = float(brain.mean())
    if not reference > 0:
        raise UnusableImageError(Reason.BLANK_IMAGE, "mean uptake in the brain is not positive")
    return np.nan_to_num(crop / reference, nan=0.0).astype(np.float32)


QC_COLUMNS: list[str] = ["participant_id", "t1_ncc", "pet_ncc", "has_t1", "has_pet"]


@dataclass(frozen=True)
class CohortImages:
    """What preprocessing a cohort gives (see :func:`preprocess_cohort_qc`)."""

    used: pd.DataFrame
    exclusions: pd.DataFrame
    tensors: ImageTensors
    registration_qc: pd.DataFrame


def preprocess_cohort(
    clinical: pd.DataFrame,
    images: pd.DataFrame,
    params: PreprocessingParams,
) -> tuple[pd.DataFrame, pd.DataFrame, ImageTensors]:
    """``(used, exclusions, tensors)`` of :func:`preprocess_cohort_qc` (no quality table)."""
    out = preprocess_cohort_qc(clinical, images, params)
    return out.used, out.exclusions, out.tensors


def preprocess_cohort_qc(
    clinical: pd.DataFrame,
    images: pd.DataFrame,
    params: PreprocessingParams,
) -> CohortImages:
    """Preprocess every patient of the validated table (cached per subject).

    Args:
        clinical: validated rows (unique ``participant_id``).
        images: ``RawCohort.images`` (``participant_id, t1_path, pet_path,
            subject_dir_exists`` and optionally ``t1_reason, t1_detail, pet_reason,
            pet_detail``: why a present file was not chosen).
        params: validated preprocessing parameters.
    Returns:
        ``used``: ``clinical`` rows of patients with at least one usable image plus
        ``has_t1``/``has_pet``, sorted by ``participant_id``; ``exclusions``: one row per
        problem; ``tensors``: their tensors (same order); ``registration_qc``: one row per
        patient whose images were opened (:data:`QC_COLUMNS`; NaN = not registered).
    """
    paths = images.drop_duplicates("participant_id").set_index("participant_id")
    cache = SubjectCache(params.cache_dir)
    ids = clinical["participant_id"].tolist()
    computed = _compute_missing(ids, paths, cache, params)
    previous_threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(params.num_threads)
    rows: list[dict[str, str]] = []
    results: dict[str, SubjectResult] = {}
    quality: list[dict[str, object]] = []
    try:
        for pid in ids:
            entry = paths.loc[pid] if pid in paths.index else None
            result = _subject_result(pid, entry, params, rows, computed)
            if result is None:
                continue
            quality.append(_quality_row(pid, result))
            if result.has_t1 or result.has_pet:
                results[pid] = result
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous_threads)
    logger.info("preprocessing cache: %d reused, %d computed", cache.hits, cache.misses)
    tensors = _tensors(results, params)
    used = clinical.merge(tensors.index, on="participant_id", how="inner", validate="one_to_one")
    used = used.sort_values("participant_id", kind="stable").reset_index(drop=True)
    qc = pd.DataFrame(quality, columns=QC_COLUMNS).astype(
        {"t1_ncc": float, "pet_ncc": float, "has_t1": bool, "has_pet": bool}
    )
    return CohortImages(used, exclusions_frame(rows), tensors, qc)


def preprocessing_workers(params: PreprocessingParams, n_subjects: int) -> int:
    """Worker processes for ``n_subjects`` registrations: ``auto`` = one per CPU core."""
    wanted = available_cores() if params.workers == "auto" else int(params.workers)
    return max(1, min(wanted, n_subjects))


def _subject_files(entry: pd.Series | None) -> tuple[str | None, str | None] | None:
    """(t1_path, pet_path) of a subject whose folder exists; None otherwise."""
    if entry is None or not bool(entry["subject_dir_exists"]):
        return None
    return _cell(entry, "t1_path"), _cell(entry, "pet_path")


def _preprocess_in_worker(
    t1_path: str | None, pet_path: str | None, params: PreprocessingParams
) -> SubjectResult:
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(params.num_threads)
    return preprocess_subject(t1_path, pet_path, params)


def _compute_missing(
    ids: list[str], paths: pd.DataFrame, cache: SubjectCache, params: PreprocessingParams
) -> dict[str, SubjectResult]:
    """Register every subject the cache lacks, ``params.workers`` processes at a time
    (joblib's loky pool; each subject is independent, so the result does not depend on the
    number of workers). Returns cache key → result of every subject with a folder, cached
    or computed; the computed ones are cached too."""
    todo: dict[str, tuple[str | None, str | None]] = {}
    out: dict[str, SubjectResult] = {}
    for pid in ids:
        files = _subject_files(paths.loc[pid] if pid in paths.index else None)
        if files is None:
            continue
        key = cache_key(*files, params.fingerprint())
        if key in todo or key in out:
            continue
        cached = cache.get(key)
        if cached is None:
            todo[key] = files
        else:
            out[key] = cached
    workers = preprocessing_workers(params, len(todo))
    progress = tqdm(
        total=len(todo), desc="preprocessing", unit="patient", disable=not params.progress_bar
    )
    jobs = (delayed(_preprocess_in_worker)(t1, pet, params) for t1, pet in todo.values())
    with progress:
        results = (
            Parallel(n_jobs=workers, return_as="generator")(jobs)
            if workers > 1
            else (_preprocess_in_worker(t1, pet, params) for t1, pet in todo.values())
        )
        for key, result in zip(todo, results, strict=True):
            cache.put(key, result)
            out[key] = result
            progress.update()
    if todo:
        logger.info("preprocessing: %d subjects registered by %d worker(s)", len(todo), workers)
    return out


def _quality_row(pid: str, result: SubjectResult) -> dict[str, object]:
    return {
        "participant_id": pid,
        "t1_ncc": result.t1_ncc,
        "pet_ncc": result.pet_ncc,
        "has_t1": result.has_t1,
        "has_pet": result.has_pet,
    }


def _subject_result(
    pid: str,
    entry: pd.Series | None,
    params: PreprocessingParams,
    rows: list[dict[str, str]],
    computed: dict[str, SubjectResult],
) -> SubjectResult | None:
    """One patient's result from ``computed`` (:func:`_compute_missing`: cached or just
    registered); appends its exclusion rows; None = no folder.

    A file that discovery refused (ambiguous, outside the cohort, a broken link) reaches
    preprocessing as "no file"; its own reason replaces ``missing_modality`` in the report.
    """
    files = _subject_files(entry)
    if files is None or entry is None:
        rows.append(exclusion_row(pid, Reason.NO_IMAGES, f"no subject folder {pid}/"))
        return None
    t1_path, pet_path = files
    key = cache_key(t1_path, pet_path, params.fingerprint())
    result = computed[key]
    refused = {
        modality: (reason, _cell(entry, f"{modality.lower()}_detail"))
        for modality in ("T1", "PET")
        if (reason := _cell(entry, f"{modality.lower()}_reason")) is not None
    }
    for reason, detail in result.problems:
        modality = detail.split(":", 1)[0]
        if reason == Reason.MISSING_MODALITY and modality in refused:
            reason, detail = refused[modality]  # type: ignore[assignment]
        rows.append(exclusion_row(pid, Reason(reason), detail))
    if not (result.has_t1 or result.has_pet):
        rows.append(exclusion_row(pid, Reason.NO_IMAGES, "no usable T1 or PET"))
    return result


def _cell(entry: pd.Series, column: str) -> str | None:
    """A path / reason cell as ``str``, or None (missing, NaN, or an absent column)."""
    value = entry.get(column)
    return None if value is None or pd.isna(value) else str(value)


def _tensors(results: dict[str, SubjectResult], params: PreprocessingParams) -> ImageTensors:
    """Stack results sorted by participant id (an empty cohort gives N = 0)."""
    ids = sorted(results)
    volumes = (
        np.stack([results[pid].volume for pid in ids]).astype(np.float32, copy=False)
        if ids
        else np.zeros((0, 2, *params.grid_shape), dtype=np.float32)
    )
    index = pd.DataFrame(
        {
            "participant_id": pd.Series(ids, dtype=object),
            "has_t1": pd.Series([results[pid].has_t1 for pid in ids], dtype=bool),
            "has_pet": pd.Series([results[pid].has_pet for pid in ids], dtype=bool),
        }
    )
    affine = crop_grid_affine(params.crop_box_mni, params.grid_shape)
    return ImageTensors(volumes=volumes, index=index, affine=affine)
