"""Kedro project settings (glue only)."""

from __future__ import annotations

from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Environments (paper, tuning, local) override single nested keys of conf/base.
    "merge_strategy": {"parameters": "soft"},
}
