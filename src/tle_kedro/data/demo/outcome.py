"""Truth model of the demo cohort: a known log-hazard and Weibull event times.

Log-hazard (unitless severities in [0, 1], indicators 1[...]; coefficients ``EffectsConfig``)::

    eta = b_pet  * 1[pet_side != operative_side] * pet_severity
        + b_hs   * 1[HS and hs_side != operative_side] * hs_severity
        + b_con  * contralateral_ratio
        + b_ext  * extratemporal_severity
        + b_conc * 1[HS and hs_side == pet_side == operative_side] * hs_severity
        + b_neg  * 1[no HS]
        + b_sg   * secondary_generalization + b_dur * z(log epilepsy_duration)

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

from tle_kedro.data.demo.config import EffectsConfig, OutcomeConfig

logger = logging.getLogger(__name__)

ENGEL_RECURRENCE: tuple[str, str, str] = ("II", "III", "IV")


def log_hazard(latent: pd.DataFrame, clinical: pd.DataFrame, fx: EffectsConfig) -> np.ndarray:
    """True log-hazard (n,) of each patient from latent findings and complete clinical values.

    Args:
        latent: output of ``latent.sample_latent``.
        clinical: complete (before missingness) clinical table aligned with ``latent``; uses
            ``secondary_generalization`` and ``epilepsy_duration_months``.
    """
    op = latent["operative_side"].to_numpy()
    hs = latent["hs_present"].to_numpy(dtype=bool)
    pet_disc = latent["pet_side"].to_numpy() != op
    hs_disc = hs & (latent["hs_side"].to_numpy() != op)
    concordant = hs & ~hs_disc & ~pet_disc
    log_dur = np.log(clinical["epilepsy_duration_months"].to_numpy(dtype=float))
    z_dur = (log_dur - log_dur.mean()) / (log_dur.std() or 1.0)
    eta = (
        fx.pet_discordant * pet_disc * latent["pet_severity"].to_numpy()
        + fx.hs_discordant * hs_disc * latent["hs_severity"].to_numpy()
        + fx.contralateral * latent["contralateral_ratio"].to_numpy()
        + fx.extratemporal * latent["extratemporal_severity"].to_numpy()
        + fx.concordant_hs_pet * concordant * latent["hs_severity"].to_numpy()
        + fx.mri_negative * ~hs
        + fx.secondary_generalization * clinical["secondary_generalization"].to_numpy(dtype=float)
        + fx.log_duration * z_dur
    )
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
