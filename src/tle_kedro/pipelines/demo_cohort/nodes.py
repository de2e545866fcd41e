"""Nodes of ``demo_cohort`` (thin: the generator is the separate package ``tle_synth``)."""

from __future__ import annotations

from typing import Any

from tle_synth import SyntheticCohort, draw_cohort, resolve_config


def generate_demo_cohort(params: dict[str, Any], shift: dict[str, Any]) -> SyntheticCohort:
    """Draw the synthetic cohort from the ``demo_cohort`` parameters.

    With ``demo_cohort.shifted=true`` the ``demo_cohort_shift`` overrides apply (confirmation
    cohorts). Cheap and pure: tables and per-subject specs only. The images are rendered
    subject by subject when the catalog saves ``raw_cohort`` (``BIDSCohortDataset``).
    """
    return draw_cohort(resolve_config(params, shift))
