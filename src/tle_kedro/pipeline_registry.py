"""Project pipelines (glue only)."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# `__default__` is the analysis a team runs on its cohort, ending with the refitted model
# registered and promoted (`final_model`); `demo_cohort` (writes the synthetic cohort),
# `dicom_to_bids` (converts a DICOM export) and `inference` (applies the champion) are run by name.
DEFAULT_PIPELINES = (
    "data_processing",
    "feature_engineering",
    "modeling",
    "evaluation",
    "final_model",
)


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines (one package each under ``pipelines/``)."""
    pipelines = find_pipelines(raise_errors=True)
    default = [pipelines[name] for name in DEFAULT_PIPELINES if name in pipelines]
    pipelines["__default__"] = sum(default, Pipeline([]))
    return pipelines
