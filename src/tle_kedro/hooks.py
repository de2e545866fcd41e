"""Project hooks: keep file-system paths given on the command line out of MLflow, and one
local Dask cluster per ``kedro run`` for the cross-validation nodes.

kedro-mlflow tags every run with its run parameters, including ``runtime_params`` such as
``--params=cohort_dir=/hospital/share/tle_cohort``. A cohort path can name the hospital,
the study or the user, so paths are redacted from that tag; the parameters that reach the
nodes are logged by kedro-mlflow as usual.
"""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

REDACTED = "<path redacted>"
PATH_SUFFIXES = ("_dir", "_path", "_file", "_uri")


def looks_like_path(key: str, value: Any) -> bool:
    """A runtime parameter that names a location (by its key or its value)."""
    if key.rsplit(".", 1)[-1].endswith(PATH_SUFFIXES):
        return True
    return isinstance(value, str) and ("/" in value or "\\" in value)


def redact_paths(runtime_params: dict[str, Any]) -> dict[str, Any]:
    """``runtime_params`` with every path-like value replaced by ``<path redacted>``."""
    return {k: REDACTED if looks_like_path(k, v) else v for k, v in runtime_params.items()}


class RedactRuntimePaths:
    """Rewrites kedro-mlflow's ``runtime_params`` tag after kedro-mlflow has set it."""

    @hook_impl(trylast=True)  # after kedro-mlflow's before_pipeline_run started the run
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        runtime = run_params.get("runtime_params") or {}
        if not runtime:
            return
        import mlflow

        if mlflow.active_run() is None:
            return
        safe = redact_paths(dict(runtime))
        if safe != runtime:
            mlflow.set_tag("runtime_params", str(safe))
            logger.info("runtime parameter paths redacted from the MLflow run tags")


class ShareLocalCluster:
    """One local Dask cluster for all of a run's cross-validation nodes (``RunClusters``),
    closed when the run ends or fails."""

    @hook_impl
    def before_pipeline_run(self) -> None:
        from tle_kedro.training.parallel import RUN_CLUSTERS

        RUN_CLUSTERS.keep()

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._close()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._close()

    @staticmethod
    def _close() -> None:
        from tle_kedro.training.parallel import RUN_CLUSTERS

        RUN_CLUSTERS.close()
