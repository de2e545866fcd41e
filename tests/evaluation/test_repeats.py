from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sksurv.metrics import concordance_index_censored

from tests.evaluation import make_cohort, make_oof
from tle_kedro.evaluation.comparison import evaluate_models
from tle_kedro.evaluation.metrics import prepare_eval_data
from tle_kedro.evaluation.repeats import (
    align_repeats,
    corrected_resampled_t,
    fold_harrell_c,
    nadeau_bengio_deltas,
)


def test_corrected_t_matches_a_hand_computation():
    d = np.array([0.02, 0.05, -0.01, 0.04, 0.03, 0.01])  # K = 3 folds x R = 2 repeats
    iv = corrected_resampled_t(d, test_train_ratio=0.5, level=0.95)
    # mean 0.14 / 6; the squared deviations sum to 7 / 3000 (by hand); var = that / (J - 1)
    mean, var = 0.14 / 6, (7 / 3000) / 5
    half = 2.5705818366 * np.sqrt((1 / 6 + 0.5) * var)  # t_{5, 0.975}
    assert iv.estimate == pytest.approx(mean, abs=1e-12)
    assert (iv.lo, iv.hi) == pytest.approx((mean - half, mean + half), abs=1e-9)
    assert (iv.n_valid, iv.n_skipped) == (6, 0)


def test_corrected_t_is_wider_than_the_naive_t_and_skips_degenerate_folds():
    d = np.array([0.02, 0.05, np.nan, 0.04, 0.03, 0.01])
    corrected = corrected_resampled_t(d, test_train_ratio=0.25)
    naive = corrected_resampled_t(d, test_train_ratio=0.0)
    assert corrected.hi - corrected.lo > naive.hi - naive.lo
    assert (corrected.n_valid, corrected.n_skipped) == (5, 1)
    assert np.isnan(corrected_resampled_t(np.array([0.1, np.nan]), 0.25).lo)


@pytest.fixture(scope="module")
def cohort():
    clinical, truth = make_cohort(150, seed=4)
    return clinical, truth


def test_fold_c_is_sksurv_on_each_test_fold_of_each_repeat(cohort):
    clinical, truth = cohort
    oof = make_oof(truth, repeats=2, n_splits=3)
    data = prepare_eval_data(oof, clinical)
    preds = align_repeats(oof, data)
    c, n_test = fold_harrell_c(data.time, data.event, preds)
    assert c.shape == (3, 6) and n_test.sum() == 2 * 150
    test = preds.fold[1] == 2  # repeat 1, fold 2 = column 5
    expected = concordance_index_censored(
        data.event[test], data.time[test], preds.risk[0, 1, test]
    )[0]
    assert c[0, 5] == expected


def test_with_one_repeat_the_interval_is_over_the_folds(cohort):
    clinical, truth = cohort
    oof = make_oof(truth, repeats=1, n_splits=5)
    data = prepare_eval_data(oof, clinical)
    intervals = nadeau_bengio_deltas(data.time, data.event, align_repeats(oof, data), 0)
    assert [iv.n_valid for iv in intervals] == [5, 5, 5]
    assert (intervals[0].lo, intervals[0].hi) == (0.0, 0.0)  # reference minus itself


def _table(oof, clinical, truth, n_boot=300):
    return evaluate_models(oof, clinical, truth, n_boot=n_boot, n_boot_secondary=0, seed=3)


