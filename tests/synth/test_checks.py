"""The default 220-patient cohort meets its targets (tables only, no images)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tle_synth.checks import clinical_cox_c_index, cohort_summary, oracle_c_index
from tle_synth.generate import draw_cohort


@pytest.fixture(scope="module")
def default_summary() -> dict[str, float]:
    cohort = draw_cohort(None)  # the defaults = conf/base/parameters_demo_cohort.yml
    return cohort_summary(cohort.participants, cohort.ground_truth)


def test_oracle_c_index_is_between_080_and_090(default_summary) -> None:
    assert 0.80 <= default_summary["oracle_c_index"] <= 0.90


def test_a_cox_on_the_true_lesion_terms_comes_close_to_the_oracle(default_summary) -> None:
    assert default_summary["latent_cox_c_index"] >= default_summary["oracle_c_index"] - 0.03


def test_clinical_only_cox_stays_at_most_060(default_summary) -> None:
    assert default_summary["clinical_cox_c_index"] <= 0.60


def test_event_rate_followup_and_reference_marginals(default_summary) -> None:
    s = default_summary
    assert s["n_patients"] == 220
    assert 0.30 <= s["event_rate"] <= 0.40
    assert 20 <= s["median_admin_followup_months"] <= 28
    assert s["male_fraction"] == pytest.approx(0.6, abs=0.02)
    assert s["median_onset_months"] == pytest.approx(144, abs=5)
    assert s["median_surgery_months"] == pytest.approx(276, abs=15)
    assert s["median_duration_months"] == pytest.approx(127, abs=5)
    assert 0.02 <= s["missing_fraction"] <= 0.04


def test_oracle_c_index_of_a_perfect_and_a_reversed_score() -> None:
    participants = pd.DataFrame(
        {"participant_id": ["a", "b", "c"], "time_months": [1.0, 2.0, 3.0], "recurrence": [1, 1, 1]}
    )
    truth = pd.DataFrame({"participant_id": ["a", "b", "c"], "true_log_hazard": [3.0, 2.0, 1.0]})
    assert oracle_c_index(participants, truth) == 1.0
    truth["true_log_hazard"] *= -1
    assert oracle_c_index(participants, truth) == 0.0


def test_clinical_cox_finds_a_strong_clinical_signal_when_there_is_one() -> None:
    cohort = draw_cohort({"n_patients": 200, "seed": 5})
    table = cohort.participants.copy()
    rng = np.random.default_rng(0)
    # plant the outcome into a clinical column: the check must see it
    table["seizure_frequency_per_month"] = -table["time_months"] + rng.normal(0, 1, len(table))
    assert clinical_cox_c_index(table) > 0.75


def test_clinical_cox_imputes_integer_columns_with_a_fractional_median() -> None:
    table = draw_cohort({"n_patients": 41, "seed": 2}).participants.copy()
    table["age_at_onset_months"] = pd.array([1] * 20 + [2] * 20 + [None], dtype="Int64")
    c = clinical_cox_c_index(table, n_splits=3)  # median 1.5 must fill an Int64 column
    assert 0.0 <= c <= 1.0
