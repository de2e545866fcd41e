"""Truth model: log-hazard directions, Weibull times, censoring, Engel consistency."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines.utils import concordance_index

from tle_synth.config import EffectsConfig, LatentConfig, OutcomeConfig
from tle_synth.latent import LATENT_COLUMNS, sample_latent
from tle_synth.outcome import (
    TERM_NAMES,
    log_hazard,
    sample_outcome,
    solve_weibull_scale,
    truth_terms,
)


def _patient(**changes: object) -> dict[str, object]:
    """A fully concordant patient: left HS, left PET, left surgery, no extent."""
    base: dict[str, object] = {
        "operative_side": "L",
        "focus_side": "L",
        "hs_present": True,
        "hs_side": "L",
        "hs_severity": 0.8,
        "hs_position": 0.3,
        "hs_extent": 0.5,
        "pet_side": "L",
        "pet_severity": 0.8,
        "pet_spread": 0.3,
        "pet_position": 0.3,
        "contralateral_ratio": 0.0,
        "extratemporal_severity": 0.0,
        "mri_finding": "hippocampal_sclerosis",
    }
    return {**base, **changes}


def _eta(*patients: dict[str, object]) -> np.ndarray:
    latent = pd.DataFrame(list(patients))
    clinical = pd.DataFrame(
        {
            "secondary_generalization": [0] * len(latent),
            "epilepsy_duration_months": [120] * len(latent),
        }
    )
    return log_hazard(latent, clinical, EffectsConfig())


@pytest.mark.parametrize(
    "change",
    [
        {"pet_side": "R"},
        {"hs_side": "R"},
        {"contralateral_ratio": 0.8},
        {"extratemporal_severity": 0.8},
        {"hs_present": False, "hs_side": "", "hs_severity": 0.0},
        {"pet_spread": 0.9},
        {"pet_position": 0.9},
        {"hs_position": 0.9},
    ],
)
def test_discordance_and_extent_raise_the_log_hazard(change: dict[str, object]) -> None:
    concordant, other = _eta(_patient(), _patient(**change))
    assert other > concordant + 0.5


def test_truth_terms_are_columns_whose_weighted_sum_is_the_log_hazard() -> None:
    latent = pd.DataFrame([_patient(), _patient(pet_side="R"), _patient(hs_position=0.8)])
    clinical = pd.DataFrame(
        {"secondary_generalization": [0, 1, 0], "epilepsy_duration_months": [60, 120, 240]}
    )
    terms = truth_terms(latent, clinical)
    assert list(terms.columns) == list(TERM_NAMES)
    fx = EffectsConfig()
    eta = terms.to_numpy() @ [getattr(fx, name) for name in TERM_NAMES]
    assert np.allclose(log_hazard(latent, clinical, fx), eta - eta.mean())


def test_log_hazard_is_symmetric_in_left_and_right() -> None:
    left = _patient(pet_side="R", contralateral_ratio=0.4)
    right = _patient(
        operative_side="R", focus_side="R", hs_side="R", pet_side="L", contralateral_ratio=0.4
    )
    a, b = _eta(left, right)
    assert a == pytest.approx(b)


def test_solved_weibull_scale_gives_the_target_expected_event_rate() -> None:
    rng = np.random.default_rng(0)
    cfg = OutcomeConfig()
    eta, followup = rng.normal(0, 1.5, 500), rng.uniform(12, 60, 500)
    scale = solve_weibull_scale(eta, followup, cfg)
    expected = 1 - np.exp(-((followup / scale) ** cfg.weibull_shape) * np.exp(eta))
    assert expected.mean() == pytest.approx(cfg.target_event_rate, abs=1e-6)


@pytest.fixture(scope="module")
def outcomes() -> tuple[np.ndarray, pd.DataFrame]:
    eta = np.random.default_rng(1).normal(0, 1.5, 5000)
    return eta, sample_outcome(eta, OutcomeConfig(), np.random.default_rng(2))


def test_outcome_contract_holds(outcomes) -> None:
    _, out = outcomes
    assert (out["time_months"] > 0).all()
    assert set(out["engel_class"]) == {"I", "II", "III", "IV"}
    assert (out["recurrence"] == (out["engel_class"] != "I")).all()
    censored = out["recurrence"] == 0
    assert (out.loc[censored, "time_months"] >= 12).all()  # administrative: >= 12 months
    assert (out["time_months"] <= out["followup_months"] + 0.05).all()


def test_event_rate_followup_and_early_recurrences(outcomes) -> None:
    _, out = outcomes
    assert 0.30 <= out["recurrence"].mean() <= 0.40
    assert out["followup_months"].median() == pytest.approx(24, abs=1)
    assert out["followup_months"].min() >= 12
    events = out[out["recurrence"] == 1]
    assert (events["time_months"] <= 12).mean() > 0.6  # Weibull shape < 1: early recurrences


def test_true_log_hazard_ranks_the_outcomes(outcomes) -> None:
    eta, out = outcomes
    c = concordance_index(out["time_months"], -eta, out["recurrence"])
    assert c > 0.75


def test_latent_findings_have_the_configured_frequencies() -> None:
    cfg = LatentConfig()
    latent = sample_latent(6000, cfg, np.random.default_rng(3))
    assert list(latent.columns) == list(LATENT_COLUMNS)
    assert latent["hs_present"].mean() == pytest.approx(cfg.p_hs, abs=0.02)
    assert (latent["hs_side"] == "").equals(~latent["hs_present"])
    assert (latent["pet_side"] == latent["focus_side"]).mean() == pytest.approx(
        cfg.p_pet_on_focus, abs=0.02
    )
    for column in ("pet_spread", "pet_position", "hs_position", "hs_extent"):
        assert latent[column].between(0, 1).all(), column
    assert (latent.loc[~latent["hs_present"], ["hs_position", "hs_extent"]] == 0).all().all()
    read = latent.loc[latent["hs_present"], "mri_finding"]
    assert (read == "hippocampal_sclerosis").mean() == pytest.approx(
        cfg.hs_read_sensitivity, abs=0.03
    )
    assert set(latent["mri_finding"]) == {"normal", "hippocampal_sclerosis", "other_lesion"}
