"""Property test of the participants-table validator (Hypothesis, deterministic).

Any mutation of a valid table (drop, rename or add a column, a cell set to a value of any
type, a duplicated row, shuffled rows, an empty table) gives either a valid table plus an
exclusion report that accounts for every row, or a ``ValueError`` (``CohortError``) with a
message: never another exception.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cohort_factory import BASE_ROW
from tle_kedro.data.cohort import is_valid_participant_id
from tle_kedro.data.exclusions import EXCLUSION_COLUMNS, Reason
from tle_kedro.data.schema import CATEGORIES, CONTRACT_COLUMNS, validate_participants

N_ROWS = 5
_SPECIAL_STRINGS = [
    "",
    " ",
    "n/a",
    "NaN",
    "inf",
    "-inf",
    "1e999",
    "-0",
    "0x1F",
    "1,5",
    " 12 ",
    "I",
    "II",
    "L",
    "R",
    "M",
    "sub-../x",
    "sub-a/b",
    "../../etc/passwd",
    "sub-001",
    "\t",
    "é",
]
CELL_VALUES = st.one_of(
    st.none(),
    st.just(np.nan),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.booleans(),
    st.sampled_from(_SPECIAL_STRINGS),
    st.text(max_size=8),
    st.binary(max_size=4),
    st.just(pd.NaT),
)
COLUMN_NAMES = st.one_of(st.sampled_from(list(CONTRACT_COLUMNS)), st.text(max_size=6))


def valid_table(n: int = N_ROWS) -> pd.DataFrame:
    """A table that validates completely: every cell a ``str`` as read from disk."""
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"participant_id": f"sub-{i:03d}", **BASE_ROW}
        row["operative_side"] = "LR"[i % 2]
        if i % 2:
            row.update(engel_class="III", recurrence="1", time_months="9.5")
        rows.append(row)
    return pd.DataFrame(rows, dtype=object)


@st.composite
def mutations(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """A short list of mutations, each ``(kind, arguments)``."""
    column = st.sampled_from(list(CONTRACT_COLUMNS))
    row = st.integers(0, N_ROWS - 1)
    one = st.one_of(
        st.tuples(st.just("drop"), column),
        st.tuples(st.just("rename"), st.tuples(column, COLUMN_NAMES)),
        st.tuples(st.just("set"), st.tuples(row, column, CELL_VALUES)),
        st.tuples(st.just("duplicate"), row),
        st.tuples(st.just("shuffle"), st.integers(0, 2**16)),
        st.tuples(st.just("add"), st.tuples(COLUMN_NAMES, CELL_VALUES)),
        st.tuples(st.just("empty"), st.none()),
    )
    # Cell edits dominate: they are the row-level space; structural edits are rarer.
    cells = st.lists(st.tuples(st.just("set"), st.tuples(row, column, CELL_VALUES)), max_size=4)
    return draw(cells) + draw(st.lists(one, max_size=3))


def apply(table: pd.DataFrame, edits: list[tuple[str, Any]]) -> pd.DataFrame:
    """``table`` with ``edits`` applied in order (a new frame)."""
    out = table.copy()
    for kind, arg in edits:
        if kind == "drop" and arg in out.columns:
            out = out.drop(columns=arg)
        elif kind == "rename" and arg[0] in out.columns:
            out = out.rename(columns={arg[0]: arg[1]})
        elif kind == "set" and arg[1] in out.columns and arg[0] < len(out):
            out[arg[1]] = out[arg[1]].astype(object)
            out.iloc[arg[0], out.columns.get_loc(arg[1])] = arg[2]
        elif kind == "duplicate" and arg < len(out):
            out = pd.concat([out, out.iloc[[arg]]], ignore_index=True)
        elif kind == "shuffle":
            out = out.sample(frac=1.0, random_state=arg).reset_index(drop=True)
        elif kind == "add":
            out = out.assign(**{arg[0]: [arg[1]] * len(out)})
        elif kind == "empty":
            out = out.iloc[0:0]
    return out


def check_outcome(table: pd.DataFrame) -> None:
    """The property: a valid table with accounted rows, or a ValueError with a message."""
    try:
        valid, exclusions = validate_participants(table)
    except ValueError as err:  # CohortError is a ValueError
        assert str(err).strip(), "a validation error must say what is wrong"
        return
    assert list(exclusions.columns) == EXCLUSION_COLUMNS
    assert set(exclusions["reason"]) <= {str(r) for r in Reason}
    assert exclusions["detail"].map(lambda d: isinstance(d, str) and d != "").all()
    _check_valid_rows(valid)
    # read = used + excluded: every input row is in `valid` or has an exclusion row.
    excluded_ids = set(exclusions["participant_id"])
    for value in table["participant_id"]:
        if not (is_valid_participant_id(value) and value in set(valid["participant_id"])):
            assert ("" if pd.isna(value) else str(value)) in excluded_ids
    assert len(valid) <= len(table)


def _check_valid_rows(valid: pd.DataFrame) -> None:
    assert valid["participant_id"].map(is_valid_participant_id).all()
    assert valid["participant_id"].is_unique
    assert valid["participant_id"].is_monotonic_increasing
    assert valid["operative_side"].isin(CATEGORIES["operative_side"]).all()
    if len(valid):
        time = valid["time_months"].to_numpy(dtype=float)
        assert (np.isfinite(time) & (time > 0)).all()
        recurrence = valid["recurrence"].to_numpy(dtype=float)
        assert (recurrence == (valid["engel_class"] != "I").to_numpy(dtype=float)).all()


def test_the_unmutated_table_is_entirely_valid() -> None:
    table = valid_table()
    valid, exclusions = validate_participants(table)
    assert len(valid) == N_ROWS and exclusions.empty


@pytest.mark.parametrize(
    ("edits", "reason"),
    [
        ([("set", (2, "time_months", float("inf")))], "invalid_value"),
        ([("set", (2, "time_months", -(10**30)))], "non_positive_time"),
        ([("set", (2, "age_at_onset_months", b"\x00"))], "invalid_value"),
        ([("set", (2, "sex", 1))], "invalid_value"),
        ([("set", (2, "participant_id", 7))], "invalid_id"),
        ([("set", (2, "recurrence", True))], "invalid_value"),
        ([("set", (2, "age_at_onset_months", 140))], None),
        ([("set", (2, "time_months", 9.5))], None),
        ([("duplicate", 2)], "duplicate_id"),
        ([("add", ("scanner", np.nan))], "unknown_column"),
    ],
)
def test_typed_cells_are_judged_by_their_text(
    edits: list[tuple[str, Any]], reason: str | None
) -> None:
    """A cell that is not a ``str`` (a number, bytes, a bool) is read as its text, not dropped."""
    table = apply(valid_table(), edits)
    valid, exclusions = validate_participants(table)
    if reason is None:  # a well-typed number is used as such
        assert exclusions.empty and len(valid) == N_ROWS
        assert valid.loc[2, edits[0][1][1]] == float(edits[0][1][2])
    else:
        assert reason in set(exclusions["reason"])
        assert len(valid) == (N_ROWS if reason == "unknown_column" else N_ROWS - 1)


@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(edits=mutations())
def test_any_mutation_gives_a_valid_table_or_a_named_reason(edits: list[tuple[str, Any]]) -> None:
    check_outcome(apply(valid_table(), edits))
