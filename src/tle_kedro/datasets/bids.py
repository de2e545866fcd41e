"""Kedro dataset for a BIDS-style cohort folder (thin wrapper over ``tle_kedro.data``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from tle_kedro.data.cohort import CohortError, RawCohort, read_cohort
from tle_synth import SyntheticCohort, write_cohort


class BIDSCohortDataset(AbstractDataset[SyntheticCohort, RawCohort]):
    """A cohort folder: ``participants.tsv``, ``participants.json``, ``sub-*/anat``, ``sub-*/pet``.

    ``load`` reads the table and lists the image files (images themselves are read lazily by
    preprocessing); ``save`` writes a :class:`SyntheticCohort` subject by subject.
    """

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> RawCohort:
        """The cohort as read.

        Raises:
            DatasetError: the folder or table is unusable; the message is the
                :class:`~tle_kedro.data.cohort.CohortError`'s (file and fix), stated once: the
                library traceback is not chained (Kedro wraps it once more with the dataset name).
        """
        try:
            return read_cohort(self._path)
        except CohortError as err:
            raise DatasetError(str(err)) from None

    def save(self, data: SyntheticCohort) -> None:
        write_cohort(data, self._path)

    def _exists(self) -> bool:
        return (self._path / "participants.tsv").is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
