"""``dicom_to_bids``: a DICOM export → the cohort folder's images (then run data_processing)."""

from tle_kedro.pipelines.dicom_to_bids.pipeline import create_pipeline

__all__ = ["create_pipeline"]
