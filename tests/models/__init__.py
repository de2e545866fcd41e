"""Tests of tle_kedro.models; ``make_batch`` builds the tiny batches they share."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests.conftest import one_torch_thread
from tle_kedro.models.batch import SurvivalBatch, from_arrays

TINY_GRID = (16, 16, 16)
N_NUMERIC = 3
CARDINALITIES = [2, 3]


def make_batch(
    b: int = 3,
    grid: tuple[int, int, int] = TINY_GRID,
    seed: int = 0,
    modality_mask: np.ndarray | None = None,
) -> SurvivalBatch:
    """A random batch: 3 numeric (one NaN in row 0) and 2 categorical clinical variables."""
    rng = np.random.default_rng(seed)
    mask = np.ones((b, 2), bool) if modality_mask is None else np.asarray(modality_mask, bool)
    volumes = rng.normal(size=(b, 2, *grid)).astype(np.float32) * mask[:, :, None, None, None]
    clin_num = rng.normal(size=(b, N_NUMERIC))
    clin_num[0, 1] = np.nan
    clin_cat = np.stack([rng.integers(0, c, size=b) for c in CARDINALITIES], axis=1)
    time = rng.uniform(1.0, 30.0, size=b)
    event = np.arange(b) % 2 == 0
    return from_arrays(volumes, mask, clin_num, clin_cat, time, event)


@pytest.fixture
def single_thread() -> Iterator[None]:
    """One torch thread for the test: on a busy 2-core machine two threads spin-wait and run
    5-20x slower than one. Use with ``pytestmark = pytest.mark.usefixtures("single_thread")``
    after importing it into the test module."""
    with one_torch_thread():
        yield
