"""Find each subject's T1 and FDG PET in a BIDS folder as it really is, and choose one of each.

Discovery uses ``ancpbids`` (its ``BIDSLayout`` indexed a 100-subject, 1200-file tree in
0.07 s against pybids' 2.4-3.0 s, 0.25 s against 3.1-3.9 s with imports; see
docs/bring_your_own_cohort.md): sessions (``ses-``), ``acq-``, ``rec-`` and ``run-`` entities
and ``.nii`` / ``.nii.gz`` are all normal. A file counts as a candidate when it lies at
``sub-<id>/[ses-<s>/]anat/…_T1w.nii[.gz]`` or ``sub-<id>/[ses-<s>/]pet/…_trc-FDG_…pet.nii[.gz]``
and its own ``sub``/``ses`` entities agree with its folders.

:func:`select_images` applies the selection rule of conf (:class:`ImageSelection`): an
ambiguous match is an exclusion reason, never a silent pick; links are resolved and a file
outside the cohort folder is a reason unless ``allow_outside_root``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import ancpbids
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tle_kedro.data.columns import is_valid_participant_id
from tle_kedro.data.exclusions import Reason

logger = logging.getLogger(__name__)

CANDIDATE_COLUMNS: list[str] = [
    "participant_id",
    "modality",
    "path",
    "session",
    "acquisition",
    "reconstruction",
    "run",
]
# One (reason, detail) pair per modality: ``<m>_reason`` is None when the file is usable.
IMAGE_COLUMNS: list[str] = [
    "participant_id",
    "t1_path",
    "pet_path",
    "subject_dir_exists",
    "t1_reason",
    "t1_detail",
    "pet_reason",
    "pet_detail",
]
_MODALITIES: dict[str, tuple[str, str]] = {"T1": ("anat", "T1w"), "PET": ("pet", "pet")}


class ImageSelection(BaseModel):
    """Which file is a subject's T1 / PET when several are present.

    ``params:cohort_reading.image_selection`` in conf/base/parameters_data_processing.yml.

    Attributes:
        session: None = any (more than one session is ambiguous); ``"latest"`` = the last
            session label in natural order (``ses-2`` after ``ses-1``); a label (``preop``) or
            a list of labels in order of preference.
        acquisition, reconstruction: None = any; a label keeps only files with that
            ``acq-`` / ``rec-`` value.
        run: None = any; ``"latest"`` = the highest ``run-`` (a repeated scan); an integer.
        allow_outside_root: True accepts links that resolve outside the cohort folder.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    session: str | list[str] | None = None
    acquisition: str | None = None
    reconstruction: str | None = None
    run: Literal["latest"] | int | None = None
    allow_outside_root: bool = False

    @field_validator("session", "acquisition", "reconstruction", mode="before")
    @classmethod
    def _labels_as_text(cls, value: object) -> object:
        """``ses-1`` is the label ``"1"``: YAML and ``--params`` read it as the number 1."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(int(value)) if float(value).is_integer() else str(value)
        if isinstance(value, list):
            return [cls._labels_as_text(v) for v in value]
        return value


class CohortReading(BaseModel):
    """``params:cohort_reading``: how images are chosen and whether the folder is validated.

    Attributes:
        image_selection: the selection rule (:class:`ImageSelection`).
        bids_validator: True runs the official ``bids-validator`` when it is on PATH (and
            skips it when not) and attaches its summary to the exclusion report; False never
            runs it.
        bids_validator_timeout_s: give up on the validator after this many seconds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_selection: ImageSelection = Field(default_factory=ImageSelection)
    bids_validator: bool = True
    bids_validator_timeout_s: Annotated[float, Field(gt=0)] = 300.0


def discover_images(root: Path) -> pd.DataFrame:
    """Every T1w / FDG PET NIfTI under ``root`` (one row each, :data:`CANDIDATE_COLUMNS`).

    ``path`` is the path as found (links not resolved); entities absent from a name are None.
    """
    if not root.is_dir():
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    layout = ancpbids.BIDSLayout(str(root))
    found = layout.get(suffix=["T1w", "pet"], extension=[".nii", ".nii.gz"], return_type="object")
    rows = [row for artifact in found if (row := _candidate(artifact)) is not None]
    frame = pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)
    return frame.sort_values(["participant_id", "modality", "path"], ignore_index=True)


def _candidate(artifact: Any) -> dict[str, Any] | None:
    parts = Path(str(artifact.get_relative_path())).parts
    entities = dict(artifact.get_entities())
    if len(parts) == 3:
        subject, session_folder, datatype = parts[0], None, parts[1]
    elif len(parts) == 4:
        subject, session_folder, datatype = parts[:3]
    else:
        return None
    session = entities.get("ses")
    if subject != f"sub-{entities.get('sub')}" or session_folder != (
        None if session is None else f"ses-{session}"
    ):
        return None
    kind = (datatype, artifact.suffix)
    modality = next((m for m, expected in _MODALITIES.items() if kind == expected), None)
    if modality is None or (modality == "PET" and str(entities.get("trc", "")).upper() != "FDG"):
        return None
    run = entities.get("run")
    return {
        "participant_id": subject,
        "modality": modality,
        "path": str(artifact.get_absolute_path()),
        "session": None if session is None else str(session),
        "acquisition": _label(entities.get("acq")),
        "reconstruction": _label(entities.get("rec")),
        "run": None if run is None else int(run),
    }


