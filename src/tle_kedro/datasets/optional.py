"""A tab-separated file that may legitimately be absent (e.g. a real cohort's ground truth)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError


class OptionalTSVDataset(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """Loads a TSV as a DataFrame, or an empty DataFrame when the file does not exist.

    Used for ``derivatives/ground_truth.tsv``: synthetic cohorts have it, real ones never do,
    and nothing may require it. Read-only.
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        if not self._filepath.is_file():
            return pd.DataFrame()
        return pd.read_csv(self._filepath, sep="\t")

    def save(self, data: pd.DataFrame) -> None:
        # Input only: no node may write the ground truth (Kedro still needs a save method).
        raise DatasetError(f"{self._filepath} is read-only input; no pipeline writes it")

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