def test_two_identical_repeats_give_exactly_the_one_repeat_table(cohort):
    clinical, truth = cohort
    one = make_oof(truth, repeats=1)
    two = pd.concat([one, one.assign(repeat=1)], ignore_index=True)
    a = _table(one, clinical, truth).comparison
    b = _table(two, clinical, truth).comparison
    cols = ["harrell_c", "harrell_c_lo", "harrell_c_hi", "uno_c", "delta_lo", "delta_hi"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    # the corrected t sees the same differences twice: same mean, narrower 1/J term
    np.testing.assert_allclose(a["delta_nb"], b["delta_nb"], atol=1e-12)


def test_point_c_is_the_mean_over_repeats_of_each_repeats_pooled_c(cohort):
    clinical, truth = cohort
    oof = make_oof(truth, repeats=3)
    table = _table(oof, clinical, truth, n_boot=20).comparison.set_index("model")
    merged = clinical.merge(oof, on="participant_id")
    per_repeat = [
        concordance_index_censored(
            part["recurrence"].astype(bool), part["time_months"], part["risk"]
        )[0]
        for _, part in merged[merged["model"] == "late_fusion"].groupby("repeat")
    ]
    assert table.loc["late_fusion", "harrell_c"] == pytest.approx(np.mean(per_repeat), abs=1e-12)


def test_repeats_that_disagree_widen_the_corrected_t_interval(cohort):
    clinical, truth = cohort
    one = make_oof(truth, repeats=1)
    agree = pd.concat([one, one.assign(repeat=1)])
    second = one.assign(repeat=1)  # same folds; cox_clinical ranks backwards in repeat 1
    flipped = second["model"] == "cox_clinical"
    second.loc[flipped, "risk"] = -second.loc[flipped, "risk"]
    disagree = pd.concat([one, second])
    width = {}
    for name, oof in (("agree", agree), ("disagree", disagree)):
        row = _table(oof, clinical, truth, n_boot=20).comparison.set_index("model")
        width[name] = (
            row.loc["cox_clinical", "delta_nb_hi"] - row.loc["cox_clinical", "delta_nb_lo"]
        )
    assert width["disagree"] > width["agree"]


def test_a_planted_difference_gives_intervals_excluding_zero(cohort):
    clinical, truth = cohort
    oof = make_oof(truth, repeats=3, noise=(0.3, 0.3, 3.0))  # cox_clinical: mostly noise
    table = _table(oof, clinical, truth).comparison.set_index("model")
    row = table.loc["cox_clinical"]
    assert row["delta_lo"] > 0 and row["delta_nb_lo"] > 0
    assert row["delta_lo"] < row["delta_c_vs_transeprelap"] < row["delta_hi"]


def test_no_difference_gives_intervals_containing_zero(cohort):
    clinical, truth = cohort
    oof = make_oof(truth, repeats=3, noise=(0.8, 0.8, 0.8), seed=5)
    row = _table(oof, clinical, truth).comparison.set_index("model").loc["late_fusion"]
    assert row["delta_lo"] < 0 < row["delta_hi"]
    assert row["delta_nb_lo"] < 0 < row["delta_nb_hi"]


def test_models_tested_on_other_folds_are_an_error(cohort):
    clinical, truth = cohort
    oof = make_oof(truth, repeats=1)
    other = oof["model"] == "cox_clinical"
    oof.loc[other, "fold"] = (oof.loc[other, "fold"] + 1) % 5
    with pytest.raises(ValueError, match="same cv_folds"):
        align_repeats(oof, prepare_eval_data(oof, clinical))


def test_a_repeat_missing_for_one_model_is_an_error(cohort):
    clinical, truth = cohort
    oof = make_oof(truth, repeats=2)
    oof = oof[~((oof["model"] == "late_fusion") & (oof["repeat"] == 1))]
    with pytest.raises(ValueError, match="late_fusion"):
        align_repeats(oof, prepare_eval_data(oof, clinical))


def test_every_model_in_the_predictions_gets_a_row_whatever_its_name(cohort):
    clinical, truth = cohort
    models = ("cox_region_measures", "transeprelap", "transeprelap_no_region_tokens")
    oof = make_oof(truth, models=models, noise=(0.5, 0.5, 0.7))
    table = _table(oof, clinical, truth, n_boot=20).comparison
    assert table["model"].tolist() == [
        "transeprelap",
        "cox_region_measures",
        "transeprelap_no_region_tokens",
    ]
    assert table[["delta_lo", "delta_nb_lo"]].notna().all().all()
