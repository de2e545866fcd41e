"""Kedro glue: the configuration a session loaded, readable while pipelines are registered.

``modeling`` is built from configuration (one namespace per model of ``modeling.models``),
and Kedro builds pipelines by calling ``register_pipelines()`` with no arguments, so the
pipeline registry cannot be handed the run's environment (``--env``) or ``--params``.
Every Kedro entry point that registers pipelines (``kedro run``, ``kedro viz``, ``kedro
ipython``, a ``KedroSession`` in a notebook) first builds the project's config loader for
the session (``settings.CONFIG_LOADER_CLASS``) with that environment and those runtime
parameters; :class:`ProjectConfigLoader` remembers the latest one, and
:func:`project_parameters` reads it. Without a session (a test calling ``create_pipeline``,
``kedro registry list``) the project's ``conf/`` in the working directory is read with
``KEDRO_ENV`` (default ``local``).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from kedro.config import MissingConfigException, OmegaConfigLoader

# Environments (paper, tuning, smoke, ablations, local) override single nested keys of conf/base.
LOADER_ARGS: dict[str, Any] = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
}


class ProjectConfigLoader(OmegaConfigLoader):
    """Kedro's ``OmegaConfigLoader`` that remembers the latest instance (module docstring)."""

    latest: ClassVar[ProjectConfigLoader | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ProjectConfigLoader.latest = self


def project_parameters(conf_source: str | Path = "conf") -> dict[str, Any]:
    """The parameters of the current session (``--env`` and ``--params`` applied).

    Without a session: ``conf_source`` (relative to the working directory) with the
    environment ``KEDRO_ENV``; ``{}`` when there is no such folder.
    """
    loader: OmegaConfigLoader | None = ProjectConfigLoader.latest
    if loader is None:
        if not Path(conf_source).is_dir():
            return {}
        loader = OmegaConfigLoader(str(conf_source), env=os.environ.get("KEDRO_ENV"), **LOADER_ARGS)
    try:
        return dict(loader["parameters"])
    except MissingConfigException:
        return {}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` merged into a copy of ``base`` key by key; lists are replaced whole (as
    Kedro's soft merge of an environment over ``conf/base``)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
