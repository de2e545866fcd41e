"""``dicom_to_bids``: 01_raw DICOM export → 01_raw cohort images + a conversion report."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from tle_kedro.pipelines.dicom_to_bids.nodes import convert_dicom


def create_pipeline(**kwargs: object) -> Pipeline:
    """The dicom_to_bids pipeline (run by name, before data_processing)."""
    return Pipeline(
        [
            Node(
                convert_dicom,
                inputs=["dicom_export", "params:dicom_to_bids"],
                outputs=["cohort_images_from_dicom", "dicom_conversion_report"],
                name="convert_dicom",
            )
        ]
    )
