"""``data_processing``: 01_raw → 02_intermediate table, exclusions, registration QC; 03 tensors."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from tle_kedro.pipelines.data_processing.nodes import (
    choose_images,
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
                choose_images,
                inputs=["raw_cohort", "params:cohort_reading"],
                outputs=["cohort_images", "folder_exclusions"],
                name="choose_images",
            ),
            Node(
                preprocess_images,
                inputs=[
                    "participants_checked",
                    "cohort_images",
                    "preprocess_cache",
                    "params:preprocessing",
                ],
                outputs=[
                    "clinical_validated",
                    "image_exclusions",
                    "image_tensors",
                    "registration_qc",
                ],
                name="preprocess_images",
            ),
            Node(
                report_exclusions,
                inputs=[
                    "raw_cohort",
                    "clinical_validated",
                    "table_exclusions",
                    "folder_exclusions",
                    "image_exclusions",
                ],
                outputs="exclusions",
                name="report_exclusions",
            ),
        ]
    )
