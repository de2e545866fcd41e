"""``final_model``: refit the registered model on every patient, log it, promote it."""

from tle_kedro.pipelines.final_model.pipeline import create_pipeline

__all__ = ["create_pipeline"]
