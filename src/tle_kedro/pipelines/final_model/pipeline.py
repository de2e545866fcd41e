"""The ``final_model`` pipeline: refit on every patient → MLflow pyfunc → registry alias.

Runs after ``modeling`` in ``__default__``: it reads ``oof_predictions`` to choose the model
(``registry.model: auto`` = the best out-of-fold validation metric), for the validation
metric and for the risk-group cut. The model is logged and registered by the catalog entry
``registered_model`` (``MlflowModelTrackingDataset``, ``registered_model_name``); the
promotion node reads ``final_model_card``, saved by the same node right after the model, so
it always runs once the new version exists.

With ``registry.champion: fold_ensemble`` the fit node also reads ``<model>.cv_fold_models``
of every model it may choose (every configured model with ``registry.model: auto``, else the
named one), so ``kedro viz`` shows that it depends on them; the catalog loads them as lazy
handles (:class:`~tle_kedro.datasets.fold_models.FoldModelsDataset`) and only the chosen
model's are unpickled. With ``refit`` it reads none.
"""

from __future__ import annotations

from collections.abc import Sequence

from kedro.pipeline import Node, Pipeline

from tle_kedro.config_loader import project_parameters
from tle_kedro.pipelines.final_model import nodes
from tle_kedro.pipelines.modeling.pipeline import configured_models


def fold_model_inputs(
    champion: str | None = None, models: Sequence[str] | None = None
) -> list[str]:
    """The ``<model>.cv_fold_models`` the fit node reads: none with ``champion: refit``.

    Args:
        champion: ``registry.champion``; None = the session's configuration.
        models: the models ``registry.model: auto`` chooses among; None = the session's
            ``registry.model`` if it names one, else its ``modeling.models``.
    """
    raw = project_parameters().get("registry") or {}
    chosen = {k: raw[k] for k in ("champion", "model") if k in raw}
    reg = nodes.RegistryParams(**({**chosen, "champion": champion} if champion else chosen))
    if reg.champion == "refit":
        return []
    if models is None:
        models = configured_models() if reg.model == "auto" else [reg.model]
    return [f"{m}.cv_fold_models" for m in models]


def create_pipeline(
    champion: str | None = None, models: Sequence[str] | None = None, **kwargs: object
) -> Pipeline:
    """The final-model nodes; ``champion``, ``models``: see :func:`fold_model_inputs`."""
    return Pipeline(
        [
            Node(
                nodes.fit_final,
                inputs=[
                    "clinical_validated",
                    "image_tensors",
                    "clinical_features",
                    "clinical_tokenizer",
                    "oof_predictions",
                    "optuna_storage",
                    "params:modeling",
                    "params:registry",
                    "params:atlas",
                    *fold_model_inputs(champion, models),
                ],
                outputs=["final_model", "final_fit_summary"],
                name="fit_final_model",
            ),
            Node(
                nodes.bundle_model,
                inputs=[
                    "final_model",
                    "final_fit_summary",
                    "oof_predictions",
                    "clinical_validated",
                    "image_tensors",
                    "params:preprocessing",
                    "params:registry",
                ],
                outputs=["registered_model", "final_model_card"],
                name="log_and_register_model",
            ),
            Node(
                nodes.select_validation_predictions,
                inputs=["oof_predictions", "clinical_validated", "params:registry"],
                outputs="validation_predictions",
                name="select_validation_predictions",
            ),
            Node(
                nodes.promote_model,
                inputs=[
                    "final_model_card",
                    "validation_predictions",
                    "clinical_validated",
                    "params:registry",
                ],
                outputs=["promotion_decision", "promotion_metrics"],
                name="promote_model",
            ),
        ],
        tags=["final_model", "training"],
    )
