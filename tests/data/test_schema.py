"""Validation of participants.tsv: typed valid rows, one exclusion per row-level problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.cohort_factory import BASE_ROW
from tle_kedro.data.cohort import CohortError
from tle_kedro.data.exclusions import EXCLUSION_COLUMNS
from tle_kedro.data.schema import CONTRACT_COLUMNS, OUTCOME_COLUMNS, validate_participants


def _table(edits: dict[int, dict[str, str | None]] | None = None, n: int = 3) -> pd.DataFrame:
    rows = []
    for i in range(n):
        row: dict[str, str | None] = {"participant_id": f"sub-{i:02d}", **BASE_ROW}
        row.update((edits or {}).get(i, {}))
        rows.append(row)
    return pd.DataFrame(rows, dtype=object)


def test_valid_rows_get_contract_dtypes_and_are_sorted() -> None:
    table = _table({0: {"participant_id": "sub-zz"}, 1: {"hypoxia": None, "sex": None}})
    valid, exclusions = validate_participants(table)
    assert list(valid["participant_id"]) == ["sub-01", "sub-02", "sub-zz"]
    expected = list(CONTRACT_COLUMNS)
    expected.insert(expected.index("engel_class") + 1, "engel_subclass")
    assert list(valid.columns) == expected
    assert valid["age_at_onset_months"].dtype == np.float64
    assert valid["hypoxia"].dtype == np.float64 and np.isnan(valid.loc[0, "hypoxia"])
    assert valid.loc[0, "sex"] is None
    assert valid["recurrence"].dtype == np.int64
    assert exclusions.empty and list(exclusions.columns) == EXCLUSION_COLUMNS


@pytest.mark.parametrize(
    ("edit", "reason", "detail"),
    [
        ({"participant_id": "sub_1"}, "invalid_id", "does not match"),
        ({"participant_id": "../../etc"}, "invalid_id", "does not match"),
        ({"participant_id": None}, "invalid_id", "missing"),
        ({"time_months": "0"}, "non_positive_time", "time_months = 0"),
        ({"time_months": "-4.5"}, "non_positive_time", "-4.5"),
        ({"recurrence": "1"}, "outcome_conflict", "engel_class = 'I'"),
        ({"engel_class": "III"}, "outcome_conflict", "recurrence = 0"),
        ({"operative_side": None}, "missing_required_value", "operative_side"),
        ({"engel_class": None}, "missing_required_value", "engel_class"),
        ({"time_months": None}, "missing_required_value", "time_months"),
        ({"sex": "X"}, "invalid_value", "'sex' has invalid value 'X'; allowed: M, F"),
        ({"age_at_onset_months": "-3"}, "invalid_value", "'age_at_onset_months'"),
        ({"febrile_seizures": "2"}, "invalid_value", "allowed: 0, 1"),
        ({"operative_side": "both"}, "invalid_value", "'both'; allowed: L, R"),
        ({"operative_side": "links"}, "invalid_value", "allowed: L, R"),
        ({"engel_class": "IIIC"}, "invalid_value", "'IIIC'; allowed: I, II, III, IV"),
        ({"engel_class": "V"}, "invalid_value", "'V'"),
        ({"mri_finding": "None"}, "invalid_value", "'None'"),
        ({"sex": "null"}, "invalid_value", "'null'"),
        ({"age_at_onset_months": "None"}, "invalid_value", "not a finite number"),
        ({"mri_finding": "tumour"}, "invalid_value", "hippocampal_sclerosis"),
        ({"seizure_frequency_per_month": "often"}, "invalid_value", "not a finite number"),
        ({"age_at_surgery_months": "1e999"}, "invalid_value", "not a finite number"),
        ({"time_months": "inf"}, "invalid_value", "'time_months'"),
    ],
)
def test_a_bad_row_is_excluded_with_its_reason(
    edit: dict[str, str | None], reason: str, detail: str
) -> None:
    valid, exclusions = validate_participants(_table({1: edit}))
    assert len(valid) == 2 and "sub-01" not in set(valid["participant_id"])
    assert list(exclusions["reason"]) == [reason]
    assert detail in exclusions.loc[0, "detail"]


def test_every_copy_of_a_duplicated_id_is_excluded() -> None:
    valid, exclusions = validate_participants(_table({2: {"participant_id": "sub-00"}}))
    assert list(valid["participant_id"]) == ["sub-01"]
    assert list(exclusions["reason"]) == ["duplicate_id", "duplicate_id"]
    assert (exclusions["participant_id"] == "sub-00").all()


def test_unknown_columns_are_ignored_and_reported_once_each() -> None:
    table = _table().assign(favourite_colour="blue", notes="x")
    valid, exclusions = validate_participants(table)
    assert "favourite_colour" not in valid.columns and len(valid) == 3
    assert list(exclusions["reason"]) == ["unknown_column", "unknown_column"]
    assert list(exclusions["participant_id"]) == ["", ""]
    assert "'favourite_colour'" in exclusions.loc[0, "detail"]


def test_missing_required_column_stops_with_a_message_naming_it() -> None:
    with pytest.raises(CohortError) as err:
        validate_participants(_table().drop(columns=["time_months", "operative_side"]))
    message = str(err.value)
    assert "'operative_side'" in message and "'time_months'" in message
    assert "add them to the header" in message


def test_inference_tables_may_lack_the_outcome() -> None:
    table = _table().drop(columns=list(OUTCOME_COLUMNS))
    valid, exclusions = validate_participants(table, require_outcome=False)
    assert len(valid) == 3 and exclusions.empty
    assert not set(OUTCOME_COLUMNS) & set(valid.columns)


def test_inference_tables_may_have_empty_outcomes_but_not_bad_ones() -> None:
    table = _table({0: {"engel_class": None, "recurrence": None, "time_months": None}})
    table.loc[1, "time_months"] = "0"
    valid, exclusions = validate_participants(table, require_outcome=False)
    assert list(valid["participant_id"]) == ["sub-00", "sub-02"]
    assert list(exclusions["reason"]) == ["non_positive_time"]


def test_a_row_with_several_problems_lists_each_and_is_excluded_once() -> None:
    valid, exclusions = validate_participants(_table({0: {"sex": "X", "time_months": "0"}}))
    assert len(valid) == 2
    assert sorted(exclusions["reason"]) == ["invalid_value", "non_positive_time"]


def test_input_table_is_not_modified() -> None:
    table = _table({0: {"sex": " M "}})
    before = table.copy()
    validate_participants(table)
    pd.testing.assert_frame_equal(table, before)


@pytest.mark.parametrize(
    ("spelling", "side"),
    [("L", "L"), ("l", "L"), ("left", "L"), ("Left", "L"), ("LEFT", "L"), ("Lt", "L")]
    + [("R", "R"), ("r", "R"), ("right", "R"), ("Right", "R"), ("RIGHT", "R"), ("rt", "R")],
)
def test_common_side_spellings_map_to_l_or_r(spelling: str, side: str) -> None:
    valid, exclusions = validate_participants(_table({1: {"operative_side": spelling}}))
    assert exclusions.empty
    assert valid.set_index("participant_id").loc["sub-01", "operative_side"] == side
    assert list(valid["operative_side"]) == ["L", side, "L"]  # the other rows unchanged


@pytest.mark.parametrize(
    ("grade", "engel_class", "subclass", "recurrence"),
    [
        ("IA", "I", "IA", "0"),
        ("Id", "I", "ID", "0"),
        ("IIB", "II", "IIB", "1"),
        ("II A", "II", "IIA", "1"),
        ("III-B", "III", "IIIB", "1"),
        ("ivc", "IV", "IVC", "1"),
        ("III", "III", None, "1"),
    ],
)
def test_engel_subclasses_give_the_class_and_keep_the_subclass(
    grade: str, engel_class: str, subclass: str | None, recurrence: str
) -> None:
    table = _table({1: {"engel_class": grade, "recurrence": recurrence, "time_months": "6"}})
    valid, exclusions = validate_participants(table)
    assert exclusions.empty, exclusions.to_string()
    row = valid.set_index("participant_id").loc["sub-01"]
    assert (row["engel_class"], row["engel_subclass"]) == (engel_class, subclass)
    assert valid.set_index("participant_id").loc["sub-00", "engel_subclass"] is None


def test_engel_subclass_with_the_wrong_recurrence_is_an_outcome_conflict() -> None:
    valid, exclusions = validate_participants(_table({1: {"engel_class": "IB", "recurrence": "1"}}))
    assert list(exclusions["reason"]) == ["outcome_conflict"]
    assert list(valid["participant_id"]) == ["sub-00", "sub-02"]


def test_na_spellings_with_spaces_are_missing_but_other_words_are_values() -> None:
    valid, exclusions = validate_participants(
        _table({0: {"sex": " n/a "}, 1: {"hypoxia": " NA"}, 2: {"mri_finding": "None"}})
    )
    assert list(valid["participant_id"]) == ["sub-00", "sub-01"]
    assert valid.loc[0, "sex"] is None and np.isnan(valid.loc[1, "hypoxia"])
    assert list(exclusions["participant_id"]) == ["sub-02"]
    assert "'mri_finding' has invalid value 'None'" in exclusions["detail"].item()
