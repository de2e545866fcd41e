"""The ``inference`` pipeline: a registered model + new patients → predictions and reports.

``kedro run --pipelines=inference --params=cohort_dir=/path/to/new_patients`` (the champion;
``--params=model_uri=models:/tle_recurrence/3`` picks another version).
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from tle_kedro.pipelines.inference import nodes


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.predict_patients,
                inputs=["inference_cohort", "inference_model"],
                outputs=["inference_predictions", "inference_exclusions", "inference_state"],
                name="predict_new_patients",
            ),
            Node(
                nodes.explain_patients,
                inputs=["inference_state", "params:inference"],
                outputs="inference_patient_reports",
                name="explain_new_patients",
            ),
        ],
        tags=["inference"],
    )
