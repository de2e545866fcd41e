"""feature_engineering: clinical recipe and tokenizer, imaging features, CV folds."""

from __future__ import annotations

from tle_kedro.pipelines.feature_engineering.pipeline import create_pipeline

__all__ = ["create_pipeline"]
