"""A cohort nobody cleaned, through the real ``kedro run --pipelines=data_processing``.

End-to-end version of the unit tests in ``tests/data/`` and ``tests/transforms/``: one run on
a 15-patient factory cohort carrying every row- and image-level defect of issue 6 §4 and the
hospital-export defects of issue 17 (a latin-1 table, side and Engel spellings, an image
without orientation, a 2 MiB file claiming 2048³ voxels, a subject folder without a row), with
the run's peak memory measured; and two cheap runs on tables that cannot be read at all.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.cohort_factory import write_test_cohort
from tests.conftest import make_project_copy, run_kedro_command
from tests.test_store_privacy import leaks

pytestmark = pytest.mark.slow

# 8-mm factory images: one registration level at 8 mm is enough (as tiny_params in the unit tests).
FAST_PARAMS = (
    "preprocessing.registration.resolution_mm=8.0,"
    "preprocessing.registration.shrink_factors=[1],"
    "preprocessing.registration.smoothing_sigmas_voxels=[0.0],"
    "preprocessing.progress_bar=false"
)
ESCAPING_ID = "sub-006/../../sub-001"
# Patient-level exclusions: (participant_id, reason) -> how many rows of participants.tsv.
EXCLUDED = {
    ("sub-005", "duplicate_id"): 2,
    (ESCAPING_ID, "invalid_id"): 1,
    ("sub-007", "non_positive_time"): 1,
    ("sub-008", "outcome_conflict"): 1,
    ("sub-009", "no_images"): 1,
}
# Table-level rows: (participant_id, reason). sub-006's row has the escaping id, so its
# folder has no row either.
FOLDER_ROWS = {
    ("", "non_utf8_table"),
    ("sub-099", "unlisted_subject"),
    ("sub-006", "unlisted_subject"),
    ("", "unknown_column"),
}
# Recoverable patients: id -> (reason, masked modality).
MASKED = {
    "sub-003": ("missing_modality", "PET"),
    "sub-004": ("unreadable_image", "PET"),
    "sub-010": ("non_finite_voxels", "T1"),
    "sub-011": ("wrong_dimensionality", "PET"),
    "sub-013": ("no_orientation", "T1"),
    "sub-014": ("image_too_large", "PET"),
}
CLEAN = {"sub-001", "sub-002", "sub-012", "sub-015"}  # sub-015: side 'left', Engel 'IIA'
GIB = 1 << 30
# Runs kedro as its only child and prints the child's peak resident memory (bytes) last.
_MEASURED = (
    "import json, resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print(json.dumps({'peak': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}));"
    "sys.exit(code)"
)


def _run(project: Path, cohort: Path, check: bool = True) -> str:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "400")  # Rich would wrap the messages at 80 columns
        proc = run_kedro_command(
            project,
            "run",
            "--env=smoke",
            "--pipelines=data_processing",
            f"--params=cohort_dir={cohort},{FAST_PARAMS}",
            check=check,
            timeout=300,
        )
    if not check:
        assert proc.returncode != 0, "an unusable table must stop the run"
    return proc.stdout + proc.stderr


@dataclass(frozen=True)
class Run:
    """The project copy, the cohort folder it read and the run's console output."""

    project: Path
    cohort: Path
    output: str
    peak_bytes: int


@pytest.fixture(scope="module")
def corrupted_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """data_processing on the corrupted cohort (one real run for the whole module)."""
    tmp = tmp_path_factory.mktemp("corrupted")
    cohort = tmp / "cohort"
    write_test_cohort(
        cohort,
        15,
        extra_columns={"scanner_model": "XR-9 Hôpital Érasme"},
        duplicate_rows=[4],
        table_edits={
            5: {"participant_id": ESCAPING_ID},
            6: {"time_months": "-3"},
            7: {"engel_class": "I", "recurrence": "1"},  # index 7 is Engel II by default
            14: {"operative_side": "left", "engel_class": "IIA", "recurrence": "1"},
        },
        no_subject_dir={8},
        image_defects={
            2: {"pet": "missing"},
            3: {"pet": "truncated"},
            9: {"t1": "nan_slab"},
            10: {"pet": "multi_frame"},
            12: {"t1": "no_orientation"},
            13: {"pet": "huge_header"},
        },
    )
    table = cohort / "participants.tsv"
    table.write_bytes(table.read_text(encoding="utf-8").encode("latin-1"))  # an Excel export
    (cohort / "sub-099" / "anat").mkdir(parents=True)
    project = make_project_copy(tmp)
    output, peak = _run_measured(project, cohort)
    return Run(project, cohort, output, peak)


def _run_measured(project: Path, cohort: Path) -> tuple[str, int]:
    """The data_processing run in a fresh wrapper process, so ru_maxrss is kedro's alone."""
    kedro = Path(sys.executable).with_name("kedro")
    params = f"--params=cohort_dir={cohort},{FAST_PARAMS},cohort_reading.bids_validator=false"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "400")
        proc = subprocess.run(
            [sys.executable, "-c", _MEASURED, str(kedro), "run", "--env=smoke"]
            + ["--pipelines=data_processing", params],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=300,
        )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    return output, int(json.loads(proc.stdout.strip().splitlines()[-1])["peak"])


