"""MLflow nested runs per model × fold (kedro-mlflow opens the parent run, not these).

kedro-mlflow logs datasets and parameters into the one run of a ``kedro run`` but opens no
child runs; per-fold runs with per-epoch metric history are ours to open. This module is
the only place besides ``training/tuning.py`` that calls ``mlflow`` directly. Nothing here
logs patient identifiers: a :class:`~tle_kedro.training.cv.FoldReport` carries none.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from tle_kedro.training.cv import FoldReport

logger = logging.getLogger(__name__)


def _loggable(params: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v)[:250] for k, v in params.items()}


class MlflowFoldLogger:
    """``on_fold_end`` hook: one nested run ``<model>-r<repeat>-f<fold>`` per fitted fold.

    Logs the fold's hyperparameters (tuned ones included), its test metrics, and the
    per-epoch ``train_loss``, ``val_loss`` and ``val_c`` as metric history. Does nothing when
    no MLflow run is active (e.g. tracking disabled), so a plain run never creates orphans.
    """

    def __init__(self, static_params: dict[str, dict[str, Any]] | None = None) -> None:
        self.static_params = static_params or {}

    def __call__(self, report: FoldReport) -> None:
        import mlflow

        parent = mlflow.active_run()
        if parent is None:
            return
        name = f"{report.model}-r{report.repeat}-f{report.fold}"
        with mlflow.start_run(
            run_name=name,
            experiment_id=parent.info.experiment_id,
            nested=True,
            tags={"model": report.model, "repeat": str(report.repeat), "fold": str(report.fold)},
        ):
            params = {**self.static_params.get(report.model, {}), **report.params}
            if params:
                mlflow.log_params(_loggable(params))
            finite = {k: v for k, v in report.metrics.items() if math.isfinite(v)}
            mlflow.log_metrics(finite)
            for entry in report.history:
                step = int(entry.get("epoch", 0))
                epoch_metrics = {
                    k: float(v)
                    for k, v in entry.items()
                    if k != "epoch" and isinstance(v, int | float) and math.isfinite(v)
                }
                mlflow.log_metrics(epoch_metrics, step=step)
        logger.debug("logged nested MLflow run %s", name)
