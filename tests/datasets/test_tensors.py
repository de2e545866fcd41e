"""ImageTensorsDataset: round trip, errors, and the warm-load budget."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError

from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.data.regions import crop_grid_affine
from tle_kedro.datasets.tensors import ImageTensorsDataset

DEFAULT_GRID = (40, 32, 24)


def _tensors(n: int, grid: tuple[int, int, int] = (6, 5, 4)) -> ImageTensors:
    rng = np.random.default_rng(0)
    volumes = rng.normal(size=(n, 2, *grid)).astype(np.float32)
    index = pd.DataFrame(
        {
            "participant_id": [f"sub-{i:03d}" for i in range(n)],
            "has_t1": [i % 3 != 0 for i in range(n)],
            "has_pet": [i % 4 != 0 for i in range(n)],
        }
    )
    affine = crop_grid_affine(((-72, 72), (-64, 32), (-48, 16)), grid)
    return ImageTensors(volumes=volumes, index=index, affine=affine)


def test_round_trip_is_exact(tmp_path: Path) -> None:
    original = _tensors(5)
    dataset = ImageTensorsDataset(str(tmp_path / "tensors"))
    assert not dataset.exists()
    dataset.save(original)
    assert dataset.exists()
    loaded = dataset.load()
    np.testing.assert_array_equal(loaded.volumes, original.volumes)
    assert loaded.volumes.dtype == np.float32
    pd.testing.assert_frame_equal(loaded.index, original.index)
    np.testing.assert_array_equal(loaded.affine, original.affine)
    assert sorted(p.name for p in (tmp_path / "tensors").iterdir()) == [
        "index.parquet",
        "meta.json",
        "volumes.npy",
    ]


def test_saving_again_replaces_the_content(tmp_path: Path) -> None:
    dataset = ImageTensorsDataset(str(tmp_path))
    dataset.save(_tensors(5))
    dataset.save(_tensors(2))
    assert dataset.load().volumes.shape[0] == 2


def test_memory_mapped_load(tmp_path: Path) -> None:
    ImageTensorsDataset(str(tmp_path)).save(_tensors(3))
    loaded = ImageTensorsDataset(str(tmp_path), mmap_mode="r").load()
    assert isinstance(loaded.volumes, np.memmap)


def test_loading_a_missing_folder_says_which_pipeline_makes_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="data_processing"):
        ImageTensorsDataset(str(tmp_path / "none")).load()


def test_empty_cohort_round_trips(tmp_path: Path) -> None:
    empty = ImageTensors(
        volumes=np.zeros((0, 2, 3, 3, 3), np.float32),
        index=pd.DataFrame({"participant_id": [], "has_t1": [], "has_pet": []}),
        affine=np.eye(4),
    )
    dataset = ImageTensorsDataset(str(tmp_path))
    dataset.save(empty)
    assert dataset.load().volumes.shape == (0, 2, 3, 3, 3)


def test_warm_load_of_220_patients_on_the_default_grid_is_within_2_seconds(
    tmp_path: Path,
) -> None:
    one = _tensors(1, DEFAULT_GRID)
    many = ImageTensors(
        volumes=np.repeat(one.volumes, 220, axis=0),
        index=pd.DataFrame(
            {
                "participant_id": [f"sub-{i:03d}" for i in range(220)],
                "has_t1": True,
                "has_pet": True,
            }
        ),
        affine=one.affine,
    )
    dataset = ImageTensorsDataset(str(tmp_path))
    dataset.save(many)
    start = time.perf_counter()
    loaded = dataset.load()
    assert time.perf_counter() - start < 2.0
    assert loaded.volumes.shape == (220, 2, *DEFAULT_GRID)