def _label(value: object) -> str | None:
    return None if value is None else str(value)


def select_images(
    root: Path, candidates: pd.DataFrame, ids: list[object], rule: ImageSelection
) -> pd.DataFrame:
    """One row per id (:data:`IMAGE_COLUMNS`): the chosen file or why there is none.

    Ids that are not ``sub-<alnum>`` never get a path (they cannot name a folder safely).
    """
    by_subject = dict(tuple(candidates.groupby("participant_id"))) if len(candidates) else {}
    rows = []
    for pid in ids:
        row: dict[str, Any] = dict.fromkeys(IMAGE_COLUMNS)
        row.update(participant_id=pid, subject_dir_exists=False)
        if is_valid_participant_id(pid):
            row["subject_dir_exists"] = (root / str(pid)).is_dir()
            mine = by_subject.get(pid, candidates.iloc[0:0])
            for modality in _MODALITIES:
                key = modality.lower()
                path, reason, detail = _choose(root, mine[mine["modality"] == modality], rule)
                row[f"{key}_path"] = path
                row[f"{key}_reason"] = None if reason is None else str(reason)
                row[f"{key}_detail"] = None if detail is None else f"{modality}: {detail}"
        rows.append(row)
    return pd.DataFrame(rows, columns=IMAGE_COLUMNS)


_Choice = tuple[str | None, Reason | None, str | None]


def _choose(root: Path, files: pd.DataFrame, rule: ImageSelection) -> _Choice:
    """(resolved path, None, None) for a usable choice, else (None, reason, detail)."""
    if files.empty:
        return None, None, None
    kept = _apply_rule(files, rule)
    if kept.empty:
        found = ", ".join(Path(p).name for p in files["path"])
        return None, Reason.MISSING_MODALITY, f"no file matches the selection rule ({found})"
    if len(kept) > 1:
        names = ", ".join(Path(p).name for p in kept["path"])
        return (
            None,
            Reason.AMBIGUOUS_IMAGE,
            f"{len(kept)} files match ({names}); keep one, or choose with "
            "cohort_reading.image_selection (session, acquisition, reconstruction, run)",
        )
    return _resolve(root, Path(str(kept["path"].iloc[0])), rule.allow_outside_root)


def _apply_rule(files: pd.DataFrame, rule: ImageSelection) -> pd.DataFrame:
    labels = (("acquisition", rule.acquisition), ("reconstruction", rule.reconstruction))
    for column, wanted in labels:
        if wanted is not None:
            files = files[files[column] == wanted]
    files = _pick_session(files, rule.session)
    if rule.run == "latest" and files["run"].notna().any():
        files = files[files["run"] == files["run"].max()]
    elif isinstance(rule.run, int):
        files = files[files["run"] == rule.run]
    return files


def _pick_session(files: pd.DataFrame, session: str | list[str] | None) -> pd.DataFrame:
    if session is None or files.empty:
        return files
    if session == "latest":
        labels = files["session"].dropna()
        if labels.empty:
            return files
        return files[files["session"] == max(labels, key=_natural_key)]
    for label in [session] if isinstance(session, str) else session:
        if (files["session"] == label).any():
            return files[files["session"] == label]
    return files.iloc[0:0]


def _natural_key(label: str) -> tuple[tuple[int, object], ...]:
    return tuple((0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", label) if t)


def _resolve(root: Path, path: Path, allow_outside_root: bool) -> _Choice:
    """Follow links: outside the cohort folder is a reason unless allowed; dangling is one too.

    Links inside the folder (git-annex / DataLad keep the bytes under ``.git/annex``) are fine.
    """
    real = path.resolve()
    if not real.is_relative_to(root.resolve()) and not allow_outside_root:
        return (
            None,
            Reason.OUTSIDE_COHORT,
            f"{path.name} links to a file outside the cohort folder; copy the file into the "
            "folder, or set cohort_reading.image_selection.allow_outside_root: true",
        )
    if not real.is_file():
        return None, Reason.UNREADABLE_IMAGE, f"{path.name} is a link to a file that does not exist"
    return str(real), None, None


def unlisted_subjects(root: Path, ids: list[object]) -> list[str]:
    """``sub-*`` folders of ``root`` that have no row in ``participants.tsv`` (sorted)."""
    listed = {str(pid) for pid in ids}
    folders = {p.name for p in root.glob("sub-*") if p.is_dir()}
    return sorted(folders - listed)
