"""Read a BIDS-style cohort folder: the participants table, its sidecar and the image paths.

Images are not opened here (preprocessing reads them lazily); this module only lists which
files exist (:mod:`tle_kedro.data.discovery`). Layout (see DESIGN.md), sessions and
``acq-``/``rec-``/``run-`` entities allowed::

    participants.tsv, participants.json
    sub-<id>/[ses-<s>/]anat/sub-<id>[_ses-<s>]…_T1w.nii[.gz]
    sub-<id>/[ses-<s>/]pet/sub-<id>[_ses-<s>]_trc-FDG…_pet.nii[.gz]
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import charset_normalizer
import pandas as pd

from tle_kedro.data.columns import PARTICIPANT_ID_PATTERN, is_valid_participant_id
from tle_kedro.data.discovery import (
    CANDIDATE_COLUMNS,
    IMAGE_COLUMNS,
    ImageSelection,
    discover_images,
    select_images,
    unlisted_subjects,
)
from tle_kedro.data.exclusions import Reason, exclusion_row, exclusions_frame

__all__ = [
    "IMAGE_COLUMNS",
    "NA_VALUES",
    "PARTICIPANT_ID_PATTERN",
    "CohortError",
    "RawCohort",
    "is_valid_participant_id",
    "read_cohort",
]

logger = logging.getLogger(__name__)

# The only spellings of a missing value (BIDS ``n/a``, plus an empty cell and ``NA``); pandas'
# default list (``None``, ``null``, ``NaN``, ``-nan``, ``#N/A`` …) would hide typos as missing.
NA_VALUES: tuple[str, ...] = ("n/a", "NA", "")
# The encoding a non-UTF-8 table is read with when charset-normalizer finds it plausible:
# Windows-1252 is what spreadsheet exports in Western Europe write (a superset of latin-1's
# printable characters).
_PREFERRED_FALLBACK = "cp1252"


class CohortError(ValueError):
    """The cohort folder cannot be read (missing, unreadable or malformed table)."""


@dataclass(frozen=True)
class RawCohort:
    """A cohort folder as read.

    Attributes:
        root: the cohort folder.
        participants: ``participants.tsv`` with every column as ``str`` (missing = NaN).
        sidecar: ``participants.json`` or None when absent.
        images: one row per participants row (:data:`IMAGE_COLUMNS`): ``participant_id``
            (raw), ``t1_path``, ``pet_path`` (resolved ``str``, or None when no usable file
            was chosen), ``subject_dir_exists`` (bool) and per modality the reason and detail
            when a file exists but cannot be chosen (ambiguous, outside the folder, …).
        candidates: every T1 / FDG PET file found (``discovery.CANDIDATE_COLUMNS``), from which
            ``images`` was chosen with the selection rule given to :func:`read_cohort`.
        notes: table-level report rows about the folder (an encoding guessed, subject folders
            without a row), exclusion-report columns.
    """

    root: Path
    participants: pd.DataFrame
    sidecar: dict[str, Any] | None
    images: pd.DataFrame
    candidates: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=CANDIDATE_COLUMNS)
    )
    notes: pd.DataFrame = field(default_factory=exclusions_frame)


def read_cohort(root: Path | str, selection: ImageSelection | None = None) -> RawCohort:
    """Read ``participants.tsv`` / ``.json`` under ``root`` and list each subject's images.

    Args:
        root: the cohort folder.
        selection: which file to use when a subject has several (``ImageSelection()``, the
            strict rule, when None: more than one candidate is ``ambiguous_image``).

    Raises:
        CohortError: the folder or table is missing, unreadable, empty or not tab-separated.
    """
    root = Path(root)
    if not root.is_dir():
        raise CohortError(
            f"cohort folder {root} does not exist; point the run at a BIDS folder with "
            "`kedro run --params=cohort_dir=/path/to/bids` or generate the demo cohort with "
            "`kedro run --pipelines=demo_cohort`"
        )
    table_path = root / "participants.tsv"
    participants, encoding = read_participants_table(table_path)
    notes = []
    if encoding != "utf-8":
        notes.append(
            exclusion_row(
                None,
                Reason.NON_UTF8_TABLE,
                f"participants.tsv is not UTF-8; read as {encoding} (check accented values; "
                "re-save it as UTF-8 to silence this)",
            )
        )
    ids = list(participants["participant_id"]) if "participant_id" in participants else []
    candidates = discover_images(root)
    for folder in unlisted_subjects(root, ids):
        n_files = int((candidates["participant_id"] == folder).sum())
        detail = (
            f"folder {folder}/ ({n_files} T1/PET file(s)) has no row in participants.tsv; "
            "add its row or move the folder out of the cohort"
        )
        notes.append(exclusion_row(folder, Reason.UNLISTED_SUBJECT, detail))
    return RawCohort(
        root=root,
        participants=participants,
        sidecar=_read_sidecar(root / "participants.json"),
        images=select_images(root, candidates, ids, selection or ImageSelection()),
        candidates=candidates,
        notes=exclusions_frame(notes),
    )


def read_participants_table(path: Path) -> tuple[pd.DataFrame, str]:
    """``participants.tsv`` as strings, and the encoding it was read with.

    Only :data:`NA_VALUES` are missing; any other text (``None``, ``null``, ``-``) stays a
    value for validation to judge. A table that is not UTF-8 is read with the encoding
    charset-normalizer finds (Windows-1252 when plausible) and a warning.

    Raises:
        CohortError: naming the file (and the line) and the fix when it is missing, unreadable,
            of an unrecognisable encoding, empty, has no data rows, or is not tab-separated.
    """
    fix = "it must be a UTF-8, tab-separated table with a header row (BIDS participants.tsv)"
    if not path.is_file():
        raise CohortError(f"{path} not found; {fix}")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CohortError(f"{path} cannot be read ({err}); {fix}") from err
    text, encoding = _decode(path, raw, fix)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise CohortError(f"{path} is empty; {fix}")
    header = lines[0]
    if "\t" not in header and any(sep in header for sep in (",", ";", "|", " ")):
        raise CohortError(
            f"{path} is not tab-separated (header {header[:80]!r}); {fix}. "
            "Re-export it with tabs as the separator."
        )
    if len(lines) < 2:
        raise CohortError(f"{path} has a header but no participant rows; {fix}")
    n_fields = header.count("\t") + 1
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and line.count("\t") + 1 != n_fields:
            raise CohortError(
                f"{path} is not a well-formed table: line {number} has "
                f"{line.count(chr(9)) + 1} tab-separated fields but the header has {n_fields}; "
                f"{fix}"
            )
    try:
        table = pd.read_csv(
            io.StringIO(text),
            sep="\t",
            dtype=str,
            keep_default_na=False,
            na_values=list(NA_VALUES),
            quoting=csv.QUOTE_NONE,
            skip_blank_lines=True,
            index_col=False,
        )
    except (pd.errors.ParserError, ValueError) as err:
        raise CohortError(f"{path} is not a well-formed table ({err}); {fix}") from err
    table.columns = [str(c) for c in table.columns]
    return table, encoding


def _decode(path: Path, raw: bytes, fix: str) -> tuple[str, str]:
    """(text, encoding): UTF-8 (a BOM is dropped), else the encoding charset-normalizer finds."""
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        matches = list(charset_normalizer.from_bytes(raw))
        if not matches:
            raise CohortError(
                f"{path} line {line} is not UTF-8 and the file's encoding cannot be recognised "
                f"(is it a spreadsheet, not a text export?); {fix}"
            ) from err
        least_chaos = min(m.chaos for m in matches)
        plausible = [m for m in matches if m.chaos == least_chaos]
        encoding = next(
            (
                _PREFERRED_FALLBACK
                for m in plausible
                if _PREFERRED_FALLBACK in m.could_be_from_charset
            ),
            plausible[0].encoding,
        )
        logger.warning(
            "%s is not UTF-8 (first non-UTF-8 byte on line %d); read as %s", path, line, encoding
        )
        return raw.decode(encoding), encoding


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CohortError(f"{path} is not valid JSON ({err}); fix or remove it") from err
    if not isinstance(data, dict):
        raise CohortError(f"{path} must hold a JSON object (column → description)")
    return data


def _subject_images(root: Path, participant_id: object) -> dict[str, Any]:
    """One subject's images with the strict selection rule (a row of :data:`IMAGE_COLUMNS`).

    For callers that know one subject at a time (the registered model's ``cohort_dir`` input);
    it indexes the whole folder, so a cohort is better read once with :func:`read_cohort`.
    """
    candidates = discover_images(root)
    chosen = select_images(root, candidates, [participant_id], ImageSelection())
    return dict(chosen.iloc[0])
