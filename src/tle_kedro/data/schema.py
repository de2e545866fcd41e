"""Validation of ``participants.tsv``: a pandera schema plus row-level exclusions.

A missing required column stops the run (:class:`~tle_kedro.data.cohort.CohortError`); a bad
row never does: it is excluded with a reason (see :mod:`tle_kedro.data.exclusions`).

Accepted spellings (docs/bring_your_own_cohort.md lists them): ``operative_side`` in any case
as ``L``/``left``/``lt`` or ``R``/``right``/``rt`` (:data:`SIDE_SPELLINGS`); ``engel_class`` as
the class (``I``–``IV``) or an Engel subclass (``IA``–``ID``, ``IIA``–``IID``, ``IIIA``–``IIIB``,
``IVA``–``IVC``, any case, optionally ``I A``/``I-A``/``I.A``): the class is the Roman numeral,
the subclass is kept in ``engel_subclass``.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pandera.pandas as pa

from tle_kedro.data.cohort import NA_VALUES, CohortError
from tle_kedro.data.columns import (
    BINARY_COLUMNS,
    NUMERIC_COLUMNS,
    PARTICIPANT_ID_PATTERN,
    is_valid_participant_id,
)
from tle_kedro.data.exclusions import Reason, exclusion_row, exclusions_frame

CATEGORIES: dict[str, tuple[str, ...]] = {
    "sex": ("M", "F"),
    "operative_side": ("L", "R"),
    "mri_finding": ("normal", "hippocampal_sclerosis", "other_lesion"),
    "engel_class": ("I", "II", "III", "IV"),
}
# Lower-cased spelling -> side; anything else stays a value for the schema to refuse.
SIDE_SPELLINGS: dict[str, str] = {
    "l": "L",
    "left": "L",
    "lt": "L",
    "r": "R",
    "right": "R",
    "rt": "R",
}
# Engel (1993) subclasses per class: IA-ID, IIA-IID, IIIA-IIIB, IVA-IVC.
ENGEL_SUBCLASSES: dict[str, str] = {"I": "ABCD", "II": "ABCD", "III": "AB", "IV": "ABC"}
_ENGEL_RE = re.compile(r"^(IV|III|II|I)(?:[ .\-]?([A-D]))?$")
OUTCOME_COLUMNS: tuple[str, ...] = ("engel_class", "recurrence", "time_months")
CLINICAL_COLUMNS: tuple[str, ...] = (
    "participant_id",
    "sex",
    *NUMERIC_COLUMNS,
    "operative_side",
    *BINARY_COLUMNS,
    "mri_finding",
)
CONTRACT_COLUMNS: tuple[str, ...] = (*CLINICAL_COLUMNS, *OUTCOME_COLUMNS)
_FLOAT_COLUMNS = (*NUMERIC_COLUMNS, *BINARY_COLUMNS, "recurrence", "time_months")
_RECURRENCE_CHECK = "recurrence_matches_engel"


def participants_schema(require_outcome: bool = True) -> pa.DataFrameSchema:
    """Row-level schema of the parsed table (numbers as float64, categories as str).

    ``operative_side`` and (when ``require_outcome``) the outcome columns may not be missing;
    other clinical values may (they are imputed inside the training folds).
    """
    columns: dict[str, pa.Column] = {
        "participant_id": pa.Column(str, pa.Check.str_matches(PARTICIPANT_ID_PATTERN)),
        "operative_side": pa.Column(object, pa.Check.isin(CATEGORIES["operative_side"])),
    }
    for name in ("sex", "mri_finding"):
        columns[name] = pa.Column(object, pa.Check.isin(CATEGORIES[name]), nullable=True)
    for name in NUMERIC_COLUMNS:
        columns[name] = pa.Column(float, pa.Check.ge(0), nullable=True)
    for name in BINARY_COLUMNS:
        columns[name] = pa.Column(float, pa.Check.isin([0.0, 1.0]), nullable=True)
    optional = not require_outcome
    columns["engel_class"] = pa.Column(
        object, pa.Check.isin(CATEGORIES["engel_class"]), nullable=optional, required=False
    )
    columns["recurrence"] = pa.Column(
        float, pa.Check.isin([0.0, 1.0]), nullable=optional, required=False
    )
    columns["time_months"] = pa.Column(float, pa.Check.gt(0), nullable=optional, required=False)
    recurrence_check = pa.Check(_recurrence_matches_engel, name=_RECURRENCE_CHECK)
    return pa.DataFrameSchema(
        columns, checks=[recurrence_check], unique=["participant_id"], strict=False
    )


def _recurrence_matches_engel(df: pd.DataFrame) -> pd.Series:
    """Element-wise ``recurrence == (engel_class != "I")`` where both are present and valid."""
    if "recurrence" not in df or "engel_class" not in df:
        return pd.Series(True, index=df.index)
    engel, recurrence = df["engel_class"], df["recurrence"]
    checkable = recurrence.isin([0.0, 1.0]) & engel.isin(CATEGORIES["engel_class"])
    return ~checkable | (recurrence == (engel != "I").astype(float))


def validate_participants(
    df: pd.DataFrame, require_outcome: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate the raw participants table (all cells ``str`` or missing).

    Args:
        df: ``participants.tsv`` as read by :func:`tle_kedro.data.cohort.read_cohort`.
        require_outcome: False for inference on new patients: the outcome columns become
            optional (absent or empty is fine; present values are still checked).
    Returns:
        ``(valid, exclusions)``: the usable rows with contract dtypes sorted by
        ``participant_id`` (unknown columns dropped; ``engel_subclass`` added after
        ``engel_class`` when that column exists), and one exclusion row per problem.
    Raises:
        CohortError: a required column is missing (naming it and the fix).
    """
    _check_required_columns(df, require_outcome)
    unknown = [c for c in df.columns if c not in CONTRACT_COLUMNS]
    rows = [
        exclusion_row(None, Reason.UNKNOWN_COLUMN, f"column {c!r} is not in the contract; ignored")
        for c in unknown
    ]
    raw = df.drop(columns=unknown).reset_index(drop=True)
    parsed, parse_rows = _parse(raw)
    parsed = _normalise_spellings(parsed)
    problems = _id_problems(raw) + parse_rows + _schema_problems(parsed, raw, require_outcome)
    excluded = sorted({i for i, _ in problems})
    rows += [row for _, row in sorted(problems, key=lambda p: p[0])]
    valid = parsed.drop(index=excluded)
    valid = _final_dtypes(valid).sort_values("participant_id", kind="stable")
    return valid.reset_index(drop=True), exclusions_frame(rows)


