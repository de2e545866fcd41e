"""``inference``: the champion model applied to new patients (predictions + explanations)."""

from tle_kedro.pipelines.inference.pipeline import create_pipeline

__all__ = ["create_pipeline"]
