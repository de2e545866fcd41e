from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models import make_batch
from tle_kedro.models.batch import SurvivalBatch, collate, from_arrays


def test_from_arrays_casts_to_the_contract_dtypes() -> None:
    batch = from_arrays(
        np.zeros((2, 2, 4, 4, 4), np.float64),
        [[1, 0], [1, 1]],
        np.array([[0.5, np.nan], [1.0, 2.0]]),
        np.array([[0], [-1]], np.int32),
        time=[3, 4],
        event=[1, 0],
    )
    assert batch.images.dtype == torch.float32 and batch.images.shape == (2, 2, 4, 4, 4)
    assert batch.modality_mask.dtype == torch.bool
    assert batch.modality_mask.tolist() == [[True, False], [True, True]]
    assert batch.clin_num.dtype == torch.float32 and torch.isnan(batch.clin_num[0, 1])
    assert batch.clin_cat.dtype == torch.int64 and batch.clin_cat[1, 0] == -1
    assert batch.time is not None and batch.time.dtype == torch.float32
    assert batch.event is not None and batch.event.tolist() == [True, False]
    assert batch.batch_size == 2 and batch.grid_shape == (4, 4, 4)


def test_from_arrays_without_clinical_gives_empty_columns() -> None:
    batch = from_arrays(np.zeros((3, 2, 4, 4, 4)), np.ones((3, 2)))
    assert batch.clin_num.shape == (3, 0) and batch.clin_cat.shape == (3, 0)
    assert batch.time is None and batch.event is None


def test_mismatched_rows_raise_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"clin_num must have 2 dims and 2 rows"):
        from_arrays(np.zeros((2, 2, 4, 4, 4)), np.ones((2, 2)), np.zeros((3, 1)))


def test_wrong_dtype_raises() -> None:
    with pytest.raises(ValueError, match="modality_mask must be torch.bool"):
        SurvivalBatch(
            images=torch.zeros(1, 2, 4, 4, 4),
            modality_mask=torch.ones(1, 2),
            clin_num=torch.zeros(1, 0),
            clin_cat=torch.zeros(1, 0, dtype=torch.int64),
        )


def test_images_must_have_two_channels() -> None:
    with pytest.raises(ValueError, match=r"\(B, 2, D, H, W\)"):
        from_arrays(np.zeros((2, 3, 4, 4, 4)), np.ones((2, 2)))


def test_collate_concatenates_and_select_picks_rows() -> None:
    a, b = make_batch(2, seed=1), make_batch(3, seed=2)
    both = collate([a, b])
    assert both.batch_size == 5
    assert torch.equal(both.images[2:], b.images)
    picked = both.select([4, 0])
    assert torch.equal(picked.clin_cat, torch.stack([b.clin_cat[2], a.clin_cat[0]]))
    assert picked.time is not None and picked.time.tolist() == [b.time[2], a.time[0]]


def test_collate_drops_outcomes_unless_all_batches_have_them() -> None:
    a = make_batch(2)
    unlabeled = SurvivalBatch(a.images, a.modality_mask, a.clin_num, a.clin_cat)
    assert collate([a, unlabeled]).time is None
    with pytest.raises(ValueError, match="empty"):
        collate([])


def test_to_moves_every_tensor_and_keeps_values() -> None:
    batch = make_batch(2)
    moved = batch.to("cpu")
    assert moved is not batch
    assert torch.equal(moved.images, batch.images)
    assert moved.event is not None and torch.equal(moved.event, batch.event)
