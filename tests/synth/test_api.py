"""The Python entry points the confirmation runner calls."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tle_synth import generate_cohort, load_parameters, resolve_config
from tle_synth.config import tiny_params

PARAMS_FILE = Path(__file__).resolve().parents[2] / "conf" / "base" / "parameters_demo_cohort.yml"


def test_load_parameters_returns_the_design_config_and_the_shift() -> None:
    config, shift = load_parameters(PARAMS_FILE)
    content = yaml.safe_load(PARAMS_FILE.read_text())
    assert config == content["demo_cohort"] and shift == content["demo_cohort_shift"]


def test_load_parameters_refuses_a_file_without_the_generator_key(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text("modeling: {}\n")
    with pytest.raises(ValueError, match="demo_cohort"):
        load_parameters(tmp_path / "p.yml")


def test_generate_cohort_writes_a_seeded_shifted_cohort_and_summarises_it(tmp_path: Path) -> None:
    _, shift = load_parameters(PARAMS_FILE)
    # the shift's sites replace the tiny ones: keep the coarse grids for speed
    shift = {**shift, "sites": [{**s, "t1_voxel_mm": [4, 4, 4], "pet_voxel_mm": [6, 6, 6]}
                                for s in shift["sites"]]}  # fmt: skip
    summary = generate_cohort(tiny_params(6), tmp_path / "c", seed=123, shift=shift)
    assert summary["seed"] == 123 and summary["shifted"] is True
    truth = pd.read_csv(tmp_path / "c" / "derivatives" / "ground_truth.tsv", sep="\t")
    assert set(truth["site"]) <= {"site_d", "site_e"}
    assert (truth["shifted"] == 1).all()
    assert len(pd.read_csv(tmp_path / "c" / "participants.tsv", sep="\t")) == 6
    assert 0 <= summary["oracle_c_index"] <= 1


def test_generate_cohort_seed_overrides_the_config_seed(tmp_path: Path) -> None:
    a = generate_cohort(tiny_params(3, seed=1), tmp_path / "a", seed=7)
    b = generate_cohort(tiny_params(3, seed=2), tmp_path / "b", seed=7)
    assert a["seed"] == b["seed"] == 7
    for name in ("participants.tsv", "derivatives/ground_truth.tsv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_resolve_config_applies_the_shift_only_when_switched_on() -> None:
    config, shift = load_parameters(PARAMS_FILE)
    assert resolve_config(config, shift) == config
    shifted = resolve_config({**config, "shifted": True}, shift)
    assert shifted["shifted"] is True and shifted["sites"] == shift["sites"]
    assert resolve_config({**config, "shifted": "false"}, shift)["shifted"] == "false"
    with pytest.raises(ValueError, match="demo_cohort_shift is empty"):
        resolve_config({**config, "shifted": True}, {})
