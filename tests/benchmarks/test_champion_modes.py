"""benchmarks/champion_modes.py on a tiny processed cohort: split, both modes fitted and scored."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmarks.champion_modes import compare, holdout_split, load_cohort
from tests.cohort_factory import tiny_params, write_test_cohort
from tests.conftest import one_torch_thread
from tests.registry.folds import TINY_MODELING
from tle_kedro.data.cohort import read_cohort
from tle_kedro.data.schema import validate_participants
from tle_kedro.datasets.tensors import ImageTensorsDataset
from tle_kedro.features.clinical import ClinicalTokenizer, make_clinical_recipe
from tle_kedro.transforms.preprocess import preprocess_cohort

CONF = Path(__file__).resolve().parents[2] / "conf" / "base"
PARAMS = {
    "modeling": TINY_MODELING,
    "atlas": yaml.safe_load((CONF / "parameters.yml").read_text())["atlas"],
    "cv": {"n_splits": 2, "n_repeats": 1},
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-patient cohort's data root as data_processing and feature_engineering leave it."""
    root = tmp_path_factory.mktemp("champion")
    write_test_cohort(root / "raw", 12)
    cohort = read_cohort(root / "raw")
    valid, _ = validate_participants(cohort.participants)
    clinical, _, tensors = preprocess_cohort(valid, cohort.images, tiny_params())
    (root / "02_intermediate").mkdir()
    clinical.to_parquet(root / "02_intermediate" / "clinical_validated.parquet")
    ImageTensorsDataset(str(root / "03_primary" / "image_tensors")).save(tensors)
    (root / "04_feature").mkdir()
    (root / "04_feature" / "clinical_features.pkl").write_bytes(
        pickle.dumps(make_clinical_recipe())
    )
    (root / "04_feature" / "clinical_tokenizer.pkl").write_bytes(pickle.dumps(ClinicalTokenizer()))
    return root


def test_the_holdout_is_patient_level_stratified_and_seeded(data_dir: Path) -> None:
    clinical = load_cohort(data_dir).clinical
    dev, test = holdout_split(clinical, 0.3, seed=1)
    assert not set(dev) & set(test) and len(dev) + len(test) == len(clinical)
    assert len(test) == 4  # ceil(0.3 * 12)
    events = clinical.set_index("participant_id")["recurrence"]
    assert abs(events[test].mean() - events.mean()) <= 0.25
    assert holdout_split(clinical, 0.3, seed=1) == (dev, test)
    assert holdout_split(clinical, 0.3, seed=2) != (dev, test)


@pytest.mark.parametrize("model", ["rsf_region_measures", "transeprelap"])
def test_both_modes_are_scored_on_the_held_out_patients(data_dir: Path, model: str) -> None:
    with one_torch_thread():
        accuracy, cost = compare(data_dir, model, 0, n_boot=100, repeats=2, params=PARAMS)
    assert list(accuracy["mode"]) == ["refit", "fold_ensemble"]
    assert (accuracy["n_test"] == 4).all()
    c = accuracy["harrell_c"].to_numpy(float)
    assert np.all((c >= 0) & (c <= 1))
    assert accuracy.loc[0, "delta_vs_refit"] == 0.0  # refit minus itself
    assert accuracy.loc[1, "delta_vs_refit"] == pytest.approx(c[1] - c[0])
    assert list(cost["members"]) == [1, 2]  # one refit, one member per outer fold
    assert (cost["pickled_mb"] > 0).all() and (cost["ms_per_patient"] > 0).all()
