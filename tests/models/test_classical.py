"""Classical baselines: Cox PH and random survival forest (scikit-survival)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from tle_kedro.evaluation.concordance import harrell_c
from tle_kedro.models.classical import (
    combine,
    fit_cox_clinical,
    fit_cox_region_measures,
    fit_rsf,
    step_survival_at,
)


def _table(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Five features; the log-hazard is 1.5 * x0 (a strong signal), x1 partly missing."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, 5)), columns=[f"x{i}" for i in range(5)])
    time = rng.exponential(20.0 * np.exp(-1.5 * x["x0"].to_numpy()))
    event = time < 24.0
    time = np.minimum(time, 24.0) + 0.01
    x.loc[x.index[:10], "x1"] = np.nan
    return x, time, event


@pytest.mark.parametrize("fit", ["cox", "rsf"])
def test_baseline_beats_random_on_a_strong_signal(fit: str) -> None:
    x, time, event = _table(200, seed=1)
    xt, tt, et = _table(80, seed=2)
    if fit == "cox":
        model = fit_cox_clinical(x, time, event, penalizer=0.1)
    else:
        model = fit_rsf(x, time, event, n_estimators=50, min_samples_leaf=5, seed=0)
    pred = model.predict(xt)
    assert harrell_c(pred.risk, et, tt) > 0.75
    assert np.all((pred.surv_12 >= pred.surv_24) & (pred.surv_24 >= 0) & (pred.surv_12 <= 1))


def test_imputation_uses_training_medians_only() -> None:
    x, time, event = _table(60, seed=3)
    model = fit_cox_clinical(x, time, event)
    medians = model.preprocess.named_steps["impute"].statistics_
    np.testing.assert_allclose(medians, np.nanmedian(x.to_numpy(), axis=0))
    test = x.iloc[:5].copy()
    test["x1"] = np.nan  # all missing at prediction time: imputed, no NaN in the output
    assert np.isfinite(model.predict(test).risk).all()


def test_rsf_is_seeded_and_picklable() -> None:
    x, time, event = _table(80, seed=4)
    a = fit_rsf(x, time, event, n_estimators=20, seed=7)
    b = pickle.loads(pickle.dumps(fit_rsf(x, time, event, n_estimators=20, seed=7)))
    np.testing.assert_array_equal(a.predict(x).risk, b.predict(x).risk)


def test_clinical_imaging_model_uses_both_blocks_and_rejects_shared_columns() -> None:
    x, time, event = _table(80, seed=5)
    clin, img = x[["x1", "x2"]], x[["x0", "x3"]].rename(columns=lambda c: f"img_{c}")
    model = fit_cox_region_measures(clin, img, time, event)
    assert model.feature_names == ["x1", "x2", "img_x0", "img_x3"]
    assert model.name == "cox_region_measures"
    assert model.predict(combine(clin, img)).risk.shape == (80,)
    with pytest.raises(ValueError, match="share columns"):
        combine(clin, clin)


def test_no_event_in_training_is_a_clear_error() -> None:
    x, time, _ = _table(20, seed=6)
    with pytest.raises(ValueError, match="no event"):
        fit_cox_clinical(x, time, np.zeros(20, bool))


def test_step_lookup_is_right_continuous_and_holds_the_last_value() -> None:
    grid = np.array([5.0, 10.0, 20.0])
    surv = np.array([[0.9, 0.8, 0.5]])
    out = step_survival_at(grid, surv, (1.0, 5.0, 12.0, 20.0, 99.0))
    np.testing.assert_allclose(out, [[1.0, 0.9, 0.8, 0.5, 0.5]])
