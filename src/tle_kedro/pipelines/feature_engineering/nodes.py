"""Nodes of ``feature_engineering``: validate parameters, call ``tle_kedro.features``."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer

from tle_kedro.data.atlas import AtlasConfig
from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.features.clinical import (
    ClinicalFeatureConfig,
    ClinicalTokenizer,
    check_clinical_columns,
    make_clinical_recipe,
)
from tle_kedro.features.folds import CVConfig, make_cv_folds
from tle_kedro.features.imaging import imaging_features


def build_clinical_recipe(
    clinical_validated: pd.DataFrame, params: dict[str, Any]
) -> ColumnTransformer:
    """Unfitted design-matrix recipe (modeling fits it inside each training fold)."""
    config = ClinicalFeatureConfig.model_validate(params)
    check_clinical_columns(clinical_validated, config)
    return make_clinical_recipe(config)


def build_clinical_tokenizer(
    clinical_validated: pd.DataFrame, params: dict[str, Any]
) -> ClinicalTokenizer:
    """Unfitted clinical tokenizer for TransEpRelap (fitted inside each training fold)."""
    config = ClinicalFeatureConfig.model_validate(params)
    check_clinical_columns(clinical_validated, config)
    return ClinicalTokenizer(config)


def compute_imaging_features(
    image_tensors: ImageTensors, clinical_validated: pd.DataFrame, params: dict[str, Any]
) -> pd.DataFrame:
    """Ipsi/contralateral PET and T1 measures over the atlas regions, one row per patient."""
    return imaging_features(image_tensors, clinical_validated, AtlasConfig.model_validate(params))


def make_folds(
    clinical_validated: pd.DataFrame, imaging_features: pd.DataFrame, params: dict[str, Any]
) -> pd.DataFrame:
    """Patient-level outer folds stratified by recurrence, shared by every model.

    The folds split the patients every model is fitted on: each needs its clinical row and
    its imaging features (the region models read them), so a patient without features is
    named here rather than deep inside a fold fit. The folds depend on the clinical table
    only (the features do not change them).
    """
    without = sorted(
        set(clinical_validated["participant_id"]) - set(imaging_features["participant_id"])
    )
    if without:
        raise ValueError(
            f"cv folds: {len(without)} patients of clinical_validated have no imaging_features "
            f"row (e.g. {without[:5]}); rerun feature_engineering on the same clinical_validated"
        )
    config = CVConfig.model_validate(params)
    return make_cv_folds(
        clinical_validated, n_splits=config.n_splits, n_repeats=config.n_repeats, seed=config.seed
    )
