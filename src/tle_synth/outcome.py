"""Truth model of the synthetic cohort: a known log-hazard and Weibull event times.

Log-hazard (latent properties unitless in [0, 1], indicators 1[...], op = operative side;
coefficients ``EffectsConfig``; each bracket is a column ``term_<name>`` of the ground truth)::

    eta = b_pet_disc  * [1[pet_side != op] * pet_severity]
        + b_hs_disc   * [1[HS and hs_side != op] * hs_severity]
        + b_contra    * [contralateral_ratio]
        + b_extra     * [extratemporal_severity]
        + b_conc      * [1[HS and hs_side == pet_side == op] * hs_severity]
        + b_spread    * [pet_severity * (pet_spread - 1/2)]                 focal vs diffuse
        + b_pet_post  * [1[pet_side == op] * pet_severity * (pet_position - 1/2)]
        + b_hs_post   * [1[HS and hs_side == op] * hs_severity * (hs_position - 1/2)]
        + b_neg       * [1[no HS]]
        + b_sg * [secondary_generalization] + b_dur * [z(log epilepsy_duration)]

The spread and position terms are what regional means capture only in part: two lesions
with the same mean loss over a temporal region can be one focal blob or a diffuse field, at
the hippocampal head (inside a standard anterior resection) or towards its tail.

Event times follow a Weibull proportional-hazards model, S(t | eta) =
exp(-(t / scale)^k * exp(eta)), with shape k < 1 (hazard highest just after surgery). The
scale is solved so the expected event fraction under this cohort's censoring equals
``target_event_rate``. Censoring is administrative: follow-up = min + Exponential, capped.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from tle_synth.config import EffectsConfig, OutcomeConfig

logger = logging.getLogger(__name__)

ENGEL_RECURRENCE: tuple[str, str, str] = ("II", "III", "IV")
TERM_NAMES: tuple[str, ...] = tuple(EffectsConfig.model_fields)


def truth_terms(latent: pd.DataFrame, clinical: pd.DataFrame) -> pd.DataFrame:
    """The unweighted terms of the log-hazard (n rows, columns :data:`TERM_NAMES`).

    Args:
        latent: output of ``latent.sample_latent``.
        clinical: complete (before missingness) clinical table aligned with ``latent``; uses
            ``secondary_generalization`` and ``epilepsy_duration_months``.
    """
    op = latent["operative_side"].to_numpy()
    hs = latent["hs_present"].to_numpy(dtype=bool)
    pet_disc = latent["pet_side"].to_numpy() != op
    hs_disc = hs & (latent["hs_side"].to_numpy() != op)
    hs_sev = latent["hs_severity"].to_numpy(dtype=float)
    pet_sev = latent["pet_severity"].to_numpy(dtype=float)
    log_dur = np.log(clinical["epilepsy_duration_months"].to_numpy(dtype=float))
    terms = {
        "pet_discordant": pet_disc * pet_sev,
        "hs_discordant": hs_disc * hs_sev,
        "contralateral": latent["contralateral_ratio"].to_numpy(dtype=float),
        "extratemporal": latent["extratemporal_severity"].to_numpy(dtype=float),
        "concordant_hs_pet": (hs & ~hs_disc & ~pet_disc) * hs_sev,
        "pet_spread": pet_sev * (latent["pet_spread"].to_numpy(dtype=float) - 0.5),
        "pet_posterior": ~pet_disc * pet_sev * (latent["pet_position"].to_numpy(float) - 0.5),
        "hs_posterior": (hs & ~hs_disc) * hs_sev * (latent["hs_position"].to_numpy(float) - 0.5),
        "mri_negative": (~hs).astype(float),
        "secondary_generalization": clinical["secondary_generalization"].to_numpy(dtype=float),
        "log_duration": (log_dur - log_dur.mean()) / (log_dur.std() or 1.0),
    }
    return pd.DataFrame({name: terms[name].astype(float) for name in TERM_NAMES})


def log_hazard(latent: pd.DataFrame, clinical: pd.DataFrame, fx: EffectsConfig) -> np.ndarray:
    """True log-hazard (n,): the weighted sum of :func:`truth_terms`, centred to mean 0."""
    terms = truth_terms(latent, clinical)
    eta = terms.to_numpy() @ np.array([getattr(fx, name) for name in terms.columns])
    return eta - eta.mean()


def sample_followup(n: int, cfg: OutcomeConfig, rng: np.random.Generator) -> np.ndarray:
    """Administrative follow-up (n,) months: min + Exponential with the wanted median, capped."""
    excess_median = cfg.followup_median_months - cfg.followup_min_months
    extra = rng.exponential(excess_median / np.log(2), n)
    return np.minimum(cfg.followup_min_months + extra, cfg.followup_max_months)


def solve_weibull_scale(eta: np.ndarray, followup: np.ndarray, cfg: OutcomeConfig) -> float:
    """Weibull scale (months) making the expected event fraction equal the target rate."""
    k = cfg.weibull_shape

    def excess(log_scale: float) -> float:
        p_event = 1.0 - np.exp(-((followup / np.exp(log_scale)) ** k) * np.exp(eta))
        return float(p_event.mean() - cfg.target_event_rate)

    return float(np.exp(brentq(excess, -10.0, 30.0)))


def sample_outcome(eta: np.ndarray, cfg: OutcomeConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Draw outcomes for log-hazards ``eta`` (n,).

    Returns:
        DataFrame (n rows): ``time_months`` (> 0, 0.1-month resolution), ``recurrence``
        (0/1), ``engel_class`` (I when no recurrence, else II/III/IV), ``followup_months``
        (administrative censoring time) and ``weibull_scale``.
    """
    n = len(eta)
    followup = sample_followup(n, cfg, rng)
    scale = solve_weibull_scale(eta, followup, cfg)
    # Inverse-CDF draw: S(T) = U  <=>  T = scale * (-log U / exp(eta))^(1/k)
    event_time = scale * (-np.log(rng.random(n)) / np.exp(eta)) ** (1.0 / cfg.weibull_shape)
    recurrence = event_time <= followup
    time = np.maximum(np.round(np.where(recurrence, event_time, followup), 1), 0.1)
    grade = rng.choice(len(ENGEL_RECURRENCE), size=n, p=list(cfg.engel_recurrence_probs))
    engel = np.where(recurrence, np.asarray(ENGEL_RECURRENCE)[grade], "I")
    logger.debug("Weibull scale %.1f months, event fraction %.3f", scale, recurrence.mean())
    return pd.DataFrame(
        {
            "time_months": time,
            "recurrence": recurrence.astype(int),
            "engel_class": engel,
            "followup_months": np.round(followup, 1),
            "weibull_scale": scale,
        }
    )
