"""Issue 17 at inference: an image without orientation or with a lying header is masked with
its own reason, exactly as in training, and nothing is predicted from it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from kedro.runner import SequentialRunner

from tests.cohort_factory import write_test_cohort
from tests.pipelines.test_inference import OUTCOME, _catalog
from tests.registry import TinyBundle, bundle_fixture
from tle_kedro.pipelines.inference import create_pipeline

bundle = bundle_fixture("inference_inputs")


def test_unorientable_and_lying_images_are_masked_at_inference(
    bundle: TinyBundle, tmp_path: Path
) -> None:
    cohort = tmp_path / "new"
    write_test_cohort(
        cohort,
        4,
        seed=7,
        drop_columns=OUTCOME,
        image_defects={
            0: {"pet": "no_orientation"},
            1: {"t1": "huge_header"},
            2: {"pet": "orientation_conflict"},
        },
    )
    (cohort / "sub-077" / "anat").mkdir(parents=True)  # a folder without a row
    SequentialRunner().run(create_pipeline(), _catalog(tmp_path, cohort, bundle.model))

    predictions = pd.read_csv(tmp_path / "data/07_model_output/predictions.csv")
    used = dict(zip(predictions["participant_id"], predictions["modalities_used"], strict=True))
    assert used == {
        "sub-001": "T1+clinical",
        "sub-002": "PET+clinical",
        "sub-003": "T1+clinical",
        "sub-004": "T1+PET+clinical",
    }
    report = pd.read_csv(
        tmp_path / "data/07_model_output/inference_exclusions.csv", keep_default_na=False
    )
    assert list(zip(report["participant_id"], report["reason"], strict=True)) == [
        ("sub-077", "unlisted_subject"),
        ("sub-001", "no_orientation"),
        ("sub-002", "image_too_large"),
        ("sub-003", "orientation_conflict"),
    ]