def _check_required_columns(df: pd.DataFrame, require_outcome: bool) -> None:
    required = CONTRACT_COLUMNS if require_outcome else CLINICAL_COLUMNS
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise CohortError(
            f"participants.tsv lacks required column(s) {', '.join(map(repr, missing))}; "
            f"add them to the header (tab-separated; use 'n/a' for unknown values). "
            f"Expected columns: {', '.join(required)}. Found: {', '.join(map(str, df.columns))}"
        )


_Problem = tuple[int, dict[str, str]]


def _id_of(raw: pd.DataFrame, i: int) -> str | None:
    value = raw.at[i, "participant_id"]
    return None if pd.isna(value) else str(value)


def _id_problems(raw: pd.DataFrame) -> list[_Problem]:
    ids = raw["participant_id"]
    problems: list[_Problem] = []
    for i, value in ids.items():
        if not is_valid_participant_id(value):
            shown = "missing" if pd.isna(value) else repr(value)
            detail = f"participant_id {shown} does not match {PARTICIPANT_ID_PATTERN}"
            problems.append((int(i), exclusion_row(_id_of(raw, int(i)), Reason.INVALID_ID, detail)))
    valid_ids = ids[ids.map(is_valid_participant_id)]
    counts = valid_ids.value_counts()
    for i, value in valid_ids[valid_ids.duplicated(keep=False)].items():
        detail = f"participant_id {value!r} appears {counts[value]} times; all copies excluded"
        problems.append((int(i), exclusion_row(str(value), Reason.DUPLICATE_ID, detail)))
    return problems


def _parse(raw: pd.DataFrame) -> tuple[pd.DataFrame, list[_Problem]]:
    """Strip strings and parse numbers; a value that is present but not a number is a problem."""
    parsed = raw.copy()
    problems: list[_Problem] = []
    for name in raw.columns:
        stripped = _as_text(raw[name]).str.strip().replace(list(NA_VALUES), np.nan)
        if name not in _FLOAT_COLUMNS:
            parsed[name] = stripped.astype(object).where(stripped.notna(), None)
            continue
        numbers = pd.to_numeric(stripped, errors="coerce").astype(float)
        for i in numbers.index[~np.isfinite(numbers) & stripped.notna()]:
            detail = f"column {name!r} has value {raw.at[i, name]!r}, which is not a finite number"
            problems.append(
                (int(i), exclusion_row(_id_of(raw, int(i)), Reason.INVALID_VALUE, detail))
            )
        parsed[name] = numbers
    return parsed, problems


