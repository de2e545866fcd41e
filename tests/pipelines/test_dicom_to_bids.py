"""DICOM end to end: dicom_to_bids, then data_processing on what it wrote (real catalogs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from tests.cohort_factory import tiny_params, write_test_cohort
from tests.dicom_factory import write_series
from tle_kedro.data.dicom import DicomToBidsParams
from tle_kedro.pipelines.data_processing import create_pipeline as data_processing
from tle_kedro.pipelines.dicom_to_bids import create_pipeline as dicom_to_bids

CONF = Path(__file__).resolve().parents[2] / "conf" / "base"


def _catalog(tmp_path: Path, name: str, overrides: dict[str, str]) -> DataCatalog:
    """The real catalog file under ``tmp_path`` (``overrides``: dataset -> path), plus the
    cohort that data_processing reads as ``raw_cohort``."""
    # the default data root, as Kedro resolves it without --params=data_root=...
    text = (CONF / name).read_text().replace("${runtime_params:data_root,data}", "data")
    config = yaml.safe_load(text)
    for dataset, entry in config.items():
        key = "filepath" if "filepath" in entry else "path"
        entry[key] = overrides.get(dataset, str(tmp_path / entry[key]))
    config["raw_cohort"] = {
        "type": "tle_kedro.datasets.bids.BIDSCohortDataset",
        "path": str(tmp_path / "cohort"),
    }
    return DataCatalog.from_config(config)


def test_parameters_file_is_valid() -> None:
    params = yaml.safe_load((CONF / "parameters_dicom_to_bids.yml").read_text())
    parsed = DicomToBidsParams.model_validate(params["dicom_to_bids"])
    assert {rule.modality for rule in parsed.series} == {"T1", "PET"}


def test_a_dicom_export_becomes_a_cohort_that_data_processing_uses(tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_test_cohort(source, 3)
    export, cohort = tmp_path / "export", tmp_path / "cohort"
    mapping = {}
    for i, pid in enumerate(["sub-001", "sub-002", "sub-003"]):
        patient = f"{1000 + i}"
        mapping[patient] = pid
        write_series(
            source / pid / "anat" / f"{pid}_T1w.nii.gz",
            export / patient / "a",
            patient,
            "t1_mprage",
            "MR",
        )
        write_series(
            source / pid / "pet" / f"{pid}_trc-FDG_pet.nii.gz",
            export / patient / "b",
            patient,
            "FDG brain",
            "PT",
            2,
        )
    cohort.mkdir()
    (cohort / "participants.tsv").write_bytes((source / "participants.tsv").read_bytes())

    catalog = _catalog(
        tmp_path,
        "catalog_dicom_to_bids.yml",
        {"dicom_export": str(export), "cohort_images_from_dicom": str(cohort)},
    )
    params = yaml.safe_load((CONF / "parameters_dicom_to_bids.yml").read_text())["dicom_to_bids"]
    catalog["params:dicom_to_bids"] = {**params, "participants": mapping}
    SequentialRunner().run(dicom_to_bids(), catalog)
    report = pd.read_csv(tmp_path / "data/01_raw/dicom_conversion.csv")
    assert list(report["status"]) == ["converted"] * 6

    catalog = _catalog(tmp_path, "catalog_data_processing.yml", {})
    catalog["params:preprocessing"] = tiny_params().model_dump(mode="json")
    catalog["params:cohort_reading"] = {"bids_validator": False}
    SequentialRunner().run(data_processing(), catalog)

    table = pd.read_parquet(tmp_path / "data/02_intermediate/clinical_validated.parquet")
    assert list(table["participant_id"]) == ["sub-001", "sub-002", "sub-003"]
    assert table[["has_t1", "has_pet"]].all(axis=None)
    exclusions = pd.read_csv(tmp_path / "data/02_intermediate/exclusions.csv")
    assert exclusions.empty
    qc = pd.read_csv(tmp_path / "data/02_intermediate/registration_qc.csv")
    assert (qc[["t1_ncc", "pet_ncc"]] > 0.8).all(axis=None)
    # the operated side's temporal hypometabolism is still on that side (grid axis 0: L -> R)
    pet = catalog.load("image_tensors").volumes[:, 1]
    half = pet.shape[1] // 2
    left_over_right = pet[:, :half].mean(axis=(1, 2, 3)) / pet[:, half:].mean(axis=(1, 2, 3))
    sides = list(table["operative_side"])
    assert sides == ["L", "R", "L"]
    assert np.all((left_over_right < 1) == (np.array(sides) == "L"))
