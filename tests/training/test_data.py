"""Patient tensors and the event-guaranteeing batch sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.training import tiny_cohort
from tle_kedro.features.clinical import ClinicalTokenizer
from tle_kedro.training.data import EventBatchSampler, make_survival_arrays


@pytest.mark.parametrize(
    ("n", "n_events", "batch_size"),
    [(20, 3, 4), (20, 10, 4), (21, 1, 2), (176, 60, 32), (9, 9, 2), (30, 5, None)],
)
def test_every_batch_has_an_event_and_every_patient_is_used_once(
    n: int, n_events: int, batch_size: int | None
) -> None:
    event = np.zeros(n, bool)
    event[np.random.default_rng(0).choice(n, n_events, replace=False)] = True
    sampler = EventBatchSampler(event, batch_size, torch.Generator().manual_seed(1))
    for _ in range(3):  # reshuffled every epoch
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert all(event[b].any() for b in batches)
        assert sorted(np.concatenate(batches).tolist()) == list(range(n))
    expected = 1 if batch_size is None else min(-(-n // batch_size), n_events)
    assert len(sampler) == expected


def test_sampler_shuffles_with_its_generator() -> None:
    event = np.arange(40) % 3 == 0
    first = list(EventBatchSampler(event, 8, torch.Generator().manual_seed(5)))
    again = list(EventBatchSampler(event, 8, torch.Generator().manual_seed(5)))
    other = list(EventBatchSampler(event, 8, torch.Generator().manual_seed(6)))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_sampler_without_events_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no event"):
        EventBatchSampler(np.zeros(10, bool), 4, torch.Generator())


def test_arrays_follow_the_requested_order_with_contract_dtypes() -> None:
    cohort = tiny_cohort(8, shape=(8, 8, 8))
    tok = ClinicalTokenizer().fit(cohort.clinical)
    ids = ["sub-005", "sub-000", "sub-003"]
    arrays = make_survival_arrays(ids, cohort.images, tok, cohort.clinical)
    batch = arrays.batch()
    assert arrays.participant_ids == tuple(ids)
    assert batch.images.shape == (3, 2, 8, 8, 8) and batch.images.dtype == torch.float32
    np.testing.assert_array_equal(batch.images[1].numpy(), cohort.images.volumes[0])
    assert batch.clin_num.shape == (3, len(tok.numeric_names))
    assert torch.isnan(batch.clin_num[1, 0])  # sub-000's missing age at onset stays NaN
    assert batch.clin_cat.dtype == torch.int64
    assert batch.time is not None and batch.time.dtype == torch.float32
    assert batch.event is not None and batch.event.dtype == torch.bool
    chunks = list(arrays.chunks(2))
    assert [c.batch_size for c in chunks] == [2, 1]
    assert make_survival_arrays(ids, cohort.images, tok, cohort.clinical, False).time is None


def test_unknown_participant_is_named() -> None:
    cohort = tiny_cohort(4, shape=(4, 4, 4))
    tok = ClinicalTokenizer().fit(cohort.clinical)
    with pytest.raises(KeyError, match="sub-999"):
        make_survival_arrays(["sub-999"], cohort.images, tok, cohort.clinical)