def _normalise_spellings(parsed: pd.DataFrame) -> pd.DataFrame:
    """Side spellings to ``L``/``R``; Engel subclasses to their class plus ``engel_subclass``.

    Unknown spellings are left as they are, so the schema reports them with the raw value.
    """
    out = parsed.copy()
    if "operative_side" in out:
        out["operative_side"] = out["operative_side"].map(
            lambda v: v if v is None else SIDE_SPELLINGS.get(str(v).lower(), v)
        )
    if "engel_class" in out:
        engel = [_engel(v) for v in out["engel_class"]]
        out["engel_class"] = [cls for cls, _ in engel]
        position = list(out.columns).index("engel_class") + 1
        out.insert(position, "engel_subclass", [sub for _, sub in engel])
    return out


def _engel(value: object) -> tuple[object, str | None]:
    """(class, subclass) of an Engel grade (``"IIa"`` -> ``("II", "IIA")``); unknown as is."""
    if value is None:
        return None, None
    match = _ENGEL_RE.fullmatch(str(value).upper())
    if match is None:
        return value, None
    grade, letter = match.groups()
    if letter is None:
        return grade, None
    if letter not in ENGEL_SUBCLASSES[grade]:
        return value, None
    return grade, grade + letter


def _as_text(column: pd.Series) -> pd.Series:
    """Cells as ``str``, missing as NaN (object dtype).

    ``participants.tsv`` is read as text, but a caller may pass a typed frame: a number, a bool
    or bytes is judged by its text (``140`` parses, ``True`` is invalid), never silently taken
    for a missing value, and a column without any string does not break the ``.str`` accessor.
    """
    return column.map(lambda v: np.nan if _is_missing(v) else str(v)).astype(object)


def _is_missing(value: object) -> bool:
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def _schema_problems(
    parsed: pd.DataFrame, raw: pd.DataFrame, require_outcome: bool
) -> list[_Problem]:
    """Row problems found by the pandera schema (ids are handled by :func:`_id_problems`)."""
    schema = participants_schema(require_outcome).remove_columns(["participant_id"])
    schema.unique = None
    try:
        schema.validate(parsed.drop(columns="participant_id"), lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases.dropna(subset=["index"])
        problems = [_problem_from_case(case, raw) for case in cases.itertuples(index=False)]
        return [p for p in problems if p is not None]
    return []


def _problem_from_case(case: object, raw: pd.DataFrame) -> _Problem | None:
    i, column, check = int(case.index), str(case.column), str(case.check)  # type: ignore[attr-defined]
    pid = _id_of(raw, i)
    value = raw.at[i, column] if column in raw.columns else None
    if check == _RECURRENCE_CHECK:
        if column != "recurrence":  # one report row per conflicting patient
            return None
        detail = (
            f"recurrence = {value} but engel_class = {raw.at[i, 'engel_class']!r}; "
            "recurrence must be 1 exactly when engel_class is not 'I'"
        )
        return i, exclusion_row(pid, Reason.OUTCOME_CONFLICT, detail)
    if check == "not_nullable":
        detail = f"column {column!r} is missing and is required"
        return i, exclusion_row(pid, Reason.MISSING_REQUIRED_VALUE, detail)
    if column == "time_months":
        detail = f"time_months = {value} (must be > 0 months)"
        return i, exclusion_row(pid, Reason.NON_POSITIVE_TIME, detail)
    detail = f"column {column!r} has invalid value {value!r}; {_expected(column)}"
    return i, exclusion_row(pid, Reason.INVALID_VALUE, detail)


def _expected(column: str) -> str:
    if column in CATEGORIES:
        return "allowed: " + ", ".join(CATEGORIES[column])
    if column in (*BINARY_COLUMNS, "recurrence"):
        return "allowed: 0, 1"
    return "must be a number >= 0"


def _final_dtypes(valid: pd.DataFrame) -> pd.DataFrame:
    out = valid.copy()
    for name in out.columns:
        if name in _FLOAT_COLUMNS:
            out[name] = out[name].astype("float64")
        else:
            out[name] = out[name].astype(object)
    if "recurrence" in out and out["recurrence"].notna().all():
        out["recurrence"] = out["recurrence"].astype("int64")
    out["participant_id"] = out["participant_id"].astype(str)
    return out
