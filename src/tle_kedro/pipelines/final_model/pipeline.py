"""The ``final_model`` pipeline: refit on every patient → MLflow pyfunc → registry alias.

Runs after ``modeling`` in ``__default__``: it reads ``oof_predictions`` to choose the model
(``registry.model: auto`` = the best out-of-fold validation metric), for the validation
metric and for the risk-group cut. The model is logged and registered by the catalog entry
``registered_model`` (``MlflowModelTrackingDataset``, ``registered_model_name``); the
promotion node reads ``final_model_card``, saved by the same node right after the model, so
it always runs once the new version exists.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from tle_kedro.pipelines.final_model import nodes


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.fit_final,
                inputs=[
                    "clinical_validated",
                    "image_tensors",
                    "clinical_features",
                    "clinical_tokenizer",
                    "oof_predictions",
                    "optuna_storage",
                    "params:modeling",
                    "params:registry",
                    "params:atlas",
                ],
                outputs=["final_model", "final_fit_summary"],
                name="fit_final_model",
            ),
            Node(
                nodes.bundle_model,
                inputs=[
                    "final_model",
                    "final_fit_summary",
                    "oof_predictions",
                    "clinical_validated",
                    "image_tensors",
                    "params:preprocessing",
                    "params:registry",
                ],
                outputs=["registered_model", "final_model_card"],
                name="log_and_register_model",
            ),
            Node(
                nodes.select_validation_predictions,
                inputs=["oof_predictions", "clinical_validated", "params:registry"],
                outputs="validation_predictions",
                name="select_validation_predictions",
            ),
            Node(
                nodes.promote_model,
                inputs=[
                    "final_model_card",
                    "validation_predictions",
                    "clinical_validated",
                    "params:registry",
                ],
                outputs=["promotion_decision", "promotion_metrics"],
                name="promote_model",
            ),
        ],
        tags=["final_model", "training"],
    )
