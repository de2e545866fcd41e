"""The ``modeling`` pipeline: 04/05 → 06_models and 07_model_output, one namespace per model.

Every model of ``modeling.models`` gets a namespace of its own (``kedro viz`` shows it as a
box; ``kedro run --pipelines=modeling --namespaces=transeprelap`` trains that model only),
built from the configuration of the run (``--env=ablations`` adds the modality ablations):

- ``<model>.cross_validate``: the fits on every outer training fold and the test-fold
  predictions → ``<model>.cv_fold_models`` (06), ``<model>.oof_predictions`` and
  ``<model>.cv_fold_metrics`` (07; catalog factories in ``catalog_modeling.yml``).
- ``transeprelap.tune``: its Optuna study per outer fold (in ``optuna_storage``) →
  ``transeprelap.tuned_params`` (06), read by TransEpRelap's fits and by those of its
  ablations, which reuse the study of the same fold (``ModelSpec.tune_with``).

The gathering nodes outside the namespaces combine every model's results into the datasets
that ``evaluation`` and ``final_model`` read (``oof_predictions``, ``cv_fold_metrics``,
``modeling_metrics``, ``modeling_config``). The fitted fold models stay per model (nothing
reads them all at once; a combined copy would store every network twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from kedro.pipeline import Node, Pipeline

from tle_kedro.config_loader import project_parameters
from tle_kedro.pipelines.modeling import nodes
from tle_kedro.training.specs import ModelingParams, model_family, ordered_models, tuning_leads

# What each family's fits read (besides the folds and the parameters).
FAMILY_INPUTS: dict[str, dict[str, str]] = {
    "cox_clinical": {"clinical_features": "clinical_features"},
    "cox_region_measures": {
        "clinical_features": "clinical_features",
        "imaging_features": "imaging_features",
    },
    "rsf_region_measures": {
        "clinical_features": "clinical_features",
        "imaging_features": "imaging_features",
    },
    "neural": {
        "image_tensors": "image_tensors",
        "clinical_tokenizer": "clinical_tokenizer",
        "atlas": "params:atlas",
    },
}


def configured_models() -> list[str]:
    """``modeling.models`` of the configuration the session loaded (validated; the rest of
    ``modeling`` is validated by the nodes, so a bad key there does not stop other pipelines
    from being registered)."""
    raw = project_parameters().get("modeling") or {}
    selected = {"models": raw["models"]} if "models" in raw else {}
    return list(ModelingParams(**selected).models)


def model_pipeline(model: str, tuned_by: str | None) -> Pipeline:
    """The nodes of one model, in namespace ``model``.

    ``tuned_by``: the model whose ``<tuned_by>.tuned_params`` sets this model's
    hyperparameters (``model`` itself for TransEpRelap, which then also gets its ``tune``
    node), or None.
    """
    family = model_family(model)
    inputs = {
        "clinical_validated": "clinical_validated",
        "cv_folds": "cv_folds",
        **FAMILY_INPUTS[family],
        "params": "params:modeling",
    }
    func = nodes.cross_validate_classical if family != "neural" else nodes.cross_validate_neural
    pipeline_nodes = []
    if tuned_by == model:
        tune_inputs = ["clinical_validated", "cv_folds", "image_tensors", "clinical_tokenizer"]
        pipeline_nodes.append(
            Node(
                partial(nodes.tune_model, model=model),
                inputs=[*tune_inputs, "optuna_storage", "params:modeling", "params:atlas"],
                outputs="tuned_params",  # → <model>.tuned_params
                name="tune",
            )
        )
        inputs["tuned_params"] = "tuned_params"
    elif tuned_by is not None:
        inputs["tuned_params"] = f"{tuned_by}.tuned_params"  # another namespace's output
    pipeline_nodes.append(
        Node(
            partial(func, model=model),
            inputs=inputs,
            outputs=["oof_predictions", "cv_fold_metrics", "cv_fold_models"],
            name="cross_validate",
        )
    )
    # The namespace prefixes node names and datasets, except the inputs and parameters shared
    # by every model.
    used = {name for node in pipeline_nodes for name in node.inputs} - {"tuned_params"}
    params = {name for name in used if name.startswith("params:")}
    return Pipeline(pipeline_nodes, namespace=model, inputs=used - params, parameters=params)


def create_pipeline(models: Sequence[str] | None = None, **kwargs: object) -> Pipeline:
    """One namespace per model of ``models`` (default: the configured ``modeling.models``)
    and the nodes that gather their results."""
    names = ordered_models(configured_models() if models is None else list(models))
    leads = tuning_leads(names)
    per_model = [model_pipeline(model, leads[model]) for model in names]
    # TransEpRelap's studies, when it is among the models: the one model with a study.
    studies = sorted({lead for lead in leads.values() if lead is not None})
    tuned = {"tuned_params": f"{studies[0]}.tuned_params"} if studies else {}
    gather = [
        Node(
            nodes.combine_predictions,
            inputs=[f"{m}.oof_predictions" for m in names],
            outputs="oof_predictions",
            name="combine_predictions",
        ),
        Node(
            nodes.combine_fold_metrics,
            inputs=[f"{m}.cv_fold_metrics" for m in names],
            outputs=["cv_fold_metrics", "modeling_metrics"],
            name="combine_fold_metrics",
        ),
        Node(
            nodes.describe_modeling,
            inputs={
                "image_tensors": "image_tensors",
                "params": "params:modeling",
                "atlas": "params:atlas",
                **tuned,
            },
            outputs="modeling_config",
            name="describe_modeling",
        ),
    ]
    return Pipeline([*per_model, *gather], tags=["modeling", "training"])
