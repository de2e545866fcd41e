"""demo_cohort: generate the synthetic BIDS cohort (the embedded default data)."""

from __future__ import annotations

from tle_kedro.pipelines.demo_cohort.pipeline import create_pipeline

__all__ = ["create_pipeline"]
