"""Measurements of a synthetic cohort: oracle, latent and clinical-only C-index, marginals.

Used by the tests, ``docs/demo_cohort.md`` and :func:`tle_synth.generate_cohort`. Works on the
tables only (``participants`` as written, ``ground_truth``), so it applies to a cohort read
back from disk; :func:`territory_mean_in_mni` reads an image through a patient's pose.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.utils import concordance_index
from scipy.ndimage import map_coordinates
from sklearn.model_selection import StratifiedKFold

from tle_synth.clinical import MAY_BE_MISSING
from tle_synth.territories import TERRITORIES, Side

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


def cox_c_index(
    x: pd.DataFrame,
    participants: pd.DataFrame,
    n_splits: int = 5,
    seed: int = 0,
    penalizer: float = 0.01,
) -> float:
    """Out-of-fold Harrell's C of a penalised Cox PH model on ``x`` (lifelines, K-fold by event).

    ``x`` is a numeric design matrix aligned row by row with ``participants``. NaN when the
    cohort has fewer than 2 events or 2 censored patients (too small to cross-validate);
    fewer folds when a class is smaller than ``n_splits``.
    """
    time = participants["time_months"].astype(float).to_numpy()
    event = participants["recurrence"].astype(int).to_numpy()
    n_splits = min(n_splits, int(event.sum()), int(len(event) - event.sum()))
    if n_splits < 2:
        return float("nan")
    x = x.reset_index(drop=True).astype(float)
    risk = np.zeros(len(x))
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train, test in folds.split(x, event):
        varying = x.columns[x.iloc[train].std() > 0]  # a constant column makes Cox singular
        frame = x.iloc[train][varying].assign(_time=time[train], _event=event[train])
        cph = CoxPHFitter(penalizer=penalizer)
        cph.fit(frame, duration_col="_time", event_col="_event")
        risk[test] = cph.predict_log_partial_hazard(x.iloc[test][varying]).to_numpy()
    return float(concordance_index(time, -risk, event))


def clinical_cox_c_index(
    participants: pd.DataFrame, n_splits: int = 5, seed: int = 0, penalizer: float = 0.01
) -> float:
    """Out-of-fold Harrell's C of a clinical-only Cox PH model (see :func:`cox_c_index`)."""
    return cox_c_index(clinical_design(participants), participants, n_splits, seed, penalizer)


def latent_cox_c_index(
    participants: pd.DataFrame, ground_truth: pd.DataFrame, n_splits: int = 5, seed: int = 0
) -> float:
    """Out-of-fold C of a Cox PH model on the true lesion terms (``term_*`` of the truth).

    The ceiling of a model that measured every latent lesion property exactly: it should
    come close to the oracle, or the images cannot carry the signal the truth is built from.
    """
    terms = ground_truth[[c for c in ground_truth if c.startswith("term_")]]
    return cox_c_index(terms, participants, n_splits, seed)


def cohort_summary(participants: pd.DataFrame, ground_truth: pd.DataFrame) -> dict[str, float]:
    """The numbers reported for a demo cohort (rates as fractions, times in months)."""
    numbers = participants.apply(pd.to_numeric, errors="coerce")
    cells = participants[[c for c in MAY_BE_MISSING if c in participants]]
    admin = ground_truth.get("followup_months")
    reverse_km = KaplanMeierFitter().fit(numbers["time_months"], 1 - numbers["recurrence"])
    return {
        "n_patients": float(len(participants)),
        "oracle_c_index": oracle_c_index(participants, ground_truth),
        "latent_cox_c_index": latent_cox_c_index(participants, ground_truth),
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
        **{
            f"{modality}_missing_fraction": float(1 - ground_truth[f"has_{modality}"].mean())
            for modality in ("pet", "t1")
            if f"has_{modality}" in ground_truth
        },
        "events_within_12_months": float(
            ((numbers["recurrence"] == 1) & (numbers["time_months"] <= 12)).sum()
            / max(int(numbers["recurrence"].sum()), 1)
        ),
    }


def territory_mean_in_mni(
    img: nib.Nifti1Image,
    pose: np.ndarray,
    territory: str,
    side: Side,
    step_mm: float = 2.0,
    s_range: tuple[float, float] = (0.0, 1.0),
) -> float:
    """Mean of ``img`` inside one of the generator's territories, through a patient's pose.

    Points inside the capsule (every ``step_mm``, axis fraction within ``s_range``) are mapped
    to world mm by ``pose`` (4, 4, MNI → world), then to voxels by the image affine, whatever
    the storage orientation; a 4-D image uses frame 0.
    """
    terr = TERRITORIES[territory]
    a, b = terr.ends(side)
    reach = max(terr.radius_mm)
    axes = [np.arange(min(a[i], b[i]) - reach, max(a[i], b[i]) + reach, step_mm) for i in range(3)]
    mni = np.stack(np.meshgrid(*axes, indexing="ij"), axis=0).reshape(3, -1).astype(np.float32)
    s, d = terr.project(mni, side)
    mni = mni[:, (d < 0) & (s >= s_range[0]) & (s <= s_range[1])]
    to_voxel = np.linalg.inv(img.affine) @ pose
    voxels = to_voxel[:3, :3] @ mni + to_voxel[:3, 3:]
    data = np.asanyarray(img.dataobj, dtype=np.float32)
    data = data.reshape(data.shape[:3])
    return float(map_coordinates(data, voxels, order=1, mode="nearest").mean())
