"""Nodes of ``demo_cohort`` (thin: the generator lives in ``tle_kedro.data.demo``)."""

from __future__ import annotations

from typing import Any

from tle_kedro.data.demo.generate import generate_cohort
from tle_kedro.data.demo.writer import SyntheticCohort


def generate_demo_cohort(params: dict[str, Any]) -> SyntheticCohort:
    """Draw the synthetic cohort from the ``demo_cohort`` parameters.

    Cheap and pure: tables and per-subject specs only. The images are rendered subject by
    subject when the catalog saves ``raw_cohort`` (``BIDSCohortDataset``).
    """
    return generate_cohort(params)
