"""The written BIDS folder honours the input contract and is reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from tle_kedro.data.cohort import read_cohort
from tle_synth.clinical import MAY_BE_MISSING, NEVER_MISSING, PARTICIPANT_COLUMNS
from tle_synth.config import HISTORY_ITEMS, tiny_params
from tle_synth.generate import draw_cohort
from tle_synth.writer import GROUND_TRUTH_FILE, image_paths, write_cohort

N = 8


def _params(seed: int = 3) -> dict:
    params = tiny_params(N, seed=seed)
    params["clinical"] = {"missing_fraction": 0.2}  # enough missing cells to check in 8 rows
    return params


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "cohort"
    write_cohort(draw_cohort(_params()), root, workers=1)
    return root


def _table(root: Path, name: str = "participants.tsv") -> pd.DataFrame:
    return pd.read_csv(root / name, sep="\t", dtype=str, keep_default_na=False)


def test_every_subject_has_its_t1_and_pet(written: Path) -> None:
    ids = list(_table(written)["participant_id"])
    assert len(ids) == N
    for pid in ids:
        t1, pet = image_paths(written, pid)
        assert nib.load(t1).ndim == 3
        assert nib.load(pet).ndim in (3, 4)
    raw = read_cohort(written)  # the data_processing reader accepts the folder
    assert raw.images["t1_path"].notna().all() and raw.images["pet_path"].notna().all()


def test_participants_table_columns_values_and_missing_markers(written: Path) -> None:
    table = _table(written)
    assert list(table.columns) == list(PARTICIPANT_COLUMNS)
    missing = table == "n/a"
    assert not missing[list(NEVER_MISSING)].any().any()
    assert missing[list(MAY_BE_MISSING)].any().any()
    present = table.mask(missing)
    assert set(present["sex"].dropna()) <= {"M", "F"}
    assert set(present["operative_side"]) <= {"L", "R"}
    assert set(present["mri_finding"].dropna()) <= {
        "normal",
        "hippocampal_sclerosis",
        "other_lesion",
    }
    for item in HISTORY_ITEMS:
        assert set(present[item].dropna()) <= {"0", "1"}, item
    for column in ("age_at_onset_months", "age_at_surgery_months", "epilepsy_duration_months"):
        assert (present[column].dropna().astype(float) >= 0).all()
    assert (table["time_months"].astype(float) > 0).all()
    assert set(table["engel_class"]) <= {"I", "II", "III", "IV"}
    assert (table["recurrence"].astype(int) == (table["engel_class"] != "I")).all()


def test_sidecar_and_ground_truth(written: Path) -> None:
    sidecar = json.loads((written / "participants.json").read_text())
    assert list(sidecar) == list(PARTICIPANT_COLUMNS)
    truth = pd.read_csv(written / GROUND_TRUTH_FILE, sep="\t")
    assert list(truth.columns[:2]) == ["participant_id", "true_log_hazard"]
    assert list(truth["participant_id"]) == list(_table(written)["participant_id"])
    assert {"hs_side", "pet_side", "pet_spread", "pet_position", "site"} <= set(truth)
    assert {"term_pet_discordant", "term_pet_spread", "term_hs_posterior"} <= set(truth)
    assert np.isfinite(truth["true_log_hazard"]).all()


def test_pet_storage_variants_survive_the_round_trip(written: Path) -> None:
    truth = pd.read_csv(written / GROUND_TRUTH_FILE, sep="\t")
    for row in truth.itertuples():
        pet = nib.load(image_paths(written, row.participant_id)[1])
        assert pet.ndim == (4 if row.pet_frames else 3)
        assert pet.get_data_dtype() == np.dtype(row.pet_dtype)
        if row.pet_dtype == "int16":
            assert pet.dataobj.slope != 1.0  # scaled integers, as scanners export them
        assert np.isfinite(pet.get_fdata()).all()
    assert set(truth["pet_frames"]) == {0, 1}


def _voxels(root: Path) -> list[np.ndarray]:
    ids = _table(root)["participant_id"]
    return [np.asanyarray(nib.load(p).dataobj) for pid in ids for p in image_paths(root, pid)]


def test_same_seed_gives_identical_tables_and_voxels(written: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_cohort(draw_cohort(_params()), again, workers=2)  # `written` was serial
    for name in ("participants.tsv", "participants.json", str(GROUND_TRUTH_FILE)):
        assert (again / name).read_bytes() == (written / name).read_bytes(), name
    for a, b in zip(_voxels(again), _voxels(written), strict=True):
        assert np.array_equal(a, b)


def test_another_seed_gives_another_cohort(written: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    write_cohort(draw_cohort(_params(seed=4)), other)
    assert not _table(other).equals(_table(written))
    assert not np.array_equal(_voxels(other)[0], _voxels(written)[0])


def test_refuses_to_write_over_a_folder_that_is_not_a_synthetic_cohort(tmp_path: Path) -> None:
    (tmp_path / "participants.tsv").write_text("participant_id\nsub-real\n")
    with pytest.raises(ValueError, match="refusing to write a synthetic cohort"):
        write_cohort(draw_cohort(tiny_params(2)), tmp_path)
    assert (tmp_path / "participants.tsv").read_text().endswith("sub-real\n")


def test_rewriting_a_smaller_synthetic_cohort_removes_stale_subjects(tmp_path: Path) -> None:
    write_cohort(draw_cohort(tiny_params(3)), tmp_path)
    write_cohort(draw_cohort(tiny_params(2)), tmp_path)
    assert sorted(p.name for p in tmp_path.glob("sub-*")) == ["sub-001", "sub-002"]
    assert len(_table(tmp_path)) == 2
