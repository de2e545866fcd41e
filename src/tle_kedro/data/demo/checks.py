"""Measurements of a synthetic cohort: oracle and clinical-only C-index, marginals.

Used by the tests, ``docs/demo_cohort.md`` and the benchmark script. Works on the tables only
(``participants`` as written, ``ground_truth``), so it applies to a cohort read back from disk.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.utils import concordance_index
from scipy.ndimage import map_coordinates
from sklearn.model_selection import StratifiedKFold

from tle_kedro.data.demo.clinical import MAY_BE_MISSING
from tle_kedro.data.demo.config import DemoCohortConfig
from tle_kedro.data.demo.generate import generate_cohort
from tle_kedro.data.demo.writer import write_cohort
from tle_kedro.data.regions import Side, region_box

_CATEGORICAL = ("sex", "mri_finding", "operative_side")


def oracle_c_index(participants: pd.DataFrame, ground_truth: pd.DataFrame) -> float:
    """Harrell's C of the true log-hazard against the observed outcome (higher risk = earlier)."""
    merged = participants[["participant_id", "time_months", "recurrence"]].merge(
        ground_truth[["participant_id", "true_log_hazard"]], on="participant_id", validate="1:1"
    )
    return float(
        concordance_index(
            merged["time_months"].astype(float),
            -merged["true_log_hazard"].astype(float),
            merged["recurrence"].astype(int),
        )
    )


def clinical_design(participants: pd.DataFrame) -> pd.DataFrame:
    """Numeric design matrix of the clinical columns: median-imputed, one-hot categories.

    Imputation uses the whole table (adequate for a signal check, not for model selection).
    """
    columns = [c for c in (*MAY_BE_MISSING, "operative_side") if c in participants]
    x = participants[columns].copy()
    numeric = [c for c in columns if c not in _CATEGORICAL]
    x[numeric] = x[numeric].apply(pd.to_numeric, errors="coerce").astype(float)
    x[numeric] = x[numeric].fillna(x[numeric].median())
    cats = [c for c in _CATEGORICAL if c in x]
    for c in cats:
        x[c] = x[c].fillna(x[c].mode().iloc[0])
    return pd.get_dummies(x, columns=cats, drop_first=True, dtype=float)


def clinical_cox_c_index(
    participants: pd.DataFrame, n_splits: int = 5, seed: int = 0, penalizer: float = 0.01
) -> float:
    """Out-of-fold Harrell's C of a clinical-only Cox PH model (lifelines, K-fold by event)."""
    x = clinical_design(participants)
    time = participants["time_months"].astype(float).to_numpy()
    event = participants["recurrence"].astype(int).to_numpy()
    risk = np.zeros(len(x))
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train, test in folds.split(x, event):
        varying = x.columns[x.iloc[train].std() > 0]  # a constant column makes Cox singular
        frame = x.iloc[train][varying].assign(_time=time[train], _event=event[train])
        cph = CoxPHFitter(penalizer=penalizer)
        cph.fit(frame, duration_col="_time", event_col="_event")
        risk[test] = cph.predict_log_partial_hazard(x.iloc[test][varying]).to_numpy()
    return float(concordance_index(time, -risk, event))


def cohort_summary(participants: pd.DataFrame, ground_truth: pd.DataFrame) -> dict[str, float]:
    """The numbers reported for a demo cohort (rates as fractions, times in months)."""
    numbers = participants.apply(pd.to_numeric, errors="coerce")
    cells = participants[[c for c in MAY_BE_MISSING if c in participants]]
    admin = ground_truth.get("followup_months")
    reverse_km = KaplanMeierFitter().fit(numbers["time_months"], 1 - numbers["recurrence"])
    return {
        "n_patients": float(len(participants)),
        "oracle_c_index": oracle_c_index(participants, ground_truth),
        "clinical_cox_c_index": clinical_cox_c_index(participants),
        "event_rate": float(numbers["recurrence"].mean()),
        "median_time_months": float(numbers["time_months"].median()),
        # reverse Kaplan-Meier (censoring as the event): the usual "median follow-up"
        "median_followup_months": float(reverse_km.median_survival_time_),
        "median_admin_followup_months": float(np.median(admin)) if admin is not None else np.nan,
        "male_fraction": float(
            (participants["sex"] == "M").sum() / participants["sex"].notna().sum()
        ),
        "median_onset_months": float(numbers["age_at_onset_months"].median()),
        "median_surgery_months": float(numbers["age_at_surgery_months"].median()),
        "median_duration_months": float(numbers["epilepsy_duration_months"].median()),
        "missing_fraction": float(cells.isna().to_numpy().mean()),
        "events_within_12_months": float(
            ((numbers["recurrence"] == 1) & (numbers["time_months"] <= 12)).sum()
            / max(int(numbers["recurrence"].sum()), 1)
        ),
    }


def region_mean_in_mni(
    img: nib.Nifti1Image, pose: np.ndarray, region: str, side: Side, step_mm: float = 2.0
) -> float:
    """Mean of ``img`` over an MNI region box, through the patient's pose (MNI → world mm).

    Points of the box (every ``step_mm``) are mapped to world mm by ``pose`` (4, 4), then to
    voxels by the image affine, whatever the storage orientation; a 4-D image uses frame 0.
    """
    (x0, x1), (y0, y1), (z0, z1) = region_box(region, side)
    axes = [np.arange(lo + step_mm / 2, hi, step_mm) for lo, hi in ((x0, x1), (y0, y1), (z0, z1))]
    mni = np.stack(np.meshgrid(*axes, indexing="ij"), axis=0).reshape(3, -1)
    to_voxel = np.linalg.inv(img.affine) @ pose
    voxels = to_voxel[:3, :3] @ mni + to_voxel[:3, 3:]
    data = np.asanyarray(img.dataobj, dtype=np.float32)
    data = data.reshape(data.shape[:3])
    return float(map_coordinates(data, voxels, order=1, mode="nearest").mean())


def measure_demo_cohort(
    params: dict[str, Any] | DemoCohortConfig | None, root: Path
) -> dict[str, float]:
    """Generate a demo cohort, write it to ``root`` (timed) and return :func:`cohort_summary`.

    Adds ``generate_seconds`` (tables and specs), ``write_seconds`` (images and tables),
    ``seconds_per_patient`` and ``megabytes`` on disk. ``root`` must be empty or absent.
    """
    start = time.perf_counter()
    cohort = generate_cohort(params)
    generated = time.perf_counter()
    write_cohort(cohort, root)
    written = time.perf_counter()
    summary = cohort_summary(cohort.participants, cohort.ground_truth)
    size = sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())
    summary.update(
        generate_seconds=generated - start,
        write_seconds=written - generated,
        seconds_per_patient=(written - start) / len(cohort),
        megabytes=size / 1e6,
    )
    return summary
