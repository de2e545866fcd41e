"""DICOM in: series written from NIfTI (pydicom) come back through dcm2niix unchanged."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.cohort_factory import write_test_cohort
from tests.dicom_factory import write_series
from tle_kedro.data.dicom import DicomToBidsParams, convert_cohort, scan_series

RULES = [{"pattern": "mprage|t1", "modality": "T1"}, {"pattern": "fdg", "modality": "PET"}]


def _params(**overrides: object) -> DicomToBidsParams:
    values: dict[str, object] = {
        "participant_from": "PatientID",
        "participants": {"PAT1": "sub-001", "PAT2": "sub-002"},
        "series": RULES,
        "timeout_s": 60,
    }
    values.update(overrides)
    return DicomToBidsParams.model_validate(values)


def _left_right_ratio(image: nib.Nifti1Image) -> float:
    """Mean intensity at world x < -20 mm over x > 20 mm (RAS: x < 0 is the left)."""
    data = np.asarray(image.get_fdata())
    ijk = np.indices(data.shape).reshape(3, -1)
    x = (image.affine[:3, :3] @ ijk + image.affine[:3, 3:4])[0].reshape(data.shape)
    return float(data[x < -20].mean() / data[x > 20].mean())


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two patients (left and right surgery; patient 2's PET stored right-to-left) as DICOM."""
    tmp = tmp_path_factory.mktemp("dicom")
    cohort = tmp / "cohort"
    write_test_cohort(cohort, 2, image_defects={1: {"pet": "flip_storage"}})
    for i, pid in enumerate(("sub-001", "sub-002")):
        patient = f"PAT{i + 1}"
        t1 = cohort / pid / "anat" / f"{pid}_T1w.nii.gz"
        pet = cohort / pid / "pet" / f"{pid}_trc-FDG_pet.nii.gz"
        write_series(t1, tmp / "export" / patient / "s1", patient, "T1 MPRAGE sag", "MR", 1)
        write_series(pet, tmp / "export" / patient / "s2", patient, "PET FDG AC", "PT", 2)
        write_series(t1, tmp / "export" / patient / "s3", patient, "localizer", "MR", 3)
    return tmp / "export", cohort


@pytest.fixture(scope="module")
def converted(export: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):
    files, report = convert_cohort(export[0], _params())
    out = tmp_path_factory.mktemp("bids")
    for relative, blob in files.items():
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_bytes(blob)
    return out, files, report


def test_series_are_grouped_with_their_headers(export: tuple[Path, Path]) -> None:
    series, files = scan_series(export[0])
    assert len(series) == 6 and set(series["patient_id"]) == {"PAT1", "PAT2"}
    assert sorted(series["dicom_modality"]) == ["MR"] * 4 + ["PT"] * 2
    assert all(
        len(files[uid]) == n for uid, n in zip(series["series_uid"], series["n_files"], strict=True)
    )


def test_mapped_series_are_named_as_the_contract_wants(converted) -> None:
    _, files, report = converted
    assert sorted(p for p in files if p.endswith(".nii.gz")) == [
        "sub-001/anat/sub-001_T1w.nii.gz",
        "sub-001/pet/sub-001_trc-FDG_pet.nii.gz",
        "sub-002/anat/sub-002_T1w.nii.gz",
        "sub-002/pet/sub-002_trc-FDG_pet.nii.gz",
    ]
    assert "sub-001/anat/sub-001_T1w.json" in files  # dcm2niix's BIDS sidecar
    assert sorted(report["status"]) == ["converted"] * 4 + ["skipped"] * 2
    skipped = report[report["status"] == "skipped"]
    assert set(skipped["series_description"]) == {"localizer"}
    assert set(skipped["detail"]) == {"no series rule matches"}


@pytest.mark.parametrize("pid", ["sub-001", "sub-002"])
@pytest.mark.parametrize("kind", ["anat/{pid}_T1w", "pet/{pid}_trc-FDG_pet"])
def test_voxels_orientation_and_left_right_asymmetry_survive(
    export: tuple[Path, Path], converted, pid: str, kind: str
) -> None:
    relative = f"{pid}/{kind.format(pid=pid)}.nii.gz"
    before = nib.load(str(export[1] / relative))
    after = nib.load(str(converted[0] / relative))
    assert after.header["sform_code"] > 0 or after.header["qform_code"] > 0
    a, b = nib.as_closest_canonical(before), nib.as_closest_canonical(after)
    np.testing.assert_allclose(b.affine, a.affine, atol=1e-3)
    original = a.get_fdata()
    np.testing.assert_allclose(b.get_fdata(), original, atol=np.abs(original).max() / 25000)
    ratio_before, ratio_after = _left_right_ratio(before), _left_right_ratio(after)
    assert ratio_after == pytest.approx(ratio_before, rel=1e-3)


def test_the_pet_asymmetry_points_to_the_operated_side(converted) -> None:
    """sub-001 was operated on the left, sub-002 on the right (factory hypometabolism)."""
    root = converted[0]
    left = _left_right_ratio(nib.load(str(root / "sub-001/pet/sub-001_trc-FDG_pet.nii.gz")))
    right = _left_right_ratio(nib.load(str(root / "sub-002/pet/sub-002_trc-FDG_pet.nii.gz")))
    assert left < 1.0 < right


def test_unmapped_patients_are_reported_and_not_written(export: tuple[Path, Path]) -> None:
    files, report = convert_cohort(export[0], _params(participants={"PAT2": "sub-002"}))
    assert all(p.startswith("sub-002/") for p in files)
    unmapped = report[report["patient_id"] == "PAT1"]
    assert set(unmapped["status"]) == {"skipped"}
    assert set(unmapped["detail"]) == {"PatientID 'PAT1' not mapped"}


def test_two_series_of_one_modality_become_runs(export: tuple[Path, Path]) -> None:
    rules = [{"pattern": "mprage|localizer", "modality": "T1"}]
    files, _ = convert_cohort(export[0], _params(series=rules, participants={"PAT1": "sub-001"}))
    assert sorted(p for p in files if p.endswith(".nii.gz")) == [
        "sub-001/anat/sub-001_run-1_T1w.nii.gz",
        "sub-001/anat/sub-001_run-2_T1w.nii.gz",
    ]


def test_folder_mapping_and_a_modality_that_disagrees_with_the_rule(
    export: tuple[Path, Path],
) -> None:
    rules = [{"pattern": "fdg|mprage", "modality": "PET"}]  # the MR series is not a PET
    files, report = convert_cohort(
        export[0],
        _params(participant_from="folder", participants={"PAT1": "sub-001"}, series=rules),
    )
    assert list(files) == [
        "sub-001/pet/sub-001_trc-FDG_pet.nii.gz",
        "sub-001/pet/sub-001_trc-FDG_pet.json",
    ] or set(files) == {
        "sub-001/pet/sub-001_trc-FDG_pet.nii.gz",
        "sub-001/pet/sub-001_trc-FDG_pet.json",
    }
    assert "no series rule matches" in set(report["detail"])


def test_an_invalid_participant_id_in_the_mapping_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="sub-"):
        _params(participants={"PAT1": "patient one"})
