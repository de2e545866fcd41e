"""Scans never acquired (``demo_cohort.acquisition.fraction_missing_*``): drawn, recorded in
the ground truth, absent from the folder, and off by default without changing any cohort."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tle_kedro.data.cohort import read_cohort
from tle_synth.acquisition import sample_missing_scans
from tle_synth.config import AcquisitionConfig, parse_config, tiny_params
from tle_synth.generate import draw_cohort
from tle_synth.writer import GROUND_TRUTH_FILE, image_paths, write_cohort

SCAN_COLUMNS = ["has_t1", "has_pet"]


def _with_missing(params: dict, pet: float, t1: float) -> dict:
    return {**params, "acquisition": {"fraction_missing_pet": pet, "fraction_missing_t1": t1}}


def _sha(frame: pd.DataFrame) -> str:
    text = frame.to_csv(sep="\t", index=False, na_rep="n/a")
    return hashlib.sha256(text.encode()).hexdigest()


def test_missing_fractions_match_the_configuration_and_nobody_misses_both() -> None:
    config = AcquisitionConfig(fraction_missing_pet=0.15, fraction_missing_t1=0.10)
    scans = sample_missing_scans(4000, config, np.random.default_rng(0))
    assert list(scans.columns) == SCAN_COLUMNS
    # binomial sd at n = 4000 is ≤ 0.006: 0.02 is over 3 sd
    assert abs((scans["has_pet"] == 0).mean() - 0.15) < 0.02
    assert abs((scans["has_t1"] == 0).mean() - 0.10) < 0.02
    assert ((scans["has_t1"] == 1) | (scans["has_pet"] == 1)).all()


def test_zero_fractions_keep_every_scan() -> None:
    scans = sample_missing_scans(300, AcquisitionConfig(), np.random.default_rng(1))
    assert (scans == 1).all().all()


@pytest.mark.parametrize(
    ("acquisition", "fragment"),
    [
        ({"fraction_missing_pet": 0.6, "fraction_missing_t1": 0.5}, "must be < 1"),
        ({"fraction_missing_pet": -0.1}, "demo_cohort.acquisition.fraction_missing_pet"),
        ({"fraction_missing_t1": 1.0}, "demo_cohort.acquisition.fraction_missing_t1"),
    ],
)
def test_bad_fractions_are_refused_by_name(acquisition: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match="parameters_demo_cohort.yml") as err:
        parse_config({"acquisition": acquisition})
    assert fragment in str(err.value)


def test_the_default_cohort_tables_are_those_drawn_before_missing_scans_existed() -> None:
    # sha256 of tiny_params(12, seed=5)'s tables computed on main before this feature
    cohort = draw_cohort(tiny_params(12, seed=5))
    truth = cohort.ground_truth
    assert (truth[SCAN_COLUMNS] == 1).all().all()
    assert _sha(cohort.participants) == (
        "bb58b7255863147cc8bb5f07d006579233e3e5fa76ff168ec79bc728e1924371"
    )
    assert _sha(truth.drop(columns=SCAN_COLUMNS)) == (
        "9ac84c941b836bcbe1e502de039b250e4093f4a7fc4ec70b92032907afbaee3c"
    )


def test_turning_missing_scans_on_changes_nothing_else_in_the_cohort() -> None:
    base = draw_cohort(tiny_params(40, seed=7))
    missing = draw_cohort(_with_missing(tiny_params(40, seed=7), 0.3, 0.3))
    assert (missing.ground_truth[SCAN_COLUMNS] == 0).any().all()  # both kinds were drawn
    pd.testing.assert_frame_equal(missing.participants, base.participants)
    pd.testing.assert_frame_equal(
        missing.ground_truth.drop(columns=SCAN_COLUMNS),
        base.ground_truth.drop(columns=SCAN_COLUMNS),
    )
    for spec, row in zip(missing.subjects, missing.ground_truth.itertuples(), strict=True):
        assert (spec.has_t1, spec.has_pet) == (bool(row.has_t1), bool(row.has_pet))


def test_a_scan_not_acquired_has_no_file_even_over_a_previous_complete_cohort(
    tmp_path: Path,
) -> None:
    params = tiny_params(5, seed=11)
    write_cohort(draw_cohort(params), tmp_path, workers=1)
    cohort = draw_cohort(_with_missing(params, 0.4, 0.4))
    write_cohort(cohort, tmp_path, workers=1)
    truth = pd.read_csv(tmp_path / GROUND_TRUTH_FILE, sep="\t")
    assert (truth[SCAN_COLUMNS] == 0).any().all()  # the seed gives both kinds
    for row in truth.itertuples():
        t1, pet = image_paths(tmp_path, row.participant_id)
        assert t1.is_file() == bool(row.has_t1), row.participant_id
        assert pet.is_file() == bool(row.has_pet), row.participant_id
    images = read_cohort(tmp_path).images.set_index("participant_id")
    reader_sees = images[["t1_path", "pet_path"]].notna().astype(int).to_numpy()
    assert np.array_equal(reader_sees, truth[SCAN_COLUMNS].to_numpy())
