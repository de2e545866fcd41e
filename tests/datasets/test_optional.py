"""Ground truth is optional input: absent → empty table, never written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DatasetError

from tle_kedro.datasets.optional import OptionalTSVDataset


def test_absent_file_loads_as_an_empty_table(tmp_path: Path) -> None:
    assert OptionalTSVDataset(str(tmp_path / "none.tsv")).load().empty


def test_present_file_loads_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "truth.tsv"
    path.write_text("participant_id\ttrue_log_hazard\nsub-01\t0.5\n")
    table = OptionalTSVDataset(str(path)).load()
    assert table.to_dict("records") == [{"participant_id": "sub-01", "true_log_hazard": 0.5}]


def test_saving_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="truth.tsv is read-only"):
        OptionalTSVDataset(str(tmp_path / "truth.tsv")).save(pd.DataFrame())
