"""``data_processing``: 01_raw cohort → validated table, exclusion report, image tensors."""

from tle_kedro.pipelines.data_processing.pipeline import create_pipeline

__all__ = ["create_pipeline"]
