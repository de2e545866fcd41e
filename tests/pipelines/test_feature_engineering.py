from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from pydantic import ValidationError

from tests.features import synthetic_clinical, synthetic_tensors
from tle_kedro.features.clinical import ClinicalTokenizer, fit_transform_fold
from tle_kedro.features.folds import make_cv_folds
from tle_kedro.pipelines.feature_engineering import create_pipeline
from tle_kedro.pipelines.feature_engineering.nodes import build_clinical_recipe, make_folds

CONF = Path(__file__).resolve().parents[2] / "conf" / "base"


def _parameters() -> dict:
    return yaml.safe_load((CONF / "parameters_feature_engineering.yml").read_text())


def _catalog(tmp_path: Path) -> DataCatalog:
    """The real catalog entries, written under ``tmp_path``, plus in-memory inputs."""
    config = yaml.safe_load((CONF / "catalog_feature_engineering.yml").read_text())
    for entry in config.values():
        entry["filepath"] = str(tmp_path / entry["filepath"])
    catalog = DataCatalog.from_config(config)
    table = synthetic_clinical(15)
    catalog["clinical_validated"] = table
    catalog["image_tensors"] = synthetic_tensors(table["participant_id"].tolist())
    for key, value in _parameters().items():
        catalog[f"params:{key}"] = value
    catalog["params:atlas"] = yaml.safe_load((CONF / "parameters.yml").read_text())["atlas"]
    return catalog


def test_pipeline_declares_its_contract() -> None:
    pipeline = create_pipeline()
    assert pipeline.inputs() == {
        "clinical_validated",
        "image_tensors",
        "params:clinical_features",
        "params:atlas",
        "params:cv",
    }
    assert pipeline.all_outputs() == {
        "clinical_features",
        "clinical_tokenizer",
        "imaging_features",
        "cv_folds",
    }


def test_pipeline_runs_and_persists_every_output(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    SequentialRunner().run(create_pipeline(), catalog)
    table = catalog.load("clinical_validated")
    for name in ("clinical_features", "clinical_tokenizer", "imaging_features", "cv_folds"):
        assert catalog.exists(name), name

    recipe = catalog.load("clinical_features")  # unfitted, fits per fold
    x_train, x_test = fit_transform_fold(recipe, table.iloc[:10], table.iloc[10:])
    assert x_train.shape[0] == 10 and x_test.shape[0] == 5 and not x_test.isna().any().any()

    tokenizer = catalog.load("clinical_tokenizer")
    assert isinstance(tokenizer, ClinicalTokenizer) and not hasattr(tokenizer, "means_")
    assert tokenizer.fit_transform(table).categorical.shape == (15, 11)

    imaging = catalog.load("imaging_features")
    assert imaging["participant_id"].tolist() == table["participant_id"].tolist()
    np.testing.assert_allclose(imaging["pet_ai_hippocampus"], 0.0, atol=1e-6)

    folds = catalog.load("cv_folds")
    assert len(folds) == 15 and set(folds["fold"]) == set(range(5))
    assert folds.merge(table, on="participant_id").groupby("fold")["recurrence"].sum().min() == 1


def test_nodes_reject_bad_parameters_and_tables() -> None:
    table = synthetic_clinical(15)
    with pytest.raises(ValidationError, match="n_splits"):
        make_folds(table, table[["participant_id"]], {"n_splits": 0, "n_repeats": 1, "seed": 1})
    with pytest.raises(ValueError, match="lacks configured columns"):
        build_clinical_recipe(table.drop(columns=["sex"]), _parameters()["clinical_features"])


def test_folds_name_the_patients_without_imaging_features() -> None:
    table = synthetic_clinical(15)
    features = table[["participant_id"]].iloc[2:]
    params = {"n_splits": 3, "n_repeats": 1, "seed": 1}
    with pytest.raises(ValueError, match="2 patients of clinical_validated have no imaging"):
        make_folds(table, features, params)
    pd.testing.assert_frame_equal(
        make_folds(table, table[["participant_id"]], params),
        make_cv_folds(table, n_splits=3, n_repeats=1, seed=1),
    )


def test_recipe_from_parameters_matches_its_documented_columns() -> None:
    table = synthetic_clinical(15)
    recipe = build_clinical_recipe(table, _parameters()["clinical_features"])
    x = recipe.fit_transform(table)
    assert isinstance(x, pd.DataFrame)
    assert {"sex_M", "operative_side_R", "log1p_seizure_frequency_per_month"} <= set(x.columns)
