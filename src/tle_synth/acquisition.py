"""Per-patient acquisition: scanner site, head pose, PET motion, storage variants, missing scans.

Drawn once per cohort (one row per patient, written to the ground truth), with which scans
each patient has (:func:`sample_missing_scans`); the images are
rendered from these values by ``images.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tle_synth.config import AcquisitionConfig, DemoCohortConfig

XYZ = ("x", "y", "z")


def sample_acquisition(n: int, cfg: DemoCohortConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Per-patient site, pose and acquisition parameters (n rows, recorded in the ground truth)."""
    anatomy, pose = cfg.anatomy, cfg.pose
    out: dict[str, np.ndarray] = {}
    weights = np.array([s.weight for s in cfg.sites])
    site_index = rng.choice(len(cfg.sites), size=n, p=weights / weights.sum())
    out["site"] = np.array([cfg.sites[i].name for i in site_index])
    global_scale = np.exp(rng.normal(0.0, anatomy.scale_sd, n))
    limits = {
        "rotation_deg": pose.rotation_deg_max,
        "translation_mm": pose.translation_mm_max,
        "pet_rotation_deg": pose.pet_rotation_deg_max,
        "pet_translation_mm": pose.pet_translation_mm_max,
        "t1_offset_mm": anatomy.t1_fov_offset_mm_max,
        "pet_offset_mm": anatomy.pet_fov_offset_mm_max,
    }
    for axis in XYZ:  # mild anisotropy around the global head size
        out[f"scale_{axis}"] = global_scale * np.exp(rng.normal(0.0, anatomy.scale_sd / 3, n))
    for name, limit in limits.items():
        for axis in XYZ:
            out[f"{name}_{axis}"] = rng.uniform(-limit, limit, n)
    for modality in ("t1", "pet"):
        turned = rng.random(n) < anatomy.fraction_reoriented
        out[f"{modality}_orientation"] = np.where(
            turned, rng.choice(list(anatomy.orientations), n), "RAS"
        )
    out["pet_dtype"] = np.where(rng.random(n) < anatomy.fraction_pet_int16, "int16", "float32")
    out["pet_frames"] = np.where(rng.random(n) < anatomy.fraction_pet_4d, 1, 0)
    median = np.array([cfg.sites[i].pet_scale_median for i in site_index])
    log_sd = np.array([cfg.sites[i].pet_scale_log_sd for i in site_index])
    out["pet_scale_factor"] = median * np.exp(rng.normal(0, 1, n) * log_sd)
    out["t1_gain"] = np.exp(rng.normal(0.0, 0.1, n))
    return pd.DataFrame(out)


def sample_missing_scans(
    n: int, acquisition: AcquisitionConfig, rng: np.random.Generator
) -> pd.DataFrame:
    """Which scans each of ``n`` patients has: ``has_t1``, ``has_pet`` (int 0/1, n rows).

    One uniform ``u`` per patient, independent between patients: PET is missing when
    ``u < fraction_missing_pet``, T1 when ``fraction_missing_pet <= u < fraction_missing_pet +
    fraction_missing_t1``. Each fraction is then the expected share of patients without that
    scan, and no patient misses both (the pipeline drops such a patient, which would shrink
    the cohort instead). ``rng`` is the generator's own stream for this draw, so turning
    missingness on changes nothing else in the cohort.
    """
    u = rng.random(n)
    p_pet = acquisition.fraction_missing_pet
    missing_pet = u < p_pet
    missing_t1 = (u >= p_pet) & (u < p_pet + acquisition.fraction_missing_t1)
    return pd.DataFrame(
        {"has_t1": (~missing_t1).astype(int), "has_pet": (~missing_pet).astype(int)}
    )
