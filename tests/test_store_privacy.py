"""The MLflow store of a tiny real run holds no participant ids, clinical rows or image paths.

Scanned: every text cell of every table of ``mlflow.db`` (params, tags, metric names, run
names, logged and registered models, for every run including nested fold and trial runs),
and the bytes of every artifact file (run artifacts and logged models, pickles included), plus
the registered champion's files as a user downloads them. MLflow's own bookkeeping of where
artifacts live (``artifact_uri`` and its siblings, the ``project_path`` tag) names the
project folder, never the cohort: those columns are the only ones the path check skips.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

COHORT = Path("data/01_raw/cohort")
# Columns in which MLflow records artifact locations under the project (not the cohort).
LOCATION_COLUMNS = {"artifact_uri", "artifact_location", "storage_location", "source"}


def store_cells(db: Path) -> Iterator[tuple[str, str, str]]:
    """``(table, column, text)`` for every non-empty cell of every table of an MLflow db."""
    with sqlite3.connect(db) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = con.execute(f'SELECT * FROM "{table}"')  # noqa: S608 (names from sqlite)
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                    yield table, column, str(text)


def artifact_files(project: Path) -> list[Path]:
    """Every file under the project's artifact root (runs and logged models)."""
    return [p for p in (project / "mlruns").rglob("*") if p.is_file()]


def leaks(project: Path, needles: list[str], *, skip_locations: bool = False) -> list[str]:
    """Where any of ``needles`` occurs in the store of ``project`` (empty list = none)."""
    found = []
    for table, column, text in store_cells(project / "mlflow.db"):
        if skip_locations and column in LOCATION_COLUMNS:
            continue
        found += [f"mlflow.db {table}.{column}: {n!r}" for n in needles if n in text]
    for path in artifact_files(project):
        blob = path.read_bytes()
        if skip_locations and path.name == "MLmodel":  # its artifact_path is a location
            blob = b"\n".join(x for x in blob.splitlines() if not x.startswith(b"artifact_path"))
        found += [f"{path.relative_to(project)}: {n!r}" for n in needles if n.encode() in blob]
    return found


@pytest.fixture(scope="module")
def participants(smoke_run: Path) -> pd.DataFrame:
    return pd.read_csv(smoke_run / COHORT / "participants.tsv", sep="\t", dtype=str)


def test_the_store_is_not_empty(smoke_run: Path) -> None:
    """The scan sees what the run logged (otherwise the other tests could not fail)."""
    cells = list(store_cells(smoke_run / "mlflow.db"))
    assert any(t == "params" for t, _, _ in cells)
    assert any(t == "metrics" and "harrell_c" in x for t, _, x in cells)
    assert any(t == "registered_model_aliases" and x == "champion" for t, _, x in cells)
    names = {p.name for p in artifact_files(smoke_run)}
    assert {"comparison_table.csv", "python_model.pkl", "MLmodel"} <= names
    # The needle search works on this store: the experiment name is found.
    assert leaks(smoke_run, ["tle_kedro"])


def test_no_participant_id_is_tracked(smoke_run: Path, participants: pd.DataFrame) -> None:
    ids = list(participants["participant_id"])
    assert ids and all(pid.startswith("sub-") for pid in ids)
    assert leaks(smoke_run, [*ids, "sub-"]) == []


def test_no_clinical_row_is_tracked(smoke_run: Path, participants: pd.DataFrame) -> None:
    rows = participants.fillna("n/a").astype(str)
    clinical = rows.drop(columns="participant_id")
    needles = [sep.join(r) for r in clinical.itertuples(index=False) for sep in ("\t", ",")]
    assert leaks(smoke_run, needles) == []


def test_no_cohort_or_image_path_is_tracked(smoke_run: Path, participants: pd.DataFrame) -> None:
    cohort = smoke_run / COHORT
    needles = [str(cohort), str(COHORT), "_T1w.nii", "_pet.nii"]
    assert leaks(smoke_run, needles, skip_locations=True) == []


def test_the_registered_champion_holds_no_participant_id(
    smoke_run: Path, participants: pd.DataFrame, tmp_path: Path
) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{smoke_run / 'mlflow.db'}")
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri="models:/tle_recurrence@champion", dst_path=str(tmp_path)
        )
    finally:
        mlflow.set_tracking_uri(None)
    files = [p for p in Path(local).rglob("*") if p.is_file()]
    assert any(p.name == "python_model.pkl" for p in files)
    needles = [*participants["participant_id"], str(smoke_run / COHORT)]
    found = [f"{p.name}: {n}" for p in files for n in needles if n.encode() in p.read_bytes()]
    assert found == []
