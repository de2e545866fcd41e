"""Features for the models: clinical design matrix and tokens, atlas-region measures, CV folds."""

from __future__ import annotations

from tle_kedro.features.clinical import (
    ClinicalFeatureConfig,
    ClinicalTokenizer,
    ClinicalTokens,
    fit_transform_fold,
    make_clinical_recipe,
)
from tle_kedro.features.folds import CVConfig, make_cv_folds
from tle_kedro.features.imaging import asymmetry_index, imaging_features

__all__ = [
    "CVConfig",
    "ClinicalFeatureConfig",
    "ClinicalTokenizer",
    "ClinicalTokens",
    "asymmetry_index",
    "fit_transform_fold",
    "imaging_features",
    "make_clinical_recipe",
    "make_cv_folds",
]
