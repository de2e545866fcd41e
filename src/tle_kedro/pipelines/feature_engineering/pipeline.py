"""``feature_engineering``: 02/03 → 04_feature recipe, tokenizer, imaging features; 05 folds."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from tle_kedro.pipelines.feature_engineering.nodes import (
    build_clinical_recipe,
    build_clinical_tokenizer,
    compute_imaging_features,
    make_folds,
)


def create_pipeline(**kwargs: object) -> Pipeline:
    """The feature_engineering pipeline."""
    return Pipeline(
        [
            Node(
                build_clinical_recipe,
                inputs=["clinical_validated", "params:clinical_features"],
                outputs="clinical_features",
                name="build_clinical_recipe",
            ),
            Node(
                build_clinical_tokenizer,
                inputs=["clinical_validated", "params:clinical_features"],
                outputs="clinical_tokenizer",
                name="build_clinical_tokenizer",
            ),
            Node(
                compute_imaging_features,
                inputs=["image_tensors", "clinical_validated", "params:atlas"],
                outputs="imaging_features",
                name="compute_imaging_features",
            ),
            Node(
                make_folds,
                inputs=["clinical_validated", "imaging_features", "params:cv"],
                outputs="cv_folds",
                name="make_cv_folds",
            ),
        ]
    )
