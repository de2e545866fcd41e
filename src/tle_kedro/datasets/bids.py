"""Kedro datasets for a BIDS-style cohort folder and a DICOM export (thin wrappers)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from tle_kedro.data.cohort import CohortError, RawCohort, read_cohort
from tle_kedro.data.discovery import ImageSelection
from tle_synth import SyntheticCohort, write_cohort


class BIDSCohortDataset(AbstractDataset[SyntheticCohort, RawCohort]):
    """A cohort folder: ``participants.tsv``, ``participants.json``, ``sub-*/anat``, ``sub-*/pet``.

    ``load`` reads the table and lists the image files (images themselves are read lazily by
    preprocessing); ``save`` writes a :class:`SyntheticCohort` subject by subject.
    ``selection`` (optional, ``ImageSelection`` keys) chooses among several files per modality
    for the images listed at load; ``data_processing`` chooses again with
    ``params:cohort_reading``, so it matters for ``inference_cohort``.
    """

    def __init__(
        self,
        path: str,
        selection: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._path = Path(path)
        self._selection = ImageSelection.model_validate(selection or {})
        self.metadata = metadata

    def load(self) -> RawCohort:
        """The cohort as read.

        Raises:
            DatasetError: the folder or table is unusable; the message is the
                :class:`~tle_kedro.data.cohort.CohortError`'s (file and fix), stated once: the
                library traceback is not chained (Kedro wraps it once more with the dataset name).
        """
        try:
            return read_cohort(self._path, self._selection)
        except CohortError as err:
            raise DatasetError(str(err)) from None

    def save(self, data: SyntheticCohort) -> None:
        write_cohort(data, self._path)

    def _exists(self) -> bool:
        return (self._path / "participants.tsv").is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class DicomFolderDataset(AbstractDataset[None, Path]):
    """A folder of DICOM files (a PACS export); ``load`` gives its path (read by the node's
    library call, which only reads headers and hands the files to dcm2niix)."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> Path:
        if not self._path.is_dir():
            raise DatasetError(
                f"DICOM folder {self._path} does not exist; point the run at the export with "
                "`kedro run --pipelines=dicom_to_bids --params=dicom_dir=/path/to/export`"
            )
        return self._path

    def save(self, data: None) -> None:
        raise DatasetError("a DICOM export is read-only")

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class BIDSFilesDataset(AbstractDataset[dict[str, bytes], None]):
    """Files written into a BIDS folder: ``{relative path: bytes}``.

    Each file is written atomically (temporary name, then rename); files not in the dict are
    left alone (``participants.tsv`` is the hospital's). A path that is absolute or climbs out
    of the folder is refused.
    """

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> None:
        raise DatasetError("BIDSFilesDataset is write-only; read the folder with raw_cohort")

    def save(self, data: dict[str, bytes]) -> None:
        root = self._path.resolve()
        for relative, blob in data.items():
            target = (root / relative).resolve()
            if Path(relative).is_absolute() or not target.is_relative_to(root):
                raise DatasetError(f"refusing to write {relative!r} outside {root}")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(blob)
            os.replace(tmp, target)

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
