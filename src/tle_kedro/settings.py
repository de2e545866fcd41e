"""Kedro project settings (glue only)."""

from __future__ import annotations

from kedro.config import OmegaConfigLoader

from tle_kedro.hooks import RedactRuntimePaths

# kedro-mlflow registers itself (entry point); this hook runs after it.
HOOKS = (RedactRuntimePaths(),)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Environments (paper, tuning, local) override single nested keys of conf/base.
    "merge_strategy": {"parameters": "soft"},
}
