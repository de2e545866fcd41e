"""DICOM series → the BIDS layout of the input contract, with ``dcm2niix`` and a mapping table.

Most teams start from PACS exports: a folder of DICOM files, one or more series per patient.
:func:`scan_series` reads every file's header (pydicom, no pixels) and groups files by
``SeriesInstanceUID``; :func:`convert_cohort` maps each series to a participant (its DICOM
``PatientID``, or its top folder under the export, through ``participants``) and to a modality
(the first ``series`` rule whose pattern matches ``SeriesDescription`` and whose DICOM modality
agrees), converts it with ``dcm2niix`` (the converter the BIDS community uses; its PyPI wheel
ships the binary, so no system install) and names it as the contract wants. Every series not
converted is listed with why. Two series of one participant and modality become ``run-1``,
``run-2`` (in ``SeriesNumber`` order): ``data_processing``'s selection rule then decides, and
without one they are ``ambiguous_image``.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
import pydicom
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tle_kedro.data.columns import is_valid_participant_id

logger = logging.getLogger(__name__)

SERIES_COLUMNS: list[str] = [
    "series_uid",
    "patient_id",
    "folder",
    "series_description",
    "series_number",
    "dicom_modality",
    "n_files",
]
REPORT_COLUMNS: list[str] = [
    "participant_id",
    "patient_id",
    "folder",
    "series_description",
    "status",
    "detail",
]
_TARGETS = {
    "T1": ("anat", "T1w", "MR"),
    "PET": ("pet", "trc-FDG_pet", "PT"),
}


class SeriesRule(BaseModel):
    """A ``SeriesDescription`` pattern (regular expression, case-insensitive) → a modality."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: str
    modality: Literal["T1", "PET"]

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(
                f"series pattern {pattern!r} is not a regular expression: {err}"
            ) from err
        return pattern


