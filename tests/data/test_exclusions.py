"""The exclusion report's codes, frames and the run summary."""

from __future__ import annotations

import pandas as pd
import pytest

from tle_kedro.data.exclusions import (
    EXCLUSION_COLUMNS,
    MODALITY_REASONS,
    PATIENT_REASONS,
    TABLE_REASONS,
    Reason,
    concat_exclusions,
    exclusion_row,
    exclusions_frame,
    summary_line,
)


def test_every_reason_is_patient_modality_or_table_level() -> None:
    assert PATIENT_REASONS.isdisjoint(MODALITY_REASONS)
    assert TABLE_REASONS.isdisjoint(PATIENT_REASONS | MODALITY_REASONS)
    assert set(Reason) == PATIENT_REASONS | MODALITY_REASONS | TABLE_REASONS
    assert {"duplicate_id", "no_images", "outcome_conflict"} <= {str(r) for r in PATIENT_REASONS}


def test_rows_hold_the_code_string_and_an_empty_id_for_table_problems() -> None:
    frame = exclusions_frame([exclusion_row(None, Reason.UNKNOWN_COLUMN, "column 'x'")])
    assert list(frame.columns) == EXCLUSION_COLUMNS
    assert frame.loc[0].tolist() == ["", "unknown_column", "column 'x'"]


def test_empty_report_keeps_its_columns() -> None:
    assert list(exclusions_frame().columns) == EXCLUSION_COLUMNS
    assert concat_exclusions(exclusions_frame(), exclusions_frame()).empty


def test_concat_rejects_a_frame_with_other_columns() -> None:
    with pytest.raises(ValueError, match="must have columns"):
        concat_exclusions(pd.DataFrame({"id": ["a"]}))


def test_concat_keeps_order() -> None:
    a = exclusions_frame([exclusion_row("sub-1", Reason.INVALID_ID, "a")])
    b = exclusions_frame([exclusion_row("sub-2", Reason.NO_IMAGES, "b")])
    assert list(concat_exclusions(a, b)["participant_id"]) == ["sub-1", "sub-2"]


def test_summary_counts_read_used_excluded_and_missing_modality() -> None:
    used = pd.DataFrame({"has_t1": [True, True, False], "has_pet": [True, False, True]})
    assert summary_line(5, used) == "5 read, 3 used, 2 excluded, 2 with a missing modality"
