"""Features for the models (no Kedro): what the training fold turns the validated cohort into.

``clinical`` holds the classical models' design-matrix recipe and the neural models'
``ClinicalTokenizer`` (scaling and category codes fitted on the training fold; the network's
embedding of its output is ``models.tokenizers.ClinicalEmbedding``), ``imaging`` the atlas-region
measures of the classical baselines, and ``folds`` the cross-validation folds every model shares.
"""

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
