"""The ``modeling`` pipeline: 04/05 → 06_models and 07_model_output."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from tle_kedro.pipelines.modeling import nodes


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.cross_validate_models,
                inputs=[
                    "clinical_validated",
                    "cv_folds",
                    "image_tensors",
                    "imaging_features",
                    "clinical_features",
                    "clinical_tokenizer",
                    "optuna_storage",
                    "params:modeling",
                    "params:atlas",
                ],
                outputs=[
                    "oof_predictions",
                    "cv_fold_metrics",
                    "cv_fold_models",
                    "modeling_metrics",
                    "modeling_config",
                ],
                name="cross_validate_models",
            ),
        ],
        tags=["modeling", "training"],
    )
