"""Where a run keeps what a library writes by itself: catalog entries that load a location.

Optuna writes its trials to a study storage and preprocessing writes a per-subject cache;
neither is a value a node returns, but both are data a run writes, so their locations live
in the catalog (``catalog_modeling.yml``, ``catalog_data_processing.yml``) like every other
path, follow ``data_root`` (the confirmation runner), and can be pointed elsewhere in
``conf/local`` (a PostgreSQL study storage for a team). The library classes default to no
location (an in-memory study, no cache). Loading returns the location (and creates the
folder it needs); these datasets are inputs only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError


class OptunaStorageDataset(AbstractDataset[None, str | None]):
    """The Optuna study storage as an SQLAlchemy URL.

    Args:
        filepath: an SQLite file (relative paths are made absolute by Kedro, like every
            catalog ``filepath``); loads ``sqlite:///<filepath>`` and creates its folder.
        url: any RDB URL instead (``postgresql+psycopg2://user@host:5432/optuna``: keep the
            password in ``~/.pgpass``, not in the URL).
        Neither: loads None, an in-memory storage (nothing is kept after the run).
    """

    def __init__(
        self,
        filepath: str | None = None,
        url: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if filepath is not None and url is not None:
            raise DatasetError("OptunaStorageDataset: give `filepath` (SQLite) or `url`, not both")
        self._filepath = None if filepath is None else Path(filepath)
        self._url = url
        self.metadata = metadata

    def load(self) -> str | None:
        if self._filepath is not None:
            self._filepath.parent.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{self._filepath.as_posix()}"
        return self._url

    def save(self, data: None) -> None:
        raise DatasetError("the Optuna storage is written by Optuna during tuning, not saved")

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        if self._filepath is not None:
            return {"filepath": str(self._filepath)}
        return {"url": self._url}  # Kedro redacts a URL's credentials when it shows this


class FolderDataset(AbstractDataset[None, str | None]):
    """A folder a library fills itself (the preprocessing cache): loads its path, created.

    ``path: null`` loads None (the library keeps nothing).
    """

    def __init__(self, path: str | None = None, metadata: dict[str, Any] | None = None) -> None:
        self._path = None if path is None else Path(path)
        self.metadata = metadata

    def load(self) -> str | None:
        if self._path is None:
            return None
        self._path.mkdir(parents=True, exist_ok=True)
        return self._path.as_posix()

    def save(self, data: None) -> None:
        raise DatasetError(f"{self._path} is filled by the library that uses it, not saved")

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        return {"path": None if self._path is None else str(self._path)}
