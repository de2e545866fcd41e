"""Catalog entries that load where a library writes by itself (Optuna storage, cache folder)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from kedro.io import DatasetError

from tle_kedro.datasets.locations import FolderDataset, OptunaStorageDataset


def test_an_sqlite_storage_is_a_url_whose_folder_exists(tmp_path: Path) -> None:
    url = OptunaStorageDataset(filepath=str(tmp_path / "06_models" / "optuna.db")).load()
    assert url == f"sqlite:///{tmp_path}/06_models/optuna.db"
    optuna.create_study(study_name="s", storage=url)  # Optuna can open it as it is
    assert (tmp_path / "06_models" / "optuna.db").is_file()


def test_a_server_url_is_passed_through_and_not_shown_with_its_password() -> None:
    url = "postgresql+psycopg2://optuna:secret@db-host:5432/optuna"
    dataset = OptunaStorageDataset(url=url)
    assert dataset.load() == url
    assert "secret" not in str(dataset)  # Kedro redacts URL credentials in descriptions


def test_no_location_is_an_in_memory_study_and_no_cache() -> None:
    assert OptunaStorageDataset().load() is None
    assert FolderDataset().load() is None
    with pytest.raises(DatasetError, match="not both"):
        OptunaStorageDataset(filepath="a.db", url="sqlite:///b.db")


def test_a_cache_folder_is_created_and_never_saved(tmp_path: Path) -> None:
    dataset = FolderDataset(path=str(tmp_path / "03_primary" / "cache"))
    assert dataset.load() == (tmp_path / "03_primary" / "cache").as_posix()
    assert (tmp_path / "03_primary" / "cache").is_dir()
    with pytest.raises(DatasetError):
        dataset.save(None)
