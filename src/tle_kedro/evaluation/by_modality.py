"""Harrell's C per model on the patients with both images, without PET and without T1.

A model that handles a missing modality (TransEpRelap masks it out of attention; the
classical models impute its region measures inside the training fold) should lose some
discrimination on those patients, not collapse. This table measures it: the same out-of-fold
predictions as the comparison table, scored within each subgroup alone (pairs across
subgroups are not counted), so a subgroup's C is the C a cohort of only those patients
would give. As in the comparison table (``repeats.py``), C is the mean over CV repeats of each
repeat's C, and every patient-bootstrap resample (drawn within the subgroup) averages over
repeats too (``bootstrap.repeat_mean_harrell_c``, the comparison table's own computation).

A subgroup with no patient, no event or fewer than two comparable pairs gets NaN and says why
in ``note`` (a real cohort with every scan has empty "PET missing" and "T1 missing" rows).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tle_kedro.evaluation import bootstrap as bs
from tle_kedro.evaluation.concordance import comparable_matrix
from tle_kedro.evaluation.metrics import EvalData, prepare_eval_data
from tle_kedro.evaluation.repeats import align_repeats

# subgroup → (has_t1, has_pet); a patient with neither image is not evaluated (dropped
# upstream by data_processing)
SUBGROUPS: dict[str, tuple[bool, bool]] = {
    "both images": (True, True),
    "PET missing": (True, False),
    "T1 missing": (False, True),
}
BY_MODALITY_COLUMNS = (
    "model",
    "subgroup",
    "n_patients",
    "n_events",
    "harrell_c",
    "harrell_c_lo",
    "harrell_c_hi",
    "n_boot_valid",
    "note",
)
MIN_COMPARABLE_PAIRS = 2


def availability(clinical: pd.DataFrame, data: EvalData) -> pd.DataFrame:
    """``has_t1``, ``has_pet`` (bool) of the evaluated patients, in ``data``'s order.

    Raises:
        ValueError: ``clinical`` lacks the columns or an evaluated patient.
    """
    missing = {"participant_id", "has_t1", "has_pet"} - set(clinical.columns)
    if missing:
        raise ValueError(
            f"clinical_validated: missing column(s) {sorted(missing)}; data_processing adds "
            "has_t1/has_pet (which images each patient has): rerun it"
        )
    table = clinical.set_index("participant_id")[["has_t1", "has_pet"]]
    absent = [p for p in data.participant_id if p not in table.index]
    if absent:
        raise ValueError(
            f"clinical_validated: {len(absent)} evaluated patient(s) absent (e.g. {absent[:3]})"
        )
    return table.loc[list(data.participant_id)].astype(bool).reset_index()


def _why_not(n: int, n_events: int, n_pairs: float) -> str:
    """Why a subgroup has no C ('' when it has one)."""
    if n == 0:
        return "no patient in this subgroup"
    if n_events == 0:
        return "no event in this subgroup"
    if n_pairs < MIN_COMPARABLE_PAIRS:
        return f"fewer than {MIN_COMPARABLE_PAIRS} comparable pairs"
    return ""


def subgroup_c(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    names: Sequence[str],
    n_boot: int,
    seed: int,
    level: float,
) -> list[bs.Interval]:
    """Per model, the mean over repeats of Harrell's C with its bootstrap interval.

    Args:
        time, event: (n,) the subgroup's outcomes.
        risk: (M, R, n) its out-of-fold risks per model and repeat.
        names: (M,) labels for the log (degenerate resamples are counted by name).
    """
    n = risk.shape[2]
    point = bs.repeat_mean_harrell_c(time, event, risk, np.ones((1, n)))[:, 0]
    if n_boot == 0:
        return [bs.Interval(float(c), np.nan, np.nan, 0, 0) for c in point]
    counts = bs.resample_counts(bs.resample_indices(n, n_boot, seed), n)
    samples = bs.repeat_mean_harrell_c(time, event, risk, counts)
    return [
        bs.percentile_interval(point[k], samples[k], level, name) for k, name in enumerate(names)
    ]


def c_by_modality(
    oof: pd.DataFrame,
    clinical: pd.DataFrame,
    *,
    n_boot: int,
    seed: int,
    level: float,
    reference_model: str,
) -> pd.DataFrame:
    """One row per model × subgroup (:data:`SUBGROUPS`), columns :data:`BY_MODALITY_COLUMNS`.

    Args:
        oof: ``oof_predictions`` (every model, every repeat).
        clinical: ``clinical_validated`` with ``has_t1``, ``has_pet`` and the outcomes.
        n_boot, seed, level: patient bootstrap within each subgroup (0 = no interval).
        reference_model: listed first, as in the comparison table.
    """
    data = prepare_eval_data(oof, clinical, reference_model)
    preds = align_repeats(oof, data)
    scans = availability(clinical, data)
    rows = []
    for subgroup, (t1, pet) in SUBGROUPS.items():
        mask = ((scans["has_t1"] == t1) & (scans["has_pet"] == pet)).to_numpy()
        time, event = data.time[mask], data.event[mask]
        n, n_events = int(mask.sum()), int(event.sum())
        note = _why_not(n, n_events, comparable_matrix(event, time).sum())
        if note:
            intervals = [bs.Interval(np.nan, np.nan, np.nan, 0, 0)] * len(data.models)
        else:
            names = [f"{model} Harrell C ({subgroup})" for model in data.models]
            intervals = subgroup_c(time, event, preds.risk[:, :, mask], names, n_boot, seed, level)
        for model, iv in zip(data.models, intervals, strict=True):
            rows.append((model, subgroup, n, n_events, iv.estimate, iv.lo, iv.hi, iv.n_valid, note))
    table = pd.DataFrame(rows, columns=list(BY_MODALITY_COLUMNS))
    order = {m: i for i, m in enumerate(data.models)}
    return table.sort_values("model", key=lambda s: s.map(order), kind="stable").reset_index(
        drop=True
    )