class DicomToBidsParams(BaseModel):
    """``params:dicom_to_bids`` (conf/base/parameters_dicom_to_bids.yml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    participant_from: Literal["PatientID", "folder"]
    participants: dict[str, str]
    series: Annotated[list[SeriesRule], Field(min_length=1)]
    timeout_s: Annotated[float, Field(gt=0)]

    @field_validator("participants")
    @classmethod
    def _valid_ids(cls, participants: dict[str, str]) -> dict[str, str]:
        bad = [pid for pid in participants.values() if not is_valid_participant_id(pid)]
        if bad:
            raise ValueError(f"participant ids must match ^sub-[A-Za-z0-9]+$, got {bad}")
        return participants


def scan_series(root: Path) -> tuple[pd.DataFrame, dict[str, list[Path]]]:
    """Every DICOM series under ``root`` (files that are not DICOM are ignored).

    Returns:
        ``(series, files)``: one row per series (:data:`SERIES_COLUMNS`), and each series'
        files by ``series_uid``.
    """
    rows: dict[str, dict[str, object]] = {}
    files: dict[str, list[Path]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError):
            continue
        uid = str(header.get("SeriesInstanceUID", ""))
        if not uid:
            continue
        files.setdefault(uid, []).append(path)
        rows.setdefault(
            uid,
            {
                "series_uid": uid,
                "patient_id": str(header.get("PatientID", "")),
                "folder": path.relative_to(root).parts[0],
                "series_description": str(header.get("SeriesDescription", "")),
                "series_number": int(header.get("SeriesNumber", 0) or 0),
                "dicom_modality": str(header.get("Modality", "")),
            },
        )
    frame = pd.DataFrame(
        [{**row, "n_files": len(files[uid])} for uid, row in rows.items()], columns=SERIES_COLUMNS
    )
    return frame.sort_values(["patient_id", "series_number"], ignore_index=True), files


def convert_cohort(root: Path, params: DicomToBidsParams) -> tuple[dict[str, bytes], pd.DataFrame]:
    """Convert every mapped series under ``root``.

    Returns:
        ``(files, report)``: BIDS-relative path → bytes (``.nii.gz`` and dcm2niix's ``.json``
        sidecar), and one report row per series (:data:`REPORT_COLUMNS`).
    """
    series, files = scan_series(root)
    report: list[dict[str, object]] = []
    planned: list[tuple[str, str, pd.Series]] = []
    for _, s in series.iterrows():
        key = s["patient_id"] if params.participant_from == "PatientID" else s["folder"]
        pid = params.participants.get(str(key))
        modality = _modality(s, params.series)
        if pid is None:
            report.append(_row(s, None, "skipped", f"{params.participant_from} {key!r} not mapped"))
        elif modality is None:
            report.append(_row(s, pid, "skipped", "no series rule matches"))
        else:
            planned.append((pid, modality, s))
    out: dict[str, bytes] = {}
    counts = pd.Series([(p, m) for p, m, _ in planned]).value_counts() if planned else {}
    runs: dict[tuple[str, str], int] = {}
    for pid, modality, s in planned:
        runs[(pid, modality)] = runs.get((pid, modality), 0) + 1
        run = runs[(pid, modality)] if counts[(pid, modality)] > 1 else None
        stem = _bids_stem(pid, modality, run)
        try:
            nifti, sidecar = convert_series(files[s["series_uid"]], params.timeout_s)
        except ConversionError as err:
            report.append(_row(s, pid, "failed", str(err)))
            continue
        out[f"{stem}.nii.gz"] = nifti
        if sidecar is not None:
            out[f"{stem}.json"] = sidecar
        report.append(_row(s, pid, "converted", f"{stem}.nii.gz"))
    return out, pd.DataFrame(report, columns=REPORT_COLUMNS)


def _modality(series: pd.Series, rules: list[SeriesRule]) -> str | None:
    for rule in rules:
        if re.search(rule.pattern, str(series["series_description"]), flags=re.IGNORECASE):
            expected = _TARGETS[rule.modality][2]
            return rule.modality if series["dicom_modality"] == expected else None
    return None


def _bids_stem(pid: str, modality: str, run: int | None) -> str:
    folder, suffix, _ = _TARGETS[modality]
    run_entity = f"_run-{run}" if run is not None else ""
    if modality == "PET":  # BIDS entity order: sub, trc, run, then the suffix
        return f"{pid}/{folder}/{pid}_trc-FDG{run_entity}_pet"
    return f"{pid}/{folder}/{pid}{run_entity}_{suffix}"


def _row(series: pd.Series, pid: str | None, status: str, detail: str) -> dict[str, object]:
    return {
        "participant_id": pid or "",
        "patient_id": series["patient_id"],
        "folder": series["folder"],
        "series_description": series["series_description"],
        "status": status,
        "detail": detail,
    }


class ConversionError(RuntimeError):
    """dcm2niix failed or did not give exactly one image for a series."""


def dcm2niix_executable() -> str:
    """The ``dcm2niix`` binary (the PyPI wheel's, installed beside the interpreter)."""
    # The venv's scripts folder first: `.venv/bin/kedro` runs without the venv on PATH.
    found = shutil.which("dcm2niix", path=sysconfig.get_path("scripts")) or shutil.which("dcm2niix")
    if found is None:
        raise ConversionError("dcm2niix not found; `make setup` installs its PyPI wheel")
    return found


def convert_series(paths: list[Path], timeout_s: float) -> tuple[bytes, bytes | None]:
    """One series' files → (``.nii.gz`` bytes, ``.json`` sidecar bytes or None).

    The files are linked into a private folder first, so dcm2niix sees this series only.
    """
    with tempfile.TemporaryDirectory(prefix="dcm2niix-") as tmp:
        source, target = Path(tmp, "in"), Path(tmp, "out")
        source.mkdir()
        target.mkdir()
        for i, path in enumerate(paths):
            (source / f"{i:05d}.dcm").symlink_to(path.resolve())
        command = [dcm2niix_executable(), "-z", "y", "-b", "y", "-f", "series"]
        command += ["-o", str(target), str(source)]
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as err:
            raise ConversionError(f"dcm2niix did not finish within {timeout_s:g} s") from err
        images = sorted(target.glob("*.nii.gz"))
        if proc.returncode != 0 or len(images) != 1:
            last = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or [""]
            raise ConversionError(
                f"dcm2niix gave {len(images)} image(s) (exit {proc.returncode}): {last[0]}"
            )
        sidecar = images[0].with_name(images[0].name.removesuffix(".nii.gz") + ".json")
        return images[0].read_bytes(), sidecar.read_bytes() if sidecar.is_file() else None
