"""Reading a cohort folder: table, sidecar, image paths, and the errors that stop a run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.cohort_factory import BASE_ROW, write_test_cohort
from tle_kedro.data.cohort import CohortError, read_cohort


def _write_table(root: Path, text: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "participants.tsv").write_text(text)


def _header() -> str:
    return "\t".join(["participant_id", *BASE_ROW])


def test_read_cohort_lists_existing_images_and_reads_strings(tmp_path: Path) -> None:
    cohort = write_test_cohort(tmp_path / "c", 2, image_defects={1: {"pet": "missing"}})
    (tmp_path / "c" / "participants.json").write_text(json.dumps({"sex": {"Levels": {}}}))
    raw = read_cohort(tmp_path / "c")
    assert list(raw.participants["participant_id"]) == cohort.ids
    assert raw.participants["time_months"].map(type).eq(str).all()
    assert raw.sidecar == {"sex": {"Levels": {}}}
    images = raw.images.set_index("participant_id")
    assert images.loc["sub-001", "t1_path"].endswith("sub-001/anat/sub-001_T1w.nii.gz")
    assert images.loc["sub-001", "pet_path"].endswith("sub-001/pet/sub-001_trc-FDG_pet.nii.gz")
    assert images.loc["sub-002", "pet_path"] is None
    assert bool(images.loc["sub-002", "subject_dir_exists"])


def test_na_markers_are_missing_values(tmp_path: Path) -> None:
    values = dict(BASE_ROW, sex="n/a", hypoxia="NA", head_trauma="")
    _write_table(tmp_path, _header() + "\n" + "\t".join(["sub-1", *values.values()]) + "\n")
    table = read_cohort(tmp_path).participants
    assert table[["sex", "hypoxia", "head_trauma"]].isna().all(axis=None)


def test_invalid_ids_never_get_a_path(tmp_path: Path) -> None:
    (tmp_path / "etc" / "anat").mkdir(parents=True)
    (tmp_path / "etc" / "anat" / "etc_T1w.nii.gz").write_bytes(b"x")
    rows = ["\t".join([pid, *BASE_ROW.values()]) for pid in ("../etc", "etc", "sub-9")]
    _write_table(tmp_path, _header() + "\n" + "\n".join(rows) + "\n")
    images = read_cohort(tmp_path).images
    assert images["t1_path"].isna().all()
    assert not images["subject_dir_exists"].any()


def test_missing_subject_folder_is_flagged(tmp_path: Path) -> None:
    write_test_cohort(tmp_path, 2, no_subject_dir={0})
    images = read_cohort(tmp_path).images.set_index("participant_id")
    assert not images.loc["sub-001", "subject_dir_exists"]
    assert images.loc["sub-002", "subject_dir_exists"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("", "is empty"),
        ("\n  \n", "is empty"),
        ("participant_id,sex,operative_side\nsub-1,M,L\n", "not tab-separated"),
        ("participant_id;sex\nsub-1;M\n", "not tab-separated"),
        ("participant_id\tsex\n", "no participant rows"),
        ("participant_id\tsex\nsub-1\tM\tL\textra\n", "not a well-formed table"),
    ],
)
def test_unusable_table_stops_with_one_clear_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    tmp_path.mkdir(exist_ok=True)
    if content is not None:
        _write_table(tmp_path, content)
    with pytest.raises(CohortError, match=message) as err:
        read_cohort(tmp_path)
    assert "participants.tsv" in str(err.value)
    assert "tab-separated" in str(err.value)  # every message says what the file must be


def test_missing_cohort_folder_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(CohortError, match="cohort_dir"):
        read_cohort(tmp_path / "nowhere")


def test_broken_sidecar_is_an_error(tmp_path: Path) -> None:
    write_test_cohort(tmp_path, 1)
    (tmp_path / "participants.json").write_text("{not json")
    with pytest.raises(CohortError, match="participants.json"):
        read_cohort(tmp_path)


def test_uncompressed_nifti_is_found(tmp_path: Path) -> None:
    write_test_cohort(tmp_path, 1)
    gz = tmp_path / "sub-001" / "anat" / "sub-001_T1w.nii.gz"
    gz.rename(gz.with_name("sub-001_T1w.nii"))
    images = read_cohort(tmp_path).images
    assert images.loc[0, "t1_path"].endswith("sub-001_T1w.nii")


def test_pandas_na_words_are_values_not_missing(tmp_path: Path) -> None:
    values = dict(BASE_ROW, mri_finding="None", sex="null", hypoxia="NaN", head_trauma="#N/A")
    _write_table(tmp_path, _header() + "\n" + "\t".join(["sub-1", *values.values()]) + "\n")
    row = read_cohort(tmp_path).participants.iloc[0]
    assert (row["mri_finding"], row["sex"], row["hypoxia"], row["head_trauma"]) == (
        "None",
        "null",
        "NaN",
        "#N/A",
    )


def test_a_latin1_table_is_read_with_a_warning_and_a_report_row(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cohort = write_test_cohort(tmp_path, 3, extra_columns={"note": "opérée à Liège"})
    table = tmp_path / "participants.tsv"
    utf8 = read_cohort(tmp_path).participants
    table.write_bytes(table.read_text(encoding="utf-8").encode("latin-1"))
    with caplog.at_level("WARNING"):
        raw = read_cohort(tmp_path)
    assert "line 2" in caplog.text and "cp1252" in caplog.text
    pd.testing.assert_frame_equal(raw.participants, utf8)  # accents decoded, nothing else moved
    assert list(raw.notes["reason"]) == ["non_utf8_table"]
    assert list(raw.images["participant_id"]) == cohort.ids


def test_a_table_of_unrecognisable_bytes_stops_naming_the_line(tmp_path: Path) -> None:
    _write_table(tmp_path, _header() + "\n")
    rows = ("\t".join(["sub-1", *BASE_ROW.values()]) + "\n").encode()
    garbage = bytes(range(128, 256)) * 4 + b"\x00\x01\x02" * 40
    (tmp_path / "participants.tsv").write_bytes(
        (_header() + "\n").encode() + rows + garbage + b"\n"
    )
    with pytest.raises(CohortError, match=r"participants.tsv line 3 is not UTF-8"):
        read_cohort(tmp_path)
