"""MLflow nested runs per model and per model × fold (kedro-mlflow opens the parent run only).

kedro-mlflow logs datasets and parameters into the one run of a ``kedro run`` but opens no
child runs; per-fold runs with per-epoch metric history, and one run per model holding its
evaluation (what MLflow's Compare view puts side by side), are ours to open. Both kinds
carry the tags ``run_kind`` (``fold`` or ``model``) and ``model``. This module is the only
place besides ``training/tuning.py`` that calls ``mlflow`` directly. Nothing here logs
patient identifiers: a :class:`~tle_kedro.training.cv.FoldReport` carries none, and a model
run gets the model's summary metrics and configuration, never a per-patient row.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from tle_kedro.training.cv import FoldReport

logger = logging.getLogger(__name__)


def _loggable(params: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v)[:250] for k, v in params.items()}


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-3}}`` → ``{"train.lr": 1e-3}`` (kedro-mlflow's ``.`` keys)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= _flatten(value, f"{name}.")
        else:
            out[name] = value
    return out


class MlflowFoldLogger:
    """``on_fold_end`` hook: one nested run ``<model>-r<repeat>-f<fold>`` per fitted fold
    (tags ``model``, ``run_kind=fold``, ``repeat``, ``fold``).

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
            tags={
                "model": report.model,
                "run_kind": "fold",
                "repeat": str(report.repeat),
                "fold": str(report.fold),
            },
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


def log_model_runs(
    metrics: Mapping[str, Mapping[str, float]],
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, str]:
    """One nested run per model, named after it: its evaluation and its configuration.

    Args:
        metrics: model → metric name → value (the model's row of the comparison table,
            :func:`tle_kedro.evaluation.model_metrics`), logged under the same names for
            every model (``harrell_c``, ``uno_c_lo``, ...) so that MLflow's Compare view lines
            them up. Non-finite values are left out, as in the parent run.
        params: model → (nested) parameters, flattened to ``a.b`` keys and cut to 250
            characters, as kedro-mlflow does for the parent run.
    Returns:
        model → run id; empty (nothing logged) when no MLflow run is active.
    """
    import mlflow

    parent = mlflow.active_run()
    if parent is None:
        return {}
    run_ids: dict[str, str] = {}
    for model, values in metrics.items():
        with mlflow.start_run(
            run_name=model,
            experiment_id=parent.info.experiment_id,
            nested=True,
            tags={"model": model, "run_kind": "model"},
        ) as run:
            flat = _flatten((params or {}).get(model, {}))
            if flat:
                mlflow.log_params(_loggable(flat))
            finite = {k: float(v) for k, v in values.items() if math.isfinite(v)}
            if finite:
                mlflow.log_metrics(finite)
            run_ids[model] = run.info.run_id
    logger.info("logged %d model runs under MLflow run %s", len(run_ids), parent.info.run_id)
    return run_ids
