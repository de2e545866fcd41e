from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tle_kedro.features.folds import CVConfig, make_cv_folds


def _cohort(n: int = 40, n_events: int = 14) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    events = np.zeros(n, dtype=int)
    events[rng.choice(n, n_events, replace=False)] = 1
    return pd.DataFrame(
        {"participant_id": [f"sub-{i:03d}" for i in range(n)], "recurrence": events}
    )


def test_every_patient_is_in_exactly_one_fold_per_repeat() -> None:
    table = _cohort()
    folds = make_cv_folds(table, n_splits=5, n_repeats=3, seed=1)
    assert list(folds.columns) == ["participant_id", "repeat", "fold"]
    assert len(folds) == 3 * len(table)
    assert not folds.duplicated(["participant_id", "repeat"]).any()
    for _, one in folds.groupby("repeat"):
        assert set(one["participant_id"]) == set(table["participant_id"])
        assert sorted(one["fold"].unique()) == [0, 1, 2, 3, 4]


def test_folds_are_stratified_by_event() -> None:
    table = _cohort(n=40, n_events=14)
    folds = make_cv_folds(table, n_splits=5, n_repeats=2, seed=0)
    merged = folds.merge(table, on="participant_id")
    per_fold = merged.groupby(["repeat", "fold"])["recurrence"].agg(["sum", "size"])
    for _, counts in per_fold.groupby(level="repeat"):
        assert counts["sum"].max() - counts["sum"].min() <= 1
        assert counts["size"].max() - counts["size"].min() <= 1


def test_repeats_differ_and_seed_makes_folds_deterministic() -> None:
    table = _cohort()
    folds = make_cv_folds(table, n_splits=5, n_repeats=2, seed=7)
    pd.testing.assert_frame_equal(folds, make_cv_folds(table, n_splits=5, n_repeats=2, seed=7))
    first = folds[folds["repeat"] == 0]["fold"].to_numpy()
    second = folds[folds["repeat"] == 1]["fold"].to_numpy()
    assert not np.array_equal(first, second)
    other_seed = make_cv_folds(table, n_splits=5, n_repeats=2, seed=8)
    assert not np.array_equal(other_seed["fold"].to_numpy(), folds["fold"].to_numpy())


def test_too_few_events_for_the_folds_is_an_error() -> None:
    table = _cohort(n=20, n_events=4)
    with pytest.raises(ValueError, match=r"4 events and 16 censored .* n_splits=5"):
        make_cv_folds(table, n_splits=5)
    assert len(make_cv_folds(table, n_splits=4)) == 20


def test_too_few_censored_patients_is_an_error() -> None:
    table = _cohort(n=12, n_events=10)
    with pytest.raises(ValueError, match="2 censored"):
        make_cv_folds(table, n_splits=3)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pd.DataFrame({"participant_id": ["sub-1"]}), "lacks columns"),
        (pd.DataFrame({"participant_id": ["sub-1", "sub-1"], "recurrence": [0, 1]}), "duplicate"),
        (pd.DataFrame({"participant_id": ["sub-1", "sub-2"], "recurrence": [0, 2]}), "0 or 1"),
    ],
)
def test_bad_table_is_an_error(table: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_cv_folds(table, n_splits=2)


def test_cv_config_rejects_a_single_fold() -> None:
    with pytest.raises(ValidationError, match="n_splits"):
        CVConfig(n_splits=1)
