"""The exclusion report: every patient, image or column not used, and why.

One row per problem, columns :data:`EXCLUSION_COLUMNS`. A patient-level reason removes the
patient from the analysis; a modality-level reason keeps the patient with that modality
masked (``has_t1``/``has_pet`` False) and its ``detail`` starts with the modality name
(``"T1: ..."`` or ``"PET: ..."``). Table-level rows (:data:`TABLE_REASONS`) concern the
folder or the table, not a row of it: ``unknown_column`` and ``non_utf8_table`` have an empty
``participant_id``; ``unlisted_subject`` names the folder ``sub-<id>/`` that has no row.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

import pandas as pd

EXCLUSION_COLUMNS: list[str] = ["participant_id", "reason", "detail"]


class Reason(StrEnum):
    """Reason codes of the exclusion report (the values are what the CSV holds)."""

    # patient level: the row is not used
    DUPLICATE_ID = "duplicate_id"
    INVALID_ID = "invalid_id"
    NON_POSITIVE_TIME = "non_positive_time"
    OUTCOME_CONFLICT = "outcome_conflict"
    MISSING_REQUIRED_VALUE = "missing_required_value"
    INVALID_VALUE = "invalid_value"
    NO_IMAGES = "no_images"
    # modality level: the patient is kept, the modality is masked
    MISSING_MODALITY = "missing_modality"
    UNREADABLE_IMAGE = "unreadable_image"
    NON_FINITE_VOXELS = "non_finite_voxels"
    WRONG_DIMENSIONALITY = "wrong_dimensionality"
    BLANK_IMAGE = "blank_image"
    REGISTRATION_FAILED = "registration_failed"
    NO_ORIENTATION = "no_orientation"
    ORIENTATION_CONFLICT = "orientation_conflict"
    IMAGE_TOO_LARGE = "image_too_large"
    OUTSIDE_COHORT = "outside_cohort"
    AMBIGUOUS_IMAGE = "ambiguous_image"
    # table level: the column or folder is ignored, or the table needed a guess
    UNKNOWN_COLUMN = "unknown_column"
    UNLISTED_SUBJECT = "unlisted_subject"
    NON_UTF8_TABLE = "non_utf8_table"
    BIDS_VALIDATOR = "bids_validator"


MODALITY_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.MISSING_MODALITY,
        Reason.UNREADABLE_IMAGE,
        Reason.NON_FINITE_VOXELS,
        Reason.WRONG_DIMENSIONALITY,
        Reason.BLANK_IMAGE,
        Reason.REGISTRATION_FAILED,
        Reason.NO_ORIENTATION,
        Reason.ORIENTATION_CONFLICT,
        Reason.IMAGE_TOO_LARGE,
        Reason.OUTSIDE_COHORT,
        Reason.AMBIGUOUS_IMAGE,
    }
)
TABLE_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.UNKNOWN_COLUMN,
        Reason.UNLISTED_SUBJECT,
        Reason.NON_UTF8_TABLE,
        Reason.BIDS_VALIDATOR,
    }
)
PATIENT_REASONS: frozenset[Reason] = frozenset(set(Reason) - MODALITY_REASONS - TABLE_REASONS)


def exclusion_row(participant_id: str | None, reason: Reason, detail: str) -> dict[str, str]:
    """One report row; a missing id (table-level problem or unreadable id) becomes ``""``."""
    return {"participant_id": participant_id or "", "reason": str(reason), "detail": detail}


def exclusions_frame(rows: Iterable[dict[str, str]] = ()) -> pd.DataFrame:
    """A report with exactly :data:`EXCLUSION_COLUMNS` (string dtype), empty if no rows."""
    frame = pd.DataFrame(list(rows), columns=EXCLUSION_COLUMNS)
    return frame.astype(str) if len(frame) else frame.astype(object)


def concat_exclusions(*frames: pd.DataFrame) -> pd.DataFrame:
    """Concatenate reports (column order checked), index reset."""
    for frame in frames:
        if list(frame.columns) != EXCLUSION_COLUMNS:
            raise ValueError(
                f"an exclusion report must have columns {EXCLUSION_COLUMNS}, "
                f"got {list(frame.columns)}"
            )
    non_empty = [f for f in frames if len(f)]
    if not non_empty:
        return exclusions_frame()
    return pd.concat(non_empty, ignore_index=True)


def summary_line(n_read: int, used: pd.DataFrame) -> str:
    """The run's one-line summary.

    Args:
        n_read: rows of ``participants.tsv``.
        used: the validated table (one row per used patient) with ``has_t1``, ``has_pet``.
    """
    n_used = len(used)
    n_missing = int((~(used["has_t1"].astype(bool) & used["has_pet"].astype(bool))).sum())
    return (
        f"{n_read} read, {n_used} used, {n_read - n_used} excluded, "
        f"{n_missing} with a missing modality"
    )
