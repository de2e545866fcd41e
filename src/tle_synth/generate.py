"""Draw a whole synthetic cohort (tables now, images later): :func:`draw_cohort`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tle_synth.acquisition import sample_acquisition, sample_missing_scans
from tle_synth.clinical import (
    PARTICIPANT_COLUMNS,
    apply_missingness,
    participants_sidecar,
    sample_clinical,
)
from tle_synth.config import DemoCohortConfig, parse_config
from tle_synth.images import SubjectSpec
from tle_synth.latent import sample_latent
from tle_synth.outcome import log_hazard, sample_outcome, truth_terms
from tle_synth.writer import SyntheticCohort

logger = logging.getLogger(__name__)


def draw_cohort(params: Mapping[str, Any] | DemoCohortConfig | None = None) -> SyntheticCohort:
    """Draw the clinical table, latent findings, outcome and per-subject image specs.

    Cheap (no image is rendered here). Deterministic in ``seed``; subject ``i``'s noise,
    deformation and lesion shapes are seeded by ``(seed, i)``.

    Args:
        params: the ``demo_cohort`` parameters (validated by :func:`parse_config`).
    """
    cfg = parse_config(params)
    n = cfg.n_patients
    # spawn(6)'s first five children are spawn(5)'s: the scans' stream (the sixth) was added
    # without changing any cohort drawn before it
    rng_latent, rng_clinical, rng_outcome, rng_missing, rng_acq, rng_scans = (
        np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(6)
    )
    latent = sample_latent(n, cfg.latent, rng_latent)
    clinical = sample_clinical(n, latent["operative_side"].to_numpy(), cfg.clinical, rng_clinical)
    eta = log_hazard(latent, clinical, cfg.outcome.effects)
    outcome = sample_outcome(eta, cfg.outcome, rng_outcome)
    complete = pd.concat(
        [clinical, latent[["mri_finding"]], outcome[["engel_class", "recurrence", "time_months"]]],
        axis=1,
    )[list(PARTICIPANT_COLUMNS)]
    participants = apply_missingness(complete, cfg.clinical.missing_fraction, rng_missing)
    acquisition = sample_acquisition(n, cfg, rng_acq)
    scans = sample_missing_scans(n, cfg.acquisition, rng_scans)
    ground_truth = pd.concat(
        [
            participants[["participant_id"]],
            pd.DataFrame({"true_log_hazard": np.round(eta, 6)}),
            truth_terms(latent, clinical).round(6).add_prefix("term_"),
            latent.drop(columns=["operative_side"]),
            outcome[["followup_months", "weibull_scale"]],
            acquisition,
            scans,
        ],
        axis=1,
    )
    ground_truth["shifted"] = int(cfg.shifted)
    specs = tuple(
        SubjectSpec.from_row(row, seed=(cfg.seed, i))
        for i, (_, row) in enumerate(ground_truth.iterrows())
    )
    logger.info(
        "Synthetic cohort drawn: %d patients, %d recurrences (%.0f %%), %d without PET, "
        "%d without T1, seed %d%s",
        n,
        int(outcome["recurrence"].sum()),
        100 * outcome["recurrence"].mean(),
        int((scans["has_pet"] == 0).sum()),
        int((scans["has_t1"] == 0).sum()),
        cfg.seed,
        ", shifted" if cfg.shifted else "",
    )
    return SyntheticCohort(
        participants=participants,
        ground_truth=ground_truth,
        sidecar=participants_sidecar(),
        subjects=specs,
        config=cfg,
    )
