"""Issue 17's image and folder defects, and issue 14's registration quality, per patient.

One clean cohort and one with a defect per patient (same seed, so every other image is the same
bytes) are preprocessed once each; every test compares the two: the defect's reason, the counts
(read = used + excluded), and that nothing else changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.cohort_factory import tiny_params, write_test_cohort
from tle_kedro.data.cohort import read_cohort
from tle_kedro.data.exclusions import PATIENT_REASONS
from tle_kedro.data.schema import validate_participants
from tle_kedro.transforms.preprocess import CohortImages, preprocess_cohort_qc

N = 12
DEFECTS = {
    0: {"t1": "no_orientation"},
    1: {"pet": "orientation_conflict"},
    2: {"pet": "huge_header"},
    3: {"pet": "gzip_as_nii"},
    4: {"t1": "both_extensions"},
    5: {"pet": "outside_link"},
    6: {"t1": "inside_link"},
    7: {"t1": "shuffled"},
    8: {"t1": "rotated_90"},
    9: {"pet": "shuffled"},
}
EXPECTED = {  # participant -> (has_t1, has_pet, reasons)
    "sub-001": (False, True, ["no_orientation"]),
    "sub-002": (True, False, ["orientation_conflict"]),
    "sub-003": (True, False, ["image_too_large"]),
    "sub-004": (True, False, ["unreadable_image"]),
    "sub-005": (False, True, ["ambiguous_image"]),
    "sub-006": (True, False, ["outside_cohort"]),
    "sub-007": (True, True, []),
    "sub-008": (False, True, ["registration_failed"]),
    "sub-009": (False, True, ["registration_failed"]),
    "sub-010": (True, False, ["registration_failed"]),
    "sub-011": (True, True, []),
    "sub-012": (True, True, []),
}


@dataclass(frozen=True)
class Runs:
    clean: CohortImages
    defect: CohortImages
    n_read: int


def _run(root: Path) -> tuple[CohortImages, int]:
    raw = read_cohort(root)
    valid, _ = validate_participants(raw.participants)
    return preprocess_cohort_qc(valid, raw.images, tiny_params()), len(raw.participants)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    tmp = tmp_path_factory.mktemp("inputs")
    write_test_cohort(tmp / "clean" / "cohort", N)
    write_test_cohort(tmp / "defect" / "cohort", N, image_defects=DEFECTS)
    clean, _ = _run(tmp / "clean" / "cohort")
    defect, n_read = _run(tmp / "defect" / "cohort")
    return Runs(clean, defect, n_read)


def _reasons(report: pd.DataFrame, pid: str) -> list[str]:
    return list(report.loc[report["participant_id"] == pid, "reason"])


@pytest.mark.parametrize("pid", sorted(EXPECTED))
def test_each_defect_masks_its_modality_with_its_own_reason(runs: Runs, pid: str) -> None:
    has_t1, has_pet, reasons = EXPECTED[pid]
    flags = runs.defect.used.set_index("participant_id")
    assert (bool(flags.loc[pid, "has_t1"]), bool(flags.loc[pid, "has_pet"])) == (has_t1, has_pet)
    assert _reasons(runs.defect.exclusions, pid) == reasons
    masked = "T1" if not has_t1 else "PET" if not has_pet else None
    if masked is not None:
        detail = runs.defect.exclusions.loc[runs.defect.exclusions["participant_id"] == pid]
        assert detail["detail"].item().startswith(f"{masked}: ")


def test_counts_add_up_and_no_patient_is_lost(runs: Runs) -> None:
    report = runs.defect.exclusions
    excluded = set(report.loc[report["reason"].isin(PATIENT_REASONS), "participant_id"])
    assert runs.n_read == len(runs.defect.used) + len(excluded) == N
    assert len(runs.defect.registration_qc) == N


def test_nothing_else_changed(runs: Runs) -> None:
    """Every modality kept is bit-identical to the clean run's; a masked one is zeros.

    A PET whose T1 was masked is registered to the FDG-like template instead of the T1, so only
    PETs kept beside a kept T1 are compared.
    """
    assert runs.clean.exclusions.empty
    assert list(runs.clean.used["participant_id"]) == list(runs.defect.used["participant_id"])
    clean, defect = runs.clean.tensors.volumes, runs.defect.tensors.volumes
    for i, pid in enumerate(runs.defect.used["participant_id"]):
        has_t1, has_pet, _ = EXPECTED[pid]
        for channel, kept, comparable in ((0, has_t1, has_t1), (1, has_pet, has_t1 and has_pet)):
            if comparable:
                np.testing.assert_array_equal(defect[i, channel], clean[i, channel], err_msg=pid)
            if not kept:
                assert not defect[i, channel].any(), pid


def test_registration_quality_is_high_for_good_images_and_low_for_scrambled(runs: Runs) -> None:
    qc = runs.defect.registration_qc.set_index("participant_id")
    clean = runs.clean.registration_qc
    assert clean["t1_ncc"].min() > 0.85 and clean["pet_ncc"].min() > 0.8
    assert (qc.loc[["sub-008", "sub-009"], "t1_ncc"] < 0.45).all()
    assert qc.loc["sub-010", "pet_ncc"] < 0.3
    detail = runs.defect.exclusions.set_index("participant_id").loc["sub-008", "detail"]
    assert "registration quality" in detail and "min_t1_ncc = 0.5" in detail
    # a masked T1 sends the PET to the FDG-like template: it is still registered well
    assert (qc.loc[["sub-008", "sub-009"], "pet_ncc"] > 0.8).all()
