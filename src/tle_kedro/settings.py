"""Kedro project settings (glue only)."""

from __future__ import annotations

from tle_kedro.config_loader import LOADER_ARGS, ProjectConfigLoader
from tle_kedro.hooks import RedactRuntimePaths, ShareLocalCluster

# kedro-mlflow registers itself (entry point); RedactRuntimePaths runs after it.
# ShareLocalCluster: one local Dask cluster for all of a run's cross-validation nodes.
HOOKS = (RedactRuntimePaths(), ShareLocalCluster())

# OmegaConfigLoader that the pipeline registry can read: `modeling` is built from
# `modeling.models` of the run's environment (tle_kedro/config_loader.py).
CONFIG_LOADER_CLASS = ProjectConfigLoader
CONFIG_LOADER_ARGS = LOADER_ARGS
