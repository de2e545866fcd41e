"""Kedro project settings (glue only)."""

from __future__ import annotations

from tle_kedro.config_loader import LOADER_ARGS, ProjectConfigLoader
from tle_kedro.hooks import RedactRuntimePaths

# kedro-mlflow registers itself (entry point); this hook runs after it.
HOOKS = (RedactRuntimePaths(),)

# OmegaConfigLoader that the pipeline registry can read: `modeling` is built from
# `modeling.models` of the run's environment (tle_kedro/config_loader.py).
CONFIG_LOADER_CLASS = ProjectConfigLoader
CONFIG_LOADER_ARGS = LOADER_ARGS
