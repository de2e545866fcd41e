"""Tensors of a set of patients for neural training, and an event-guaranteeing batch sampler.

The whole cohort of small crops fits in memory (220 × 2 × 40 × 32 × 24 float32 ≈ 65 MB), so a
fold's tensors are materialised once and batches are index selections, not a DataLoader.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.models.batch import SurvivalBatch

TIME_COLUMN = "time_months"
EVENT_COLUMN = "recurrence"


@dataclass(frozen=True)
class SurvivalArrays:
    """CPU tensors of N patients, aligned on axis 0 with ``participant_ids``.

    Attributes:
        images: (N, 2, D, H, W) float32, ch0 T1, ch1 PET, zeros where missing.
        modality_mask: (N, 2) bool, True where the modality is present.
        clin_num: (N, Nn) float32, NaN where missing.
        clin_cat: (N, Nc) int64, -1 where missing.
        time: (N,) float32 months, or None (new patients).
        event: (N,) bool, or None.
    """

    participant_ids: tuple[str, ...]
    images: torch.Tensor
    modality_mask: torch.Tensor
    clin_num: torch.Tensor
    clin_cat: torch.Tensor
    time: torch.Tensor | None
    event: torch.Tensor | None

    def __len__(self) -> int:
        return len(self.participant_ids)

    def batch(self, index: np.ndarray | Sequence[int] | None = None) -> SurvivalBatch:
        """The rows ``index`` (all rows when None) as a ``SurvivalBatch`` on CPU."""
        idx = (
            torch.arange(len(self))
            if index is None
            else torch.as_tensor(np.asarray(index), dtype=torch.long)
        )
        return SurvivalBatch(
            images=self.images[idx],
            modality_mask=self.modality_mask[idx],
            clin_num=self.clin_num[idx],
            clin_cat=self.clin_cat[idx],
            time=None if self.time is None else self.time[idx],
            event=None if self.event is None else self.event[idx],
        )

    def chunks(self, size: int) -> Iterator[SurvivalBatch]:
        """Consecutive batches of at most ``size`` rows, in order (for prediction)."""
        for start in range(0, len(self), size):
            yield self.batch(np.arange(start, min(start + size, len(self))))


def rows_for(table: pd.DataFrame, participant_ids: Sequence[str], where: str) -> pd.DataFrame:
    """Rows of ``table`` (with a ``participant_id`` column) in the order of ``participant_ids``."""
    pos = pd.Index(table["participant_id"]).get_indexer(list(participant_ids))
    if (pos < 0).any():
        unknown = [p for p, i in zip(participant_ids, pos, strict=True) if i < 0]
        raise KeyError(f"{where}: no row for participants {unknown[:10]}")
    return table.iloc[pos].reset_index(drop=True)


def outcome_arrays(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(time (N,) float64 months, event (N,) bool) from ``time_months`` and ``recurrence``."""
    missing = {TIME_COLUMN, EVENT_COLUMN} - set(table.columns)
    if missing:
        raise ValueError(f"clinical table lacks outcome columns {sorted(missing)}")
    time = table[TIME_COLUMN].to_numpy(dtype=np.float64)
    event = table[EVENT_COLUMN].to_numpy(dtype=np.int64).astype(bool)
    if not np.isfinite(time).all() or (time <= 0).any():
        raise ValueError("time_months must be finite and > 0 for every training patient")
    return time, event


def make_survival_arrays(
    participant_ids: Sequence[str],
    image_tensors: ImageTensors,
    tokenizer: Any,
    table: pd.DataFrame,
    with_outcome: bool = True,
) -> SurvivalArrays:
    """Build the tensors of ``participant_ids`` from images, a FITTED tokenizer and the table.

    Args:
        participant_ids: N ids; output rows follow this order.
        image_tensors: the cohort's preprocessed volumes (N_all, 2, D, H, W).
        tokenizer: fitted ``ClinicalTokenizer`` (``transform(df) -> ClinicalTokens``).
        table: ``clinical_validated`` rows (``participant_id`` + contract columns).
        with_outcome: read ``time_months``/``recurrence`` (False for new patients).
    """
    ids = list(participant_ids)
    rows = rows_for(table, ids, "clinical table")
    imgs = image_tensors.subset(ids)
    tokens = tokenizer.transform(rows)
    time = event = None
    if with_outcome:
        t, e = outcome_arrays(rows)
        time, event = torch.as_tensor(t, dtype=torch.float32), torch.as_tensor(e)
    return SurvivalArrays(
        participant_ids=tuple(ids),
        images=torch.as_tensor(np.ascontiguousarray(imgs.volumes, dtype=np.float32)),
        modality_mask=torch.as_tensor(imgs.modality_mask, dtype=torch.bool),
        clin_num=torch.as_tensor(np.asarray(tokens.numeric, dtype=np.float32)),
        clin_cat=torch.as_tensor(np.asarray(tokens.categorical, dtype=np.int64)),
        time=time,
        event=event,
    )


class EventBatchSampler:
    """Shuffled batches of indices with at least one event in each.

    The Cox partial likelihood of a batch without an event is 0 (no gradient), so events
    and censored patients are shuffled separately and dealt round-robin into
    ``min(ceil(N / batch_size), n_events)`` batches: every batch gets ≥ 1 event, batch
    sizes differ by at most one per stratum (a batch may exceed ``batch_size`` when events
    are scarce). ``batch_size=None`` yields one whole-set batch per epoch.

    Args:
        event: (N,) bool.
        batch_size: target batch size, or None for whole-set batches.
        generator: torch generator for the shuffle (seeded by the caller).
    """

    def __init__(
        self, event: np.ndarray | torch.Tensor, batch_size: int | None, generator: torch.Generator
    ) -> None:
        ev = np.asarray(event, dtype=bool)
        if not ev.any():
            raise ValueError(
                "training set has no event (recurrence): a Cox model cannot be fitted; "
                "check the folds or the outcome columns"
            )
        if batch_size is not None and batch_size < 2:
            raise ValueError(f"batch_size must be ≥ 2 or None, got {batch_size}")
        self._events = np.flatnonzero(ev)
        self._censored = np.flatnonzero(~ev)
        self._n = len(ev)
        self.batch_size = batch_size
        self.generator = generator
        wanted = 1 if batch_size is None else -(-self._n // batch_size)
        self.n_batches = max(1, min(wanted, len(self._events)))

    def __len__(self) -> int:
        return self.n_batches

    def _perm(self, idx: np.ndarray) -> np.ndarray:
        order = torch.randperm(len(idx), generator=self.generator).numpy()
        return idx[order]

    def __iter__(self) -> Iterator[np.ndarray]:
        events, censored = self._perm(self._events), self._perm(self._censored)
        for b in range(self.n_batches):
            batch = np.concatenate([events[b :: self.n_batches], censored[b :: self.n_batches]])
            yield self._perm(batch)
