from __future__ import annotations

import numpy as np
import pytest
from sksurv.metrics import concordance_index_censored, concordance_index_ipcw
from sksurv.util import Surv

from tle_kedro.evaluation import bootstrap as bs


def _cohort(n: int, seed: int, ties: bool = True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = rng.weibull(0.8, n) * 30 * np.exp(-0.5 * x)
    c = rng.uniform(12, 36, n)
    time, event = np.minimum(t, c), t <= c
    risk = x + rng.normal(size=n)
    if ties:  # tied times (events and censored) and tied risks, like rounded clinical data
        time, risk = np.ceil(time), np.round(risk, 1)
    return time, event, risk


def test_kernel_equals_sksurv_harrell_exactly_on_the_original_data():
    time, event, risk = _cohort(120, 0)
    c = bs.harrell_c_bootstrap(time, event, risk[None], np.ones((1, 120)))
    assert c[0, 0] == concordance_index_censored(event, time, risk)[0]


def test_kernel_with_integer_weights_equals_sksurv_on_the_resampled_data():
    time, event, risk = _cohort(80, 1)
    idx = bs.resample_indices(80, 15, seed=5)
    c = bs.harrell_c_bootstrap(time, event, risk[None], bs.resample_counts(idx, 80))[0]
    for b, i in enumerate(idx):
        assert c[b] == concordance_index_censored(event[i], time[i], risk[i])[0]


def test_uno_kernel_equals_sksurv_ipcw_on_resamples():
    time, event, risk = _cohort(80, 2)
    idx = bs.resample_indices(80, 10, seed=6)
    c = bs.uno_c_bootstrap(time, event, risk[None], bs.resample_counts(idx, 80), tau=24.0)[0]
    for b, i in enumerate(idx):
        y = Surv.from_arrays(event[i], time[i])
        assert c[b] == pytest.approx(concordance_index_ipcw(y, y, risk[i], tau=24.0)[0], abs=1e-12)


def test_c_of_negated_risk_is_one_minus_c_without_ties():
    time, event, risk = _cohort(100, 3, ties=False)
    counts = bs.resample_counts(bs.resample_indices(100, 50, seed=0), 100)
    c = bs.harrell_c_bootstrap(time, event, np.stack([risk, -risk]), counts)
    np.testing.assert_allclose(c[1], 1.0 - c[0], atol=1e-12)


def test_resample_counts_sum_to_n_and_match_indices():
    idx = bs.resample_indices(30, 7, seed=1)
    counts = bs.resample_counts(idx, 30)
    assert counts.shape == (7, 30)
    assert (counts.sum(axis=1) == 30).all()
    assert counts[3, idx[3, 0]] == np.sum(idx[3] == idx[3, 0])


def test_bootstrap_is_deterministic_given_the_seed():
    time, event, risk = _cohort(60, 4)
    a = bs.resample_counts(bs.resample_indices(60, 20, seed=11), 60)
    b = bs.resample_counts(bs.resample_indices(60, 20, seed=11), 60)
    c = bs.resample_counts(bs.resample_indices(60, 20, seed=12), 60)
    run = lambda w: bs.harrell_c_bootstrap(time, event, risk[None], w)  # noqa: E731
    np.testing.assert_array_equal(run(a), run(b))
    assert not np.array_equal(run(a), run(c))


def _interval(n: int):
    time, event, risk = _cohort(n, 5, ties=False)
    est = concordance_index_censored(event, time, risk)[0]
    counts = bs.resample_counts(bs.resample_indices(n, 500, seed=0), n)
    return bs.percentile_interval(est, bs.harrell_c_bootstrap(time, event, risk[None], counts)[0])


def test_interval_contains_estimate_and_shrinks_with_sample_size():
    small, large = _interval(100), _interval(1000)
    for iv in (small, large):
        assert iv.lo < iv.estimate < iv.hi
        assert iv.n_valid == 500 and iv.n_skipped == 0
    assert (large.hi - large.lo) < 0.6 * (small.hi - small.lo)


def test_paired_difference_of_a_model_with_itself_is_exactly_zero():
    time, event, risk = _cohort(90, 6)
    counts = bs.resample_counts(bs.resample_indices(90, 200, seed=0), 90)
    c = bs.harrell_c_bootstrap(time, event, np.stack([risk, risk]), counts)
    iv = bs.paired_difference(c[0], c[1], 0.0)
    assert (iv.estimate, iv.lo, iv.hi) == (0.0, 0.0, 0.0)


def test_degenerate_resamples_are_nan_skipped_and_counted():
    time = np.array([1.0, 2.0, 3.0, 4.0])
    event = np.array([True, False, False, False])
    counts = np.array([[1, 1, 1, 1], [0, 2, 1, 1], [4, 0, 0, 0]], dtype=float)
    c = bs.harrell_c_bootstrap(time, event, np.array([[4.0, 3.0, 2.0, 1.0]]), counts)[0]
    assert c[0] == 1.0 and np.isnan(c[1]) and np.isnan(c[2])
    u = bs.uno_c_bootstrap(time, event, np.array([[4.0, 3.0, 2.0, 1.0]]), counts, tau=3.5)[0]
    assert np.isnan(u[1])
    iv = bs.percentile_interval(1.0, c)
    assert (iv.n_valid, iv.n_skipped) == (1, 2)


def test_loop_bootstrap_applies_metric_to_each_resample():
    idx = bs.resample_indices(10, 4, seed=0)
    out = bs.loop_bootstrap(lambda i: float(i.sum()), idx)
    np.testing.assert_array_equal(out, idx.sum(axis=1))


def test_bad_level_and_sizes_are_rejected():
    with pytest.raises(ValueError, match="level"):
        bs.percentile_interval(0.5, np.ones(3), level=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        bs.resample_indices(1, 10, seed=0)
