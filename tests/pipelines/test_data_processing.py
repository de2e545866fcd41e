"""The data_processing pipeline on a tiny factory cohort, through the real catalog entries."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from tests.cohort_factory import tiny_params, write_test_cohort
from tle_kedro.data.cohort import CohortError
from tle_kedro.data.exclusions import EXCLUSION_COLUMNS
from tle_kedro.pipelines.data_processing import create_pipeline

CONF = Path(__file__).resolve().parents[2] / "conf" / "base"


def _catalog(tmp_path: Path, cohort: Path) -> DataCatalog:
    """The real data_processing catalog under ``tmp_path``, reading ``cohort``."""
    # the default data root, as Kedro resolves it without --params=data_root=...
    text = (CONF / "catalog_data_processing.yml").read_text()
    config = yaml.safe_load(text.replace("${runtime_params:data_root,data}", "data"))
    for entry in config.values():
        key = "filepath" if "filepath" in entry else "path"
        entry[key] = str(tmp_path / entry[key])
    config["raw_cohort"] = {
        "type": "tle_kedro.datasets.bids.BIDSCohortDataset",
        "path": str(cohort),
    }
    catalog = DataCatalog.from_config(config)
    params = tiny_params(tmp_path / "cache").model_dump(mode="json")
    catalog["params:preprocessing"] = params
    catalog["params:cohort_reading"] = {"bids_validator": False}
    return catalog


def test_parameters_file_is_valid_and_matches_the_defaults() -> None:
    from tle_kedro.data.discovery import CohortReading
    from tle_kedro.transforms.params import PreprocessingParams, parse_preprocessing_params

    params = yaml.safe_load((CONF / "parameters_data_processing.yml").read_text())
    parsed = parse_preprocessing_params(params["preprocessing"])
    assert parsed == PreprocessingParams()
    assert CohortReading.model_validate(params["cohort_reading"]) == CohortReading()


def test_pipeline_declares_its_contract() -> None:
    pipeline = create_pipeline()
    assert pipeline.inputs() == {
        "raw_cohort",
        "preprocess_cache",  # where the per-subject cache lives (a catalog location)
        "params:preprocessing",
        "params:cohort_reading",
    }
    persisted = {"clinical_validated", "exclusions", "image_tensors", "registration_qc"}
    assert persisted <= pipeline.all_outputs()
    catalog = set(yaml.safe_load((CONF / "catalog_data_processing.yml").read_text()))
    assert catalog == persisted | {"preprocess_cache"}


def test_pipeline_writes_table_report_and_tensors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cohort = tmp_path / "cohort"
    write_test_cohort(
        cohort,
        6,
        table_edits={1: {"time_months": "0"}},
        extra_columns={"scanner": "X"},
        image_defects={2: {"pet": "truncated"}, 3: {"t1": "missing", "pet": "truncated"}},
    )
    catalog = _catalog(tmp_path, cohort)
    with caplog.at_level(logging.INFO):
        SequentialRunner().run(create_pipeline(), catalog)

    table = pd.read_parquet(tmp_path / "data/02_intermediate/clinical_validated.parquet")
    assert list(table["participant_id"]) == ["sub-001", "sub-003", "sub-005", "sub-006"]
    assert table["has_pet"].tolist() == [True, False, True, True]
    assert table["recurrence"].dtype == np.int64

    report = pd.read_csv(tmp_path / "data/02_intermediate/exclusions.csv", keep_default_na=False)
    assert list(report.columns) == EXCLUSION_COLUMNS
    assert set(zip(report["participant_id"], report["reason"], strict=True)) == {
        ("", "unknown_column"),
        ("sub-002", "non_positive_time"),
        ("sub-003", "unreadable_image"),
        ("sub-004", "missing_modality"),
        ("sub-004", "unreadable_image"),
        ("sub-004", "no_images"),
    }

    tensors = catalog.load("image_tensors")
    assert tensors.volumes.shape == (4, 2, 16, 12, 8)
    assert list(tensors.index["participant_id"]) == list(table["participant_id"])
    assert "6 read, 4 used, 2 excluded, 1 with a missing modality" in caplog.text
    qc = pd.read_csv(tmp_path / "data/02_intermediate/registration_qc.csv")
    assert list(qc["participant_id"]) == ["sub-001", "sub-003", "sub-004", "sub-005", "sub-006"]
    assert (qc.loc[qc["has_t1"], "t1_ncc"] > 0.8).all()
    assert (qc.loc[qc["has_pet"], "pet_ncc"] > 0.8).all()
    assert qc.set_index("participant_id").loc["sub-004", ["t1_ncc", "pet_ncc"]].isna().all()


def test_missing_required_column_stops_the_run(tmp_path: Path) -> None:
    cohort = tmp_path / "cohort"
    write_test_cohort(cohort, 2, drop_columns=["operative_side"])
    with pytest.raises(CohortError, match="'operative_side'"):
        SequentialRunner().run(create_pipeline(), _catalog(tmp_path, cohort))


def test_selection_rule_unlisted_folders_and_validator_summary_reach_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sessions chosen by params:cohort_reading; folder-level rows come first in the report."""
    cohort = tmp_path / "cohort"
    write_test_cohort(cohort, 3)
    for pid in ("sub-001", "sub-002", "sub-003"):  # move every image into ses-preop/
        for old in list((cohort / pid).rglob("*.nii.gz")):
            new = (
                cohort
                / pid
                / "ses-preop"
                / old.parent.name
                / old.name.replace(f"{pid}_", f"{pid}_ses-preop_")
            )
            new.parent.mkdir(parents=True, exist_ok=True)
            old.rename(new)
    copy = cohort / "sub-001" / "ses-postop" / "anat" / "sub-001_ses-postop_T1w.nii.gz"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(next((cohort / "sub-001").rglob("*_T1w.nii.gz")).read_bytes())
    (cohort / "sub-999" / "anat").mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "bids-validator"
    fake.write_text('#!/bin/sh\necho \'{"issues": {"errors": [], "warnings": []}}\'\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    catalog = _catalog(tmp_path, cohort)
    catalog["params:cohort_reading"] = {"image_selection": {"session": "preop"}}
    SequentialRunner().run(create_pipeline(), catalog)
    report = pd.read_csv(tmp_path / "data/02_intermediate/exclusions.csv", keep_default_na=False)
    assert list(zip(report["participant_id"], report["reason"], strict=True)) == [
        ("sub-999", "unlisted_subject"),
        ("", "bids_validator"),
    ]
    assert report["detail"].iloc[1] == "bids-validator: 0 errors, 0 warnings"
    table = pd.read_parquet(tmp_path / "data/02_intermediate/clinical_validated.parquet")
    assert table[["has_t1", "has_pet"]].all(axis=None) and len(table) == 3
