from __future__ import annotations

import numpy as np
import pytest
from sksurv.metrics import concordance_index_censored

from tests.evaluation import make_cohort, make_oof
from tle_kedro.evaluation.comparison import (
    COMPARISON_COLUMNS,
    INTERVAL_COLUMNS,
    comparison_table,
    evaluate_models,
    to_markdown,
)


@pytest.fixture(scope="module")
def cohort():
    clinical, truth = make_cohort(120, seed=2)
    return clinical, truth, make_oof(truth)


@pytest.fixture(scope="module")
def result(cohort):
    clinical, truth, oof = cohort
    return evaluate_models(oof, clinical, truth, n_boot=200, n_boot_secondary=20, seed=0)


def test_table_has_exactly_the_contract_columns_and_reference_first(cohort):
    clinical, _, oof = cohort
    table = comparison_table(oof, clinical, n_boot=50, n_boot_secondary=0)
    assert tuple(table.columns) == COMPARISON_COLUMNS
    assert table["model"].tolist() == ["transeprelap", "late_fusion", "cox_clinical"]


def test_ground_truth_adds_oracle_c_equal_to_sksurv_and_the_gap(cohort, result):
    clinical, truth, _ = cohort
    table = result.comparison
    assert tuple(table.columns) == (*COMPARISON_COLUMNS, "oracle_c", "gap_to_oracle")
    merged = clinical.merge(truth, on="participant_id")
    expected = concordance_index_censored(
        merged["recurrence"].astype(bool), merged["time_months"], merged["true_log_hazard"]
    )[0]
    assert (table["oracle_c"] == expected).all()
    np.testing.assert_allclose(table["gap_to_oracle"], expected - table["harrell_c"])


def test_reference_delta_is_zero_and_others_match_point_difference(result):
    table = result.comparison.set_index("model")
    assert table.loc[
        "transeprelap", ["delta_c_vs_transeprelap", "delta_lo", "delta_hi"]
    ].tolist() == [
        0.0,
        0.0,
        0.0,
    ]
    ref = table.loc["transeprelap", "harrell_c"]
    for model in ("late_fusion", "cox_clinical"):
        assert table.loc[model, "delta_c_vs_transeprelap"] == pytest.approx(
            ref - table.loc[model, "harrell_c"]
        )
    # the noisiest model is clearly worse than the reference (paired interval above 0)
    assert table.loc["cox_clinical", "delta_lo"] > 0


def test_intervals_table_contains_each_metric_for_each_model(result):
    iv = result.intervals
    assert tuple(iv.columns) == INTERVAL_COLUMNS
    calibration = {f"cal_{k}_{t}" for k in ("slope", "intercept") for t in (12, 24)}
    assert set(iv["metric"]) == {"harrell_c", "uno_c", "auc_12", "auc_24", "ibs", *calibration}
    assert len(iv) == 9 * 3
    harrell = iv[iv["metric"] == "harrell_c"]
    assert (harrell["n_valid"] == 200).all()
    assert ((iv["lo"] <= iv["estimate"]) & (iv["estimate"] <= iv["hi"])).all()
    assert result.harrell_samples.shape == (3, 200)
    assert set(result.calibration) == {"transeprelap", "late_fusion", "cox_clinical"}


def test_same_seed_gives_identical_table(cohort, result):
    clinical, truth, oof = cohort
    again = evaluate_models(oof, clinical, truth, n_boot=200, n_boot_secondary=20, seed=0)
    assert again.comparison.equals(result.comparison)


def test_ground_truth_missing_patients_is_an_error(cohort):
    clinical, truth, oof = cohort
    with pytest.raises(ValueError, match="no true_log_hazard"):
        comparison_table(oof, clinical, truth.iloc[5:], n_boot=10, n_boot_secondary=0)


def test_markdown_has_header_separator_and_one_line_per_model(result):
    md = to_markdown(result.comparison, digits=3).splitlines()
    assert md[0].startswith("| model | harrell_c | harrell_c_lo")
    assert md[1].startswith("|:---|---:")
    assert len(md) == 2 + 3
    c = result.comparison["harrell_c"].iloc[0]
    assert md[2].startswith(f"| transeprelap | {c:.3f} |")
