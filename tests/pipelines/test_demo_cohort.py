"""``demo_cohort`` pipeline: its contract, its node, and a real ``kedro run``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tle_kedro.pipelines.demo_cohort import create_pipeline
from tle_kedro.pipelines.demo_cohort.nodes import generate_demo_cohort
from tle_synth.config import tiny_params
from tle_synth.writer import SyntheticCohort

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_pipeline_is_one_node_from_parameters_to_raw_cohort() -> None:
    (node,) = create_pipeline().nodes
    assert node.name == "generate_demo_cohort"
    assert node.inputs == ["params:demo_cohort", "params:demo_cohort_shift"]
    assert node.outputs == ["raw_cohort"]


def test_node_is_pure_and_cheap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cohort = generate_demo_cohort(tiny_params(5), {})
    assert isinstance(cohort, SyntheticCohort)
    assert len(cohort) == 5 and len(cohort.participants) == 5
    assert list(tmp_path.iterdir()) == []  # nothing written: the catalog saves it


def test_node_rejects_bad_parameters_with_the_key() -> None:
    with pytest.raises(ValueError, match="demo_cohort.n_patients"):
        generate_demo_cohort({"n_patients": 0}, {})


def test_node_applies_the_shift_when_switched_on() -> None:
    shift = {"pose": {"rotation_deg_max": 11.5}}
    cohort = generate_demo_cohort({**tiny_params(3), "shifted": True}, shift)
    assert cohort.config.shifted and cohort.config.pose.rotation_deg_max == 11.5
    assert (cohort.ground_truth["shifted"] == 1).all()
    assert not generate_demo_cohort(tiny_params(3), shift).config.shifted


@pytest.mark.slow
def test_kedro_run_writes_the_cohort_into_cohort_dir(tmp_path: Path) -> None:
    cohort_dir = tmp_path / "cohort"
    params = ",".join(
        [
            "demo_cohort.n_patients=6",
            "demo_cohort.anatomy.template_resolution_mm=4",  # faster template, same T1/PET grids
            f"cohort_dir={cohort_dir}",
        ]
    )
    kedro = Path(sys.executable).with_name("kedro")
    proc = subprocess.run(
        [str(kedro), "run", "--pipeline=demo_cohort", f"--params={params}"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    table = pd.read_csv(cohort_dir / "participants.tsv", sep="\t", dtype=str)
    assert len(table) == 6
    assert sorted(p.name for p in cohort_dir.glob("sub-*")) == list(table["participant_id"])
    assert (cohort_dir / "derivatives" / "ground_truth.tsv").is_file()
    for pid in table["participant_id"]:
        assert (cohort_dir / pid / "anat" / f"{pid}_T1w.nii.gz").is_file()
        assert (cohort_dir / pid / "pet" / f"{pid}_trc-FDG_pet.nii.gz").is_file()
