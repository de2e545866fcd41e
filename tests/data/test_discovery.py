"""Finding and choosing images in BIDS as it really is: sessions, entities, links, ambiguity."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.cohort_factory import BASE_ROW
from tle_kedro.data.cohort import read_cohort
from tle_kedro.data.discovery import ImageSelection, discover_images, select_images


def _touch(root: Path, relative: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not read here")
    return path


def _table(root: Path, ids: list[str]) -> None:
    header = "\t".join(["participant_id", *BASE_ROW])
    rows = ["\t".join([pid, *BASE_ROW.values()]) for pid in ids]
    (root / "participants.tsv").write_text("\n".join([header, *rows]) + "\n")


def _choose(root: Path, pid: str = "sub-01", **rule: object) -> pd.Series:
    chosen = select_images(root, discover_images(root), [pid], ImageSelection(**rule))
    return chosen.iloc[0]


SESSIONS = [
    "sub-01/ses-preop/anat/sub-01_ses-preop_T1w.nii.gz",
    "sub-01/ses-postop/anat/sub-01_ses-postop_T1w.nii.gz",
    "sub-01/ses-preop/pet/sub-01_ses-preop_trc-FDG_pet.nii.gz",
]


def test_candidates_carry_their_entities(tmp_path: Path) -> None:
    _touch(tmp_path, "sub-01/ses-1/anat/sub-01_ses-1_acq-mprage_rec-norm_run-2_T1w.nii")
    _touch(tmp_path, "sub-01/ses-1/pet/sub-01_ses-1_trc-FDG_rec-acdyn_pet.nii.gz")
    found = discover_images(tmp_path).set_index("modality")
    t1 = found.loc["T1"]
    assert (t1["session"], t1["acquisition"], t1["reconstruction"], t1["run"]) == (
        "1",
        "mprage",
        "norm",
        2,
    )
    assert found.loc["PET", "reconstruction"] == "acdyn"
    assert found.loc["PET", "path"].endswith("sub-01_ses-1_trc-FDG_rec-acdyn_pet.nii.gz")


def test_files_that_are_not_a_t1_or_an_fdg_pet_of_their_folder_are_not_candidates(
    tmp_path: Path,
) -> None:
    _touch(tmp_path, "sub-01/pet/sub-01_trc-PIB_pet.nii.gz")  # another tracer
    _touch(tmp_path, "sub-01/anat/sub-01_T2w.nii.gz")
    _touch(tmp_path, "sub-01/anat/sub-02_T1w.nii.gz")  # the name says another subject
    _touch(tmp_path, "sub-01/ses-a/anat/sub-01_ses-b_T1w.nii.gz")  # another session
    _touch(tmp_path, "sub-01/anat/sub-01_T1w.json")
    _touch(tmp_path, "derivatives/sub-01/anat/sub-01_T1w.nii.gz")
    assert discover_images(tmp_path).empty


def test_two_sessions_are_ambiguous_by_default(tmp_path: Path) -> None:
    for relative in SESSIONS:
        _touch(tmp_path, relative)
    row = _choose(tmp_path)
    assert row["t1_path"] is None and row["t1_reason"] == "ambiguous_image"
    assert row["t1_detail"].startswith("T1: 2 files match")
    assert "sub-01_ses-preop_T1w.nii.gz" in row["t1_detail"]
    assert row["pet_path"].endswith("sub-01_ses-preop_trc-FDG_pet.nii.gz")  # only one PET


@pytest.mark.parametrize(
    ("session", "chosen"),
    [("preop", "ses-preop"), (["preop2", "postop"], "ses-postop"), ("latest", "ses-preop")],
)
def test_the_session_rule_chooses(tmp_path: Path, session: object, chosen: str) -> None:
    for relative in SESSIONS:
        _touch(tmp_path, relative)
    row = _choose(tmp_path, session=session)
    assert f"/{chosen}/anat/" in row["t1_path"] and row["t1_reason"] is None


def test_latest_session_is_in_natural_order(tmp_path: Path) -> None:
    for label in ("2", "10", "9"):
        _touch(tmp_path, f"sub-01/ses-{label}/anat/sub-01_ses-{label}_T1w.nii.gz")
    assert "/ses-10/" in _choose(tmp_path, session="latest")["t1_path"]


def test_a_session_rule_nothing_matches_is_a_missing_modality_that_says_what_was_found(
    tmp_path: Path,
) -> None:
    for relative in SESSIONS:
        _touch(tmp_path, relative)
    row = _choose(tmp_path, session="baseline")
    assert row["t1_reason"] == "missing_modality"
    assert "no file matches the selection rule" in row["t1_detail"]


def test_runs_and_acquisitions(tmp_path: Path) -> None:
    for acq, run in (("mprage", 1), ("mprage", 2), ("spgr", 1)):
        _touch(tmp_path, f"sub-01/anat/sub-01_acq-{acq}_run-{run}_T1w.nii.gz")
    assert _choose(tmp_path)["t1_reason"] == "ambiguous_image"
    assert _choose(tmp_path, run=1)["t1_reason"] == "ambiguous_image"  # mprage and spgr run-1
    assert "run-2" in _choose(tmp_path, acquisition="mprage", run="latest")["t1_path"]
    assert "run-1" in _choose(tmp_path, acquisition="mprage", run=1)["t1_path"]
    assert "acq-spgr" in _choose(tmp_path, acquisition="spgr")["t1_path"]


def test_nii_beside_nii_gz_is_ambiguous_never_a_silent_pick(tmp_path: Path) -> None:
    _touch(tmp_path, "sub-01/anat/sub-01_T1w.nii.gz")
    _touch(tmp_path, "sub-01/anat/sub-01_T1w.nii")
    row = _choose(tmp_path)
    assert row["t1_reason"] == "ambiguous_image"
    assert "sub-01_T1w.nii, sub-01_T1w.nii.gz" in row["t1_detail"]


def test_a_link_outside_the_cohort_is_a_reason_unless_allowed(tmp_path: Path) -> None:
    root = tmp_path / "cohort"
    target = _touch(tmp_path, "elsewhere/scan.nii.gz")
    (root / "sub-01" / "anat").mkdir(parents=True)
    (root / "sub-01" / "anat" / "sub-01_T1w.nii.gz").symlink_to(target)
    row = _choose(root)
    assert row["t1_path"] is None and row["t1_reason"] == "outside_cohort"
    assert "allow_outside_root" in row["t1_detail"] and str(target) not in row["t1_detail"]
    assert _choose(root, allow_outside_root=True)["t1_path"] == str(target.resolve())


def test_links_inside_the_cohort_are_followed_and_dangling_ones_are_unreadable(
    tmp_path: Path,
) -> None:
    annexed = _touch(tmp_path, ".git/annex/objects/ab/key.nii.gz")
    (tmp_path / "sub-01" / "anat").mkdir(parents=True)
    (tmp_path / "sub-01" / "anat" / "sub-01_T1w.nii.gz").symlink_to(annexed)
    (tmp_path / "sub-01" / "pet").mkdir(parents=True)
    (tmp_path / "sub-01" / "pet" / "sub-01_trc-FDG_pet.nii.gz").symlink_to(tmp_path / "gone")
    row = _choose(tmp_path)
    assert row["t1_path"] == str(annexed.resolve()) and row["t1_reason"] is None
    assert row["pet_path"] is None and row["pet_reason"] == "unreadable_image"


def test_invalid_ids_get_no_path_even_when_a_folder_matches(tmp_path: Path) -> None:
    _touch(tmp_path, "sub-01/anat/sub-01_T1w.nii.gz")
    chosen = select_images(
        tmp_path, discover_images(tmp_path), ["sub-01/..", None], ImageSelection()
    )
    assert chosen["t1_path"].isna().all() and not chosen["subject_dir_exists"].any()


def test_subject_folders_without_a_row_are_reported(tmp_path: Path) -> None:
    _touch(tmp_path, "sub-01/anat/sub-01_T1w.nii.gz")
    _touch(tmp_path, "sub-02/anat/sub-02_T1w.nii.gz")
    _touch(tmp_path, "sub-02/pet/sub-02_trc-FDG_pet.nii.gz")
    _table(tmp_path, ["sub-01"])
    cohort = read_cohort(tmp_path)
    assert list(cohort.images["participant_id"]) == ["sub-01"]
    notes = cohort.notes
    assert list(zip(notes["participant_id"], notes["reason"], strict=True)) == [
        ("sub-02", "unlisted_subject")
    ]
    assert "2 T1/PET file(s)" in notes["detail"].item()


def test_read_cohort_applies_the_selection_rule_it_is_given(tmp_path: Path) -> None:
    for relative in SESSIONS:
        _touch(tmp_path, relative)
    _table(tmp_path, ["sub-01"])
    assert read_cohort(tmp_path).images.loc[0, "t1_reason"] == "ambiguous_image"
    chosen = read_cohort(tmp_path, ImageSelection(session="preop")).images.loc[0, "t1_path"]
    assert "/ses-preop/" in chosen


def test_numeric_labels_from_yaml_or_the_command_line_are_labels() -> None:
    rule = ImageSelection.model_validate({"session": 2, "acquisition": 1, "run": 3})
    assert (rule.session, rule.acquisition, rule.run) == ("2", "1", 3)
    assert ImageSelection.model_validate({"session": [3, "preop"]}).session == ["3", "preop"]


def test_the_cohort_dataset_takes_a_selection_rule(tmp_path: Path) -> None:
    from tle_kedro.datasets.bids import BIDSCohortDataset

    for relative in SESSIONS:
        _touch(tmp_path, relative)
    _table(tmp_path, ["sub-01"])
    strict = BIDSCohortDataset(str(tmp_path)).load()
    chosen = BIDSCohortDataset(str(tmp_path), selection={"session": "postop"}).load()
    assert strict.images.loc[0, "t1_reason"] == "ambiguous_image"
    assert "/ses-postop/" in chosen.images.loc[0, "t1_path"]
