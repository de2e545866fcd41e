"""Clinical table of the demo cohort: reference marginals, missingness, sidecar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tle_synth.clinical import (
    MAY_BE_MISSING,
    NEVER_MISSING,
    PARTICIPANT_COLUMNS,
    apply_missingness,
    participant_ids,
    participants_sidecar,
    sample_clinical,
)
from tle_synth.config import HISTORY_ITEMS, ClinicalConfig


@pytest.fixture(scope="module")
def large_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    side = np.where(rng.random(4000) < 0.5, "L", "R")
    return sample_clinical(4000, side, ClinicalConfig(), rng)


def test_sex_ratio_is_exactly_the_reference_sixty_percent_male(large_table) -> None:
    assert (large_table["sex"] == "M").mean() == pytest.approx(0.6, abs=1e-3)


def test_age_medians_match_the_reference_cohort(large_table) -> None:
    assert large_table["age_at_onset_months"].median() == pytest.approx(144, abs=1)
    assert large_table["epilepsy_duration_months"].median() == pytest.approx(127, abs=1)
    assert large_table["age_at_surgery_months"].median() == pytest.approx(276, rel=0.03)


def test_duration_is_surgery_minus_onset_and_positive(large_table) -> None:
    t = large_table
    assert (
        t["epilepsy_duration_months"] == t["age_at_surgery_months"] - t["age_at_onset_months"]
    ).all()
    assert (t["epilepsy_duration_months"] >= 1).all()


def test_history_items_occur_at_their_configured_rates(large_table) -> None:
    rates = ClinicalConfig().history_rates
    for item in HISTORY_ITEMS:
        assert set(large_table[item].unique()) <= {0, 1}
        assert large_table[item].mean() == pytest.approx(rates[item], abs=0.03), item


def test_missingness_only_touches_non_outcome_columns() -> None:
    table = pd.DataFrame({c: ["x"] * 3000 for c in PARTICIPANT_COLUMNS})
    table["hypoxia"] = 1
    out = apply_missingness(table, 0.03, np.random.default_rng(1))
    assert out[list(NEVER_MISSING)].notna().all().all()
    fraction = out[list(MAY_BE_MISSING)].isna().to_numpy().mean()
    assert fraction == pytest.approx(0.03, abs=0.005)
    assert str(out["hypoxia"].dtype) == "Int64"  # integers stay integers ("1", not "1.0")
    assert table.notna().all().all()  # input not mutated


def test_participant_ids_are_zero_padded_and_bids_safe() -> None:
    assert participant_ids(3) == ["sub-001", "sub-002", "sub-003"]
    assert participant_ids(1200)[-1] == "sub-1200"


def test_sidecar_describes_every_column() -> None:
    sidecar = participants_sidecar()
    assert list(sidecar) == list(PARTICIPANT_COLUMNS)
    assert all(entry["Description"] for entry in sidecar.values())
    assert set(sidecar["mri_finding"]["Levels"]) == {
        "normal",
        "hippocampal_sclerosis",
        "other_lesion",
    }
