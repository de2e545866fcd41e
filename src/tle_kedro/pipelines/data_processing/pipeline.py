"""``data_processing``: 01_raw → 02_intermediate table + exclusions, 03_primary tensors."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from tle_kedro.pipelines.data_processing.nodes import (
    preprocess_images,
    report_exclusions,
    validate_clinical,
)


def create_pipeline(**kwargs: object) -> Pipeline:
    """The data_processing pipeline."""
    return Pipeline(
        [
            Node(
                validate_clinical,
                inputs="raw_cohort",
                outputs=["participants_checked", "table_exclusions"],
                name="validate_clinical",
            ),
            Node(
                preprocess_images,
                inputs=["participants_checked", "raw_cohort", "params:preprocessing"],
                outputs=["clinical_validated", "image_exclusions", "image_tensors"],
                name="preprocess_images",
            ),
            Node(
                report_exclusions,
                inputs=[
                    "raw_cohort",
                    "clinical_validated",
                    "table_exclusions",
                    "image_exclusions",
                ],
                outputs="exclusions",
                name="report_exclusions",
            ),
        ]
    )
