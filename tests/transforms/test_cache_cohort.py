"""The cache never changes an outcome: cold and warm runs give the same exclusion report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests.cohort_factory import tiny_params, write_test_cohort
from tle_kedro.data.cohort import read_cohort
from tle_kedro.data.schema import validate_participants
from tle_kedro.transforms.preprocess import CohortImages, preprocess_cohort_qc

DEFECTS = {
    0: {"t1": "no_orientation"},
    1: {"pet": "truncated"},
    2: {"pet": "huge_header"},
    3: {"t1": "shuffled"},
}


def _run(root: Path, cache: Path) -> CohortImages:
    raw = read_cohort(root)
    valid, _ = validate_participants(raw.participants)
    return preprocess_cohort_qc(valid, raw.images, tiny_params(cache))


def _same(a: CohortImages, b: CohortImages) -> None:
    pd.testing.assert_frame_equal(a.exclusions, b.exclusions)
    pd.testing.assert_frame_equal(a.used, b.used)
    pd.testing.assert_frame_equal(a.registration_qc, b.registration_qc)
    np.testing.assert_array_equal(a.tensors.volumes, b.tensors.volumes)


def test_a_cohort_run_cold_and_warm_gives_the_same_report_and_tensors(tmp_path: Path) -> None:
    write_test_cohort(tmp_path / "cohort", 6, image_defects=DEFECTS)
    cold = _run(tmp_path / "cohort", tmp_path / "cache")
    warm = _run(tmp_path / "cohort", tmp_path / "cache")
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 6  # failures are cached too
    _same(cold, warm)
    assert set(cold.exclusions["reason"]) == {
        "no_orientation",
        "unreadable_image",
        "image_too_large",
        "registration_failed",
    }


def test_a_gzip_renamed_nii_after_a_warm_run_is_judged_as_a_cold_run_judges_it(
    tmp_path: Path,
) -> None:
    """The issue's case: the same bytes under a ``.nii`` name must not reuse the cached entry."""
    root = tmp_path / "cohort"
    write_test_cohort(root, 3)
    _run(root, tmp_path / "cache")  # warm the cache with the correctly named file
    pet = root / "sub-002" / "pet" / "sub-002_trc-FDG_pet.nii.gz"
    pet.rename(pet.with_name("sub-002_trc-FDG_pet.nii"))
    warm = _run(root, tmp_path / "cache")
    cold = _run(root, tmp_path / "fresh-cache")
    _same(warm, cold)
    assert list(zip(cold.exclusions["participant_id"], cold.exclusions["reason"], strict=True)) == [
        ("sub-002", "unreadable_image")
    ]
    assert "gzip-compressed but not named .gz" in cold.exclusions["detail"].item()
