"""Synthetic demo cohort: MNI152-based T1/PET, clinical table and a known outcome model.

``generate_cohort(params)`` draws a :class:`SyntheticCohort` (tables + per-subject image
specs); ``write_cohort(cohort, root)`` writes it as a BIDS folder, rendering images lazily.
See ``docs/demo_cohort.md``.
"""

from __future__ import annotations

from tle_kedro.data.demo.config import DemoCohortConfig, parse_config
from tle_kedro.data.demo.generate import generate_cohort
from tle_kedro.data.demo.writer import SyntheticCohort, write_cohort

__all__ = ["DemoCohortConfig", "SyntheticCohort", "generate_cohort", "parse_config", "write_cohort"]
