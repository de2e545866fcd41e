"""The discrete-time head: survival curves, risk summary, mixtures and the built networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.training import tiny_cohort
from tle_kedro.features.clinical import ClinicalTokenizer
from tle_kedro.models.config import ModelConfig
from tle_kedro.models.discrete import (
    DiscreteTimeSurvival,
    mixture_logits,
    risk_summary,
    survival_from_logits,
)
from tle_kedro.models.ensemble import MeanEnsemble
from tle_kedro.models.factory import build_model
from tle_kedro.training.data import make_survival_arrays

BINS = (3.0, 6.0, 12.0, 24.0)


def _logits(n: int = 20, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(-1.5, 1.5, (n, len(BINS) + 1))


def test_survival_is_one_at_zero_monotone_and_a_probability() -> None:
    times = np.linspace(0.0, 40.0, 161)
    surv = survival_from_logits(_logits(), BINS, times)
    assert surv.shape == (20, 161)
    np.testing.assert_allclose(surv[:, 0], 1.0)
    assert np.all(np.diff(surv, axis=1) <= 1e-15)
    assert np.all((surv > 0) & (surv <= 1))


def test_survival_at_the_edges_is_the_product_of_one_minus_the_hazards() -> None:
    logits = _logits()
    hazard = 1 / (1 + np.exp(-logits))
    expected = np.cumprod(1 - hazard[:, :4], axis=1)  # S(3), S(6), S(12), S(24)
    np.testing.assert_allclose(survival_from_logits(logits, BINS, np.array(BINS)), expected)


def test_inside_a_bin_the_hazard_rate_is_constant_and_past_the_last_edge_s_is_held() -> None:
    logits = _logits(3)
    s = survival_from_logits(logits, BINS, np.array([6.0, 8.0, 12.0, 24.0, 30.0, 99.0]))
    # 6 -> 8 is a third of the bin 6-12: log S moves by a third of log(1 - h_2)
    np.testing.assert_allclose(np.log(s[:, 1] / s[:, 0]), np.log(s[:, 2] / s[:, 0]) / 3)
    np.testing.assert_allclose(s[:, 4], s[:, 3])
    np.testing.assert_allclose(s[:, 5], s[:, 3])
    assert survival_from_logits(logits, BINS, 12.0).shape == (3,)


def test_the_risk_is_log_minus_log_s24_and_rises_with_any_early_hazard() -> None:
    logits = _logits()
    risk = risk_summary(torch.from_numpy(logits), BINS).numpy()
    s24 = survival_from_logits(logits, BINS, 24.0)
    np.testing.assert_allclose(risk, np.log(-np.log(s24)), rtol=1e-10)
    for k in range(4):
        up = logits.copy()
        up[:, k] += 0.5
        assert np.all(risk_summary(torch.from_numpy(up), BINS).numpy() > risk)
    up = logits.copy()
    up[:, 4] += 0.5  # the open bin after 24 months does not enter the 24-month risk
    np.testing.assert_allclose(risk_summary(torch.from_numpy(up), BINS).numpy(), risk)


def test_risk_stays_finite_for_tiny_hazards() -> None:
    risk = risk_summary(torch.full((2, 5), -200.0), BINS)
    assert torch.isfinite(risk).all() and float(risk[0]) < -190


def test_a_mixture_is_the_mean_survival_curve_at_every_edge() -> None:
    a, b = torch.from_numpy(_logits(seed=1)), torch.from_numpy(_logits(seed=2))
    mixed = mixture_logits([a, b], BINS).numpy()
    edges = np.array(BINS)
    mean = (
        survival_from_logits(a.numpy(), BINS, edges) + survival_from_logits(b.numpy(), BINS, edges)
    ) / 2
    np.testing.assert_allclose(survival_from_logits(mixed, BINS, edges), mean, rtol=1e-6)
    np.testing.assert_allclose(mixture_logits([a], BINS).numpy(), a.numpy(), atol=1e-6)


def test_model_config_validates_the_head_and_its_bins() -> None:
    assert ModelConfig().head == "cox" and ModelConfig().head_outputs == 1
    assert ModelConfig(head="discrete").head_outputs == 5
    with pytest.raises(ValueError, match="time_bins_months"):
        ModelConfig(head="discrete", time_bins_months=(6.0, 3.0))
    with pytest.raises(ValueError, match="head"):
        ModelConfig(head="weibull")  # type: ignore[arg-type]


TINY = ModelConfig(
    grid_shape=(16, 16, 16), widths=(2, 2, 4, 4), d_model=8, n_heads=2, head="discrete"
)


@pytest.mark.parametrize("kind", ["transeprelap", "resnet_image", "late_fusion"])
def test_every_neural_model_builds_a_discrete_head(kind: str) -> None:
    cohort = tiny_cohort(4)
    tok = ClinicalTokenizer().fit(cohort.clinical)
    ids = list(cohort.clinical["participant_id"])
    batch = make_survival_arrays(ids, cohort.images, tok, cohort.clinical).batch()
    torch.manual_seed(0)
    model = build_model(kind, TINY, len(tok.numeric_names), list(tok.cardinalities), tok.side_index)
    model.eval()
    assert isinstance(model, DiscreteTimeSurvival) and model.time_bins == BINS
    with torch.no_grad():
        logits, risk = model.logits(batch), model(batch)
    assert logits.shape == (4, 5) and risk.shape == (4,)
    torch.testing.assert_close(risk, risk_summary(logits, BINS))
    cox = build_model(
        kind,
        TINY.model_copy(update={"head": "cox"}),
        len(tok.numeric_names),
        list(tok.cardinalities),
    )
    with torch.no_grad():
        assert cox.eval()(batch).shape == (4,)
    ensemble = MeanEnsemble([model, model])
    with torch.no_grad():
        torch.testing.assert_close(ensemble.logits(batch), logits, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="one head"):
        MeanEnsemble([model, cox])
