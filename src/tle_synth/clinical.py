"""Clinical table of the demo cohort: reference marginals, weak signal, a few missing values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tle_synth.config import HISTORY_ITEMS, ClinicalConfig

PARTICIPANT_COLUMNS: tuple[str, ...] = (
    "participant_id",
    "sex",
    "age_at_onset_months",
    "age_at_surgery_months",
    "epilepsy_duration_months",
    "seizure_frequency_per_month",
    "operative_side",
    *HISTORY_ITEMS,
    "mri_finding",
    "engel_class",
    "recurrence",
    "time_months",
)
# Outcome and identity columns are never missing; everything else may be.
NEVER_MISSING: tuple[str, ...] = (
    "participant_id",
    "operative_side",
    "engel_class",
    "recurrence",
    "time_months",
)
MAY_BE_MISSING: tuple[str, ...] = tuple(c for c in PARTICIPANT_COLUMNS if c not in NEVER_MISSING)

_HISTORY_TEXT = {
    "febrile_seizures": "history of febrile seizures in childhood",
    "secondary_generalization": "focal to bilateral tonic-clonic seizures before surgery",
    "early_brain_injury": "perinatal or early-childhood brain injury",
    "family_history": "epilepsy in a first-degree relative",
    "hypoxia": "history of hypoxic-ischaemic event",
    "cns_infection": "history of CNS infection (meningitis, encephalitis)",
    "head_trauma": "history of significant head trauma",
    "prior_surgery": "previous epilepsy surgery",
}
_BINARY_LEVELS = {"0": "no", "1": "yes"}


def participant_ids(n: int) -> list[str]:
    """``sub-001`` … zero-padded to at least three digits."""
    width = max(3, len(str(n)))
    return [f"sub-{i:0{width}d}" for i in range(1, n + 1)]


def _ages(n: int, cfg: ClinicalConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Onset and duration (correlated log-normals, sample medians set to the reference)."""
    rho = cfg.onset_duration_log_corr
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)
    onset = np.exp(cfg.onset_log_sd * z[:, 0])
    duration = np.exp(cfg.duration_log_sd * z[:, 1])
    onset = np.maximum(np.round(onset * cfg.onset_median_months / np.median(onset)), 1.0)
    duration = np.maximum(
        np.round(duration * cfg.duration_median_months / np.median(duration)), 1.0
    )
    return {
        "age_at_onset_months": onset.astype(int),
        "age_at_surgery_months": (onset + duration).astype(int),
        "epilepsy_duration_months": duration.astype(int),
    }


def _sexes(n: int, male_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Exactly round(n * male_fraction) males, in random order."""
    sex = np.full(n, "F", dtype=object)
    sex[: int(round(n * male_fraction))] = "M"
    return rng.permutation(sex)


def sample_clinical(
    n: int, operative_side: np.ndarray, cfg: ClinicalConfig, rng: np.random.Generator
) -> pd.DataFrame:
    """Complete clinical covariates (no outcome, no ``mri_finding``, no missing values).

    Returns:
        DataFrame (n rows): ``participant_id``, ``sex``, the three ages in whole months
        (duration = surgery − onset), ``seizure_frequency_per_month``,
        ``operative_side`` and the history items as int 0/1.
    """
    table = pd.DataFrame({"participant_id": participant_ids(n)})
    table["sex"] = _sexes(n, cfg.male_fraction, rng)
    for column, values in _ages(n, cfg, rng).items():
        table[column] = values
    freq = cfg.seizure_frequency_median * np.exp(cfg.seizure_frequency_log_sd * rng.normal(size=n))
    table["seizure_frequency_per_month"] = np.round(freq, 1)
    table["operative_side"] = operative_side
    for item in HISTORY_ITEMS:
        table[item] = (rng.random(n) < cfg.history_rates[item]).astype(int)
    return table


def apply_missingness(
    table: pd.DataFrame, fraction: float, rng: np.random.Generator
) -> pd.DataFrame:
    """Copy of ``table`` with each cell of :data:`MAY_BE_MISSING` blanked with ``fraction``.

    Integer columns become pandas ``Int64`` (``<NA>``), floats NaN, strings None.
    """
    out = table.copy()
    for column in MAY_BE_MISSING:
        if column not in out:
            continue
        drop = rng.random(len(out)) < fraction
        kind = out[column].dtype.kind
        if kind == "O":
            out[column] = out[column].where(~drop, None)
        elif kind in "iu":  # nullable integers keep "1" (not "1.0") in the TSV
            out[column] = out[column].astype("Int64").mask(drop)
        else:
            out[column] = out[column].astype(float).where(~drop)
    return out


def participants_sidecar() -> dict[str, dict[str, object]]:
    """BIDS ``participants.json``: a description (and levels/units) for every column."""
    side = {"L": "left", "R": "right"}
    sidecar: dict[str, dict[str, object]] = {
        "participant_id": {"Description": "unique participant identifier"},
        "sex": {"Description": "sex", "Levels": {"M": "male", "F": "female"}},
        "age_at_onset_months": {"Description": "age at epilepsy onset", "Units": "months"},
        "age_at_surgery_months": {"Description": "age at surgery", "Units": "months"},
        "epilepsy_duration_months": {
            "Description": "epilepsy duration (age at surgery - age at onset)",
            "Units": "months",
        },
        "seizure_frequency_per_month": {
            "Description": "preoperative seizure frequency",
            "Units": "seizures per month",
        },
        "operative_side": {"Description": "side of the temporal resection", "Levels": side},
    }
    for item, text in _HISTORY_TEXT.items():
        sidecar[item] = {"Description": text, "Levels": _BINARY_LEVELS}
    sidecar["mri_finding"] = {
        "Description": "preoperative MRI read by a neuroradiologist (side not recorded)",
        "Levels": {
            "normal": "no lesion seen",
            "hippocampal_sclerosis": "hippocampal sclerosis",
            "other_lesion": "another lesion (e.g. cortical dysplasia, tumour, cavernoma)",
        },
    }
    sidecar["engel_class"] = {
        "Description": "Engel outcome class at last follow-up",
        "Levels": {
            "I": "free of disabling seizures",
            "II": "rare disabling seizures",
            "III": "worthwhile improvement",
            "IV": "no worthwhile improvement",
        },
    }
    sidecar["recurrence"] = {
        "Description": "seizure recurrence (1 exactly when engel_class is not I)",
        "Levels": _BINARY_LEVELS,
    }
    sidecar["time_months"] = {
        "Description": "months from surgery to first recurrence, or to last follow-up",
        "Units": "months",
    }
    assert set(sidecar) == set(PARTICIPANT_COLUMNS)
    return sidecar
