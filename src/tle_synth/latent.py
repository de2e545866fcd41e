"""Latent disease of each synthetic patient: what the images show, and where surgery went.

The generative story: each patient has a true epileptogenic side (``focus_side``). Surgery is
usually on that side; hippocampal sclerosis (HS) and the main PET hypometabolism usually sit
on it too. The main hypometabolism is focal or diffuse (``pet_spread``) and sits anteriorly
or posteriorly along the temporal lobe (``pet_position``); HS sits at the hippocampal head or
towards the tail (``hs_position``) with its own extent. Some patients also have contralateral
(bilateral) or extratemporal hypometabolism. The images are drawn from these factors
(``images.py``, ``lesions.py``), the outcome from a log-hazard on them (``outcome.py``), and the
radiologist's ``mri_finding`` is a noisy read that says *whether* HS is present but never
*on which side*.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tle_synth.config import LatentConfig

LATENT_COLUMNS: tuple[str, ...] = (
    "operative_side",
    "focus_side",
    "hs_present",
    "hs_side",
    "hs_severity",
    "hs_position",
    "hs_extent",
    "pet_side",
    "pet_severity",
    "pet_spread",
    "pet_position",
    "contralateral_ratio",
    "extratemporal_severity",
    "mri_finding",
)


def _other(side: np.ndarray) -> np.ndarray:
    return np.where(side == "L", "R", "L")


def _side_like(rng: np.random.Generator, ref: np.ndarray, p_same: float) -> np.ndarray:
    """Same side as ``ref`` with probability ``p_same``, else the other side."""
    return np.where(rng.random(len(ref)) < p_same, ref, _other(ref))


def _extent(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    """Continuous severity in [0.3, 1] for a fraction ``p`` of patients, 0 for the others."""
    present = rng.random(n) < p
    return np.where(present, rng.uniform(0.3, 1.0, n), 0.0)


def sample_latent(n: int, cfg: LatentConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Draw the latent imaging findings of ``n`` patients.

    Returns:
        DataFrame (n rows) with :data:`LATENT_COLUMNS`. Sides are ``"L"``/``"R"``;
        ``hs_side`` is ``""`` without HS. Everything else is unitless in [0, 1] (images
        scale them by ``LesionConfig``): severities, ``*_position`` (0 anterior, 1
        posterior), ``pet_spread`` (0 focal, 1 diffuse), ``hs_extent`` (0 short, 1 long);
        HS properties are 0 without HS.
    """
    operative = np.where(rng.random(n) < cfg.p_left_operated, "L", "R")
    focus = _side_like(rng, operative, cfg.p_focus_operated)
    hs_present = rng.random(n) < cfg.p_hs
    hs_side = np.where(hs_present, _side_like(rng, focus, cfg.p_hs_on_focus), "")
    hs_severity = np.where(hs_present, rng.uniform(0.4, 1.0, n), 0.0)
    pet_side = _side_like(rng, focus, cfg.p_pet_on_focus)
    latent = pd.DataFrame(
        {
            "operative_side": operative,
            "focus_side": focus,
            "hs_present": hs_present,
            "hs_side": hs_side,
            "hs_severity": hs_severity,
            "hs_position": np.where(hs_present, rng.beta(*cfg.position_beta, n), 0.0),
            "hs_extent": np.where(hs_present, rng.uniform(0.0, 1.0, n), 0.0),
            "pet_side": pet_side,
            "pet_severity": rng.uniform(0.3, 1.0, n),
            "pet_spread": rng.beta(*cfg.spread_beta, n),
            "pet_position": rng.beta(*cfg.position_beta, n),
            "contralateral_ratio": _extent(rng, n, cfg.p_contralateral),
            "extratemporal_severity": _extent(rng, n, cfg.p_extratemporal),
        }
    )
    latent["mri_finding"] = read_mri(hs_present, cfg, rng)
    return latent


def read_mri(hs_present: np.ndarray, cfg: LatentConfig, rng: np.random.Generator) -> np.ndarray:
    """Radiologist's read: HS seen with ``hs_read_sensitivity``; other lesions at random."""
    n = len(hs_present)
    u_hs, u_other = rng.random(n), rng.random(n)
    seen_hs = np.where(hs_present, u_hs < cfg.hs_read_sensitivity, u_hs < cfg.hs_false_positive)
    other = ~seen_hs & (u_other < cfg.p_other_lesion)
    return np.where(seen_hs, "hippocampal_sclerosis", np.where(other, "other_lesion", "normal"))
