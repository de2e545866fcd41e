"""Patient-level cross-validation folds, stratified by the event, shared by every model."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.model_selection import RepeatedStratifiedKFold

logger = logging.getLogger(__name__)

EVENT_COLUMN = "recurrence"


class CVConfig(BaseModel):
    """Outer cross-validation (``params:cv``): K folds, repeated with another shuffle."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_splits: int = Field(5, ge=2)
    n_repeats: int = Field(1, ge=1)
    seed: int = 42


def _events(table: pd.DataFrame) -> np.ndarray:
    """(N,) int event indicator, after checking ids and values."""
    missing = {"participant_id", EVENT_COLUMN} - set(table.columns)
    if missing:
        raise ValueError(f"cv folds: clinical table lacks columns {sorted(missing)}")
    duplicated = table["participant_id"][table["participant_id"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"cv folds: duplicate participant_id {duplicated[:10]}")
    events = table[EVENT_COLUMN]
    bad = table.loc[~events.isin([0, 1]), "participant_id"].tolist()
    if bad:
        raise ValueError(f"cv folds: {EVENT_COLUMN} must be 0 or 1; not for {bad[:10]}")
    return events.to_numpy(dtype=np.int64)


def make_cv_folds(
    table: pd.DataFrame, n_splits: int = 5, n_repeats: int = 1, seed: int = 42
) -> pd.DataFrame:
    """Assign every patient to one outer test fold per repeat, stratified by the event.

    Args:
        table: one row per patient with ``participant_id`` and ``recurrence`` (0/1).
        n_splits: K, the number of folds of each repeat.
        n_repeats: how many times K-fold is repeated with a different shuffle.
        seed: random state of the shuffles (same seed → same folds).
    Returns:
        (N * n_repeats) rows ``participant_id, repeat, fold`` (int64, 0-based), sorted by
        repeat then participant_id; ``fold`` is the patient's test fold in that repeat.
    Raises:
        ValueError: when there are fewer events or non-events than ``n_splits`` (a fold
            without an event cannot be evaluated), or for a bad table.
    """
    config = CVConfig(n_splits=n_splits, n_repeats=n_repeats, seed=seed)
    events = _events(table)
    n_events = int(events.sum())
    n_censored = int(len(events) - n_events)
    if min(n_events, n_censored) < config.n_splits:
        raise ValueError(
            f"cv folds: {n_events} events and {n_censored} censored patients cannot be "
            f"stratified into n_splits={config.n_splits} folds (each fold needs at least one "
            "of each); lower cv.n_splits in parameters_feature_engineering.yml or add patients"
        )
    splitter = RepeatedStratifiedKFold(
        n_splits=config.n_splits, n_repeats=config.n_repeats, random_state=config.seed
    )
    ids = table["participant_id"].to_numpy()
    fold = np.full((config.n_repeats, len(ids)), -1, dtype=np.int64)
    for k, (_, test_idx) in enumerate(splitter.split(np.zeros(len(ids)), events)):
        fold[k // config.n_splits, test_idx] = k % config.n_splits
    assert (fold >= 0).all(), "every patient is in exactly one test fold per repeat"
    frames = [
        pd.DataFrame({"participant_id": ids, "repeat": np.int64(r), "fold": fold[r]})
        for r in range(config.n_repeats)
    ]
    folds = pd.concat(frames, ignore_index=True)
    folds = folds.sort_values(["repeat", "participant_id"], ignore_index=True)
    logger.info(
        "cv folds: %d patients (%d events), %d folds x %d repeats",
        len(ids),
        n_events,
        config.n_splits,
        config.n_repeats,
    )
    return folds
