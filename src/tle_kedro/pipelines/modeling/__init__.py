"""modeling pipeline."""

from tle_kedro.pipelines.modeling.pipeline import create_pipeline

__all__ = ["create_pipeline"]
