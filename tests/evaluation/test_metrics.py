from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.util import Surv

from tests.evaluation import make_cohort, make_oof
from tle_kedro.evaluation.concordance import harrell_c
from tle_kedro.evaluation.metrics import (
    integrated_brier,
    point_metrics,
    prepare_eval_data,
    safe_metric,
    survival_columns,
    uno_c,
)


@pytest.fixture(scope="module")
def cohort():
    clinical, truth = make_cohort(150, seed=3)
    return clinical, truth, make_oof(truth, repeats=2)


def test_survival_columns_are_parsed_and_sorted_by_time():
    cols = ["risk", "surv_24", "surv_6", "surv_12.5", "survival", "surv_x"]
    assert survival_columns(cols) == {"surv_6": 6.0, "surv_12.5": 12.5, "surv_24": 24.0}


def test_predictions_are_averaged_over_repeats_and_reference_model_comes_first(cohort):
    clinical, _, oof = cohort
    data = prepare_eval_data(oof, clinical)
    assert data.models[0] == "transeprelap"
    m = data.models.index("late_fusion")
    pid = data.participant_id[7]
    rows = oof[(oof["model"] == "late_fusion") & (oof["participant_id"] == pid)]
    assert len(rows) == 2
    assert data.risk[m, 7] == pytest.approx(rows["risk"].mean())
    assert data.surv_at(m, 12.0)[7] == pytest.approx(rows["surv_12"].mean())
    assert data.surv.shape == (3, 150, 5)


def test_models_covering_different_patients_are_rejected(cohort):
    clinical, _, oof = cohort
    drop = (oof["model"] == "cox_clinical") & (oof["participant_id"] == "sub-0001")
    with pytest.raises(ValueError, match="do not cover the same patients"):
        prepare_eval_data(oof[~drop], clinical)


def test_missing_columns_and_non_finite_predictions_are_reported(cohort):
    clinical, _, oof = cohort
    with pytest.raises(ValueError, match="missing column"):
        prepare_eval_data(oof.drop(columns="risk"), clinical)
    bad = oof.copy()
    bad.loc[3, "surv_12"] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        prepare_eval_data(bad, clinical)


def test_surv_at_unknown_time_names_the_missing_column(cohort):
    clinical, _, oof = cohort
    data = prepare_eval_data(oof, clinical)
    with pytest.raises(ValueError, match="surv_15"):
        data.surv_at(0, 15.0)


def test_point_metrics_equal_sksurv_on_the_averaged_predictions(cohort):
    clinical, _, oof = cohort
    data = prepare_eval_data(oof, clinical)
    table = point_metrics(data, tau=24.0)
    y = Surv.from_arrays(data.event, data.time)
    for m, name in enumerate(data.models):
        ref_h = concordance_index_censored(data.event, data.time, data.risk[m])[0]
        ref_u = concordance_index_ipcw(y, y, data.risk[m], tau=24.0)[0]
        assert table.loc[name, "harrell_c"] == ref_h
        assert table.loc[name, "uno_c"] == ref_u
    assert list(table.columns) == ["harrell_c", "uno_c", "auc_12", "auc_24", "ibs"]
    for m, name in enumerate(data.models):
        ref_ibs = integrated_brier_score(y, y, data.surv[m], data.surv_times)
        assert table.loc[name, "ibs"] == pytest.approx(ref_ibs, abs=1e-12)
        ref_auc, _ = cumulative_dynamic_auc(y, y, data.risk[m], [12.0, 24.0])
        assert table.loc[name, ["auc_12", "auc_24"]].tolist() == pytest.approx(ref_auc.tolist())


def test_ibs_needs_two_survival_times_in_range(cohort):
    clinical, _, oof = cohort
    data = prepare_eval_data(oof, clinical)
    with pytest.raises(ValueError, match="ibs_range"):
        point_metrics(data, tau=24.0, ibs_range=(20.0, 26.0))


def test_perfect_survival_predictions_have_lower_ibs_than_uninformative_ones(cohort):
    clinical, _, oof = cohort
    data = prepare_eval_data(oof, clinical)
    times = data.surv_times
    good = integrated_brier(data.time, data.event, data.surv[0], times)
    flat = np.tile(data.surv[0].mean(axis=0), (len(data.time), 1))
    assert good < integrated_brier(data.time, data.event, flat, times)


def test_degenerate_sample_gives_nan_not_an_exception():
    time = np.array([1.0, 2.0, 3.0])
    event = np.zeros(3, dtype=bool)
    assert np.isnan(safe_metric(harrell_c, np.arange(3.0), event, time))
    assert np.isnan(safe_metric(uno_c, time, event, np.arange(3.0), 2.5))


def test_patients_without_outcome_are_left_out_with_a_warning(cohort, caplog):
    clinical, _, oof = cohort
    data = prepare_eval_data(oof, clinical.iloc[10:])
    assert len(data.participant_id) == 140
    assert "no outcome" in caplog.text
    assert isinstance(pd.Series(data.participant_id).iloc[0], str)
