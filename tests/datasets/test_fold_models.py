"""Fold models load as a handle: nothing is unpickled until the chosen model's are asked for."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml
from kedro.io import DataCatalog

from tle_kedro.datasets.fold_models import FoldModelsDataset, LazyFoldModels

CATALOG = Path(__file__).resolve().parents[2] / "conf" / "base" / "catalog_modeling.yml"


class Counted:
    """Counts how often instances are unpickled."""

    loads = 0

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_unpickled, ())


def _unpickled() -> Counted:
    Counted.loads += 1
    return Counted()


def _catalog(root: Path) -> DataCatalog:
    entry = yaml.safe_load(CATALOG.read_text())["{model}.cv_fold_models"]
    entry["filepath"] = entry["filepath"].replace("${runtime_params:data_root,data}", str(root))
    return DataCatalog.from_config({"{model}.cv_fold_models": entry})


def test_the_catalog_entry_loads_a_handle_that_unpickles_on_demand(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    catalog.save("rsf_region_measures.cv_fold_models", {"rsf_region_measures-r0-f0": Counted()})
    Counted.loads = 0
    handle = catalog.load("rsf_region_measures.cv_fold_models")
    assert isinstance(handle, LazyFoldModels) and handle.model == "rsf_region_measures"
    assert Counted.loads == 0
    models = handle.load()
    assert list(models) == ["rsf_region_measures-r0-f0"] and Counted.loads == 1
    # versioned: the handle holds the version it was loaded with
    assert Path(handle.path or "").parent.parent.name == "cv_fold_models.pkl"


def test_a_model_without_saved_fold_models_fails_only_when_read(tmp_path: Path) -> None:
    handle = _catalog(tmp_path).load("transeprelap.cv_fold_models")
    assert handle.path is None
    with pytest.raises(ValueError, match="keep_fold_models: true.*--namespaces=transeprelap"):
        handle.load()


def test_unversioned_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    dataset = FoldModelsDataset(model="cox_clinical", filepath=str(path))
    assert dataset.load().path is None
    dataset.save({"cox_clinical-r0-f1": [1, 2]})
    assert pickle.loads(path.read_bytes()) == {"cox_clinical-r0-f1": [1, 2]}
    assert dataset.load().load() == {"cox_clinical-r0-f1": [1, 2]}