def _report(project: Path) -> pd.DataFrame:
    return pd.read_csv(
        project / "data/02_intermediate/exclusions.csv", keep_default_na=False, dtype=str
    )


def test_every_excluded_patient_is_reported_with_its_reason(
    corrupted_run: Run,
) -> None:
    project = corrupted_run.project
    report = _report(project)
    used = set(
        pd.read_parquet(project / "data/02_intermediate/clinical_validated.parquet")[
            "participant_id"
        ]
    )
    for (pid, reason), n_rows in EXCLUDED.items():
        rows = report[(report["participant_id"] == pid) & (report["reason"] == reason)]
        assert len(rows) == n_rows, (pid, reason, report.to_string())
        assert pid not in used
    assert (
        "time_months = -3" in report.loc[report["reason"] == "non_positive_time", "detail"].item()
    )
    unknown = report[report["reason"] == "unknown_column"]
    assert list(unknown["participant_id"]) == [""]
    assert "'scanner_model'" in unknown["detail"].item()
    table_level = report[report["reason"].isin({r for _, r in FOLDER_ROWS})]
    assert set(zip(table_level["participant_id"], table_level["reason"], strict=True)) == (
        FOLDER_ROWS
    )


def test_recoverable_patients_are_used_with_the_modality_masked(
    corrupted_run: Run,
) -> None:
    project = corrupted_run.project
    table = pd.read_parquet(project / "data/02_intermediate/clinical_validated.parquet")
    assert set(table["participant_id"]) == CLEAN | set(MASKED)
    assert "scanner_model" not in table.columns
    flags = table.set_index("participant_id")[["has_t1", "has_pet"]]
    report = _report(project)
    for pid, (reason, modality) in MASKED.items():
        assert not flags.loc[pid, f"has_{modality.lower()}"], pid
        other = "has_pet" if modality == "T1" else "has_t1"
        assert flags.loc[pid, other], pid
        rows = report[(report["participant_id"] == pid) & (report["reason"] == reason)]
        assert len(rows) == 1 and rows["detail"].item().startswith(f"{modality}: "), pid
    assert flags.loc[sorted(CLEAN)].all().all()
    spelled = table.set_index("participant_id").loc["sub-015"]
    assert (spelled["operative_side"], spelled["engel_class"], spelled["engel_subclass"]) == (
        "L",
        "II",
        "IIA",
    )
    index = pd.read_parquet(project / "data/03_primary/image_tensors/index.parquet")
    assert list(index["participant_id"]) == sorted(table["participant_id"])


def test_counts_add_up_read_equals_used_plus_excluded(corrupted_run: Run) -> None:
    project = corrupted_run.project
    participants = pd.read_csv(
        corrupted_run.cohort / "participants.tsv", sep="\t", encoding="latin-1"
    )
    used = pd.read_parquet(project / "data/02_intermediate/clinical_validated.parquet")
    n_read, n_used, n_excluded = len(participants), len(used), sum(EXCLUDED.values())
    assert (n_read, n_used, n_excluded) == (16, 10, 6)
    assert n_read == n_used + n_excluded
    summary = f"{n_read} read, {n_used} used, {n_excluded} excluded, 6 with a missing modality"
    assert summary in corrupted_run.output


def test_peak_memory_of_the_run_with_a_file_claiming_2048_cubed_stays_within_2_gib(
    corrupted_run: Run,
) -> None:
    assert corrupted_run.peak_bytes < 2 * GIB, corrupted_run.peak_bytes / GIB


def test_the_cohort_path_given_on_the_command_line_is_not_tracked(corrupted_run: Run) -> None:
    """``--params=cohort_dir=/abs/path`` must not reach MLflow params or tags."""
    found = leaks(corrupted_run.project, [str(corrupted_run.cohort)], skip_locations=True)
    assert found == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("participant_id,sex,operative_side\nsub-001,M,L\n", "is not tab-separated"),
    ],
    ids=["empty", "comma_separated"],
)
def test_an_unusable_table_stops_the_run_with_one_clear_message(
    tmp_path: Path, content: str, message: str
) -> None:
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    table = cohort / "participants.tsv"
    table.write_text(content)
    output = _run(make_project_copy(tmp_path), cohort, check=False)
    last_line = output.strip().splitlines()[-1]
    assert last_line.startswith(f"DatasetError: raw_cohort: {table} {message}"), output[-3000:]
    assert "tab-separated table with a header row" in last_line  # the fix
    # Kedro's catalog wraps the dataset's error once; the library error is not chained again.
    assert len(re.findall(re.escape(f"{table} {message}"), output)) <= 2, output[-3000:]
    assert "No nodes ran" in output
