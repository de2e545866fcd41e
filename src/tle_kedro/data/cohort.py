"""Read a BIDS-style cohort folder: the participants table, its sidecar and the image paths.

Images are not opened here (preprocessing reads them lazily); this module only lists which
files exist. Layout (see DESIGN.md)::

    participants.tsv, participants.json
    sub-<id>/anat/sub-<id>_T1w.nii.gz
    sub-<id>/pet/sub-<id>_trc-FDG_pet.nii.gz
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

PARTICIPANT_ID_PATTERN = r"^sub-[A-Za-z0-9]+$"
_ID_RE = re.compile(PARTICIPANT_ID_PATTERN)
IMAGE_COLUMNS: list[str] = ["participant_id", "t1_path", "pet_path", "subject_dir_exists"]


class CohortError(ValueError):
    """The cohort folder cannot be read (missing, unreadable or malformed table)."""


@dataclass(frozen=True)
class RawCohort:
    """A cohort folder as read.

    Attributes:
        root: the cohort folder.
        participants: ``participants.tsv`` with every column as ``str`` (missing = NaN).
        sidecar: ``participants.json`` or None when absent.
        images: one row per participants row: ``participant_id`` (raw), ``t1_path``,
            ``pet_path`` (``str`` or None when the file does not exist),
            ``subject_dir_exists`` (bool).
    """

    root: Path
    participants: pd.DataFrame
    sidecar: dict[str, Any] | None
    images: pd.DataFrame


def is_valid_participant_id(value: object) -> bool:
    """True for a string matching ``^sub-[A-Za-z0-9]+$`` (so it cannot escape the folder)."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def read_cohort(root: Path | str) -> RawCohort:
    """Read ``participants.tsv`` / ``.json`` under ``root`` and list each subject's images.

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
    participants = read_participants_table(root / "participants.tsv")
    images = pd.DataFrame(
        [_subject_images(root, pid) for pid in participants.get("participant_id", [])],
        columns=IMAGE_COLUMNS,
    )
    if "participant_id" not in participants.columns:
        images = pd.DataFrame(columns=IMAGE_COLUMNS)
    return RawCohort(
        root=root,
        participants=participants,
        sidecar=_read_sidecar(root / "participants.json"),
        images=images,
    )


def read_participants_table(path: Path) -> pd.DataFrame:
    """``participants.tsv`` as strings (``n/a``, ``NA`` and empty cells are missing).

    Raises:
        CohortError: naming the file and the fix when it is missing, unreadable, empty, has no
            data rows, or is not tab-separated.
    """
    fix = "it must be a UTF-8, tab-separated table with a header row (BIDS participants.tsv)"
    if not path.is_file():
        raise CohortError(f"{path} not found; {fix}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise CohortError(f"{path} cannot be read ({err}); {fix}") from err
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
    for number, line in enumerate(lines[1:], start=2):
        if line.count("\t") + 1 != n_fields:
            raise CohortError(
                f"{path} is not a well-formed table: line {number} has "
                f"{line.count(chr(9)) + 1} tab-separated fields but the header has {n_fields}; "
                f"{fix}"
            )
    try:
        table = pd.read_csv(
            path,
            sep="\t",
            dtype=str,
            keep_default_na=True,
            quoting=csv.QUOTE_NONE,
            encoding="utf-8-sig",
            skip_blank_lines=True,
            index_col=False,
        )
    except (pd.errors.ParserError, ValueError) as err:
        raise CohortError(f"{path} is not a well-formed table ({err}); {fix}") from err
    table.columns = [str(c) for c in table.columns]
    return table


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


def _first_existing(*candidates: Path) -> str | None:
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    return None


def _subject_images(root: Path, participant_id: object) -> dict[str, Any]:
    """Image paths of one subject; ids that are not ``sub-<alnum>`` never get a path."""
    row: dict[str, Any] = {
        "participant_id": participant_id,
        "t1_path": None,
        "pet_path": None,
        "subject_dir_exists": False,
    }
    if not is_valid_participant_id(participant_id):
        return row
    pid = str(participant_id)
    subject = root / pid
    row["subject_dir_exists"] = subject.is_dir()
    t1 = subject / "anat" / f"{pid}_T1w"
    pet = subject / "pet" / f"{pid}_trc-FDG_pet"
    row["t1_path"] = _first_existing(t1.with_suffix(".nii.gz"), t1.with_suffix(".nii"))
    row["pet_path"] = _first_existing(pet.with_suffix(".nii.gz"), pet.with_suffix(".nii"))
    return row
