"""Champion/challenger promotion in the MLflow model registry (aliases only, no stages).

A new version receives the alias ``champion`` only when its validation metric beats the
current champion's by more than ``margin``; otherwise it receives ``challenger``. The first
version of a name is champion. Each version carries its metric as version tags
(:data:`METRIC_TAG`, :data:`VALUE_TAG`, :data:`COHORT_TAG`), so the next run compares against
the number the champion was promoted with. kedro-mlflow never sets aliases: this module is
the one place that calls ``MlflowClient().set_registered_model_alias``.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tle_kedro.evaluation.concordance import harrell_c
from tle_kedro.evaluation.metrics import prepare_eval_data

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
METRIC_TAG = "validation_metric"
VALUE_TAG = "validation_value"
COHORT_TAG = "validation_cohort"


@dataclass(frozen=True)
class PromotionDecision:
    """What happened to a new model version, with both numbers.

    ``alias`` is ``champion``, ``challenger`` or None (nothing registered: tracking off).
    ``champion_value`` is the previous champion's value (None when there was none);
    ``same_cohort`` is None when unknown.
    """

    model_name: str
    version: str | None
    alias: str | None
    metric: str
    new_value: float
    champion_version: str | None
    champion_value: float | None
    margin: float
    reason: str
    same_cohort: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def validation_metric(
    oof_predictions: pd.DataFrame,
    clinical: pd.DataFrame,
    model: str = "transeprelap",
    metric: str = "harrell_c",
) -> float:
    """Out-of-fold ``metric`` of ``model`` (risk averaged over repeats, as in comparison_table).

    Raises:
        ValueError: unknown metric, or no out-of-fold rows for ``model``.
    """
    if metric != "harrell_c":
        raise ValueError(f"validation metric {metric!r} is not supported; use harrell_c")
    rows = oof_predictions[oof_predictions["model"] == model]
    if rows.empty:
        raise ValueError(
            f"oof_predictions has no rows for model {model!r} (models: "
            f"{sorted(set(oof_predictions['model']))}); add it to modeling.models"
        )
    data = prepare_eval_data(rows, clinical, reference_model=model)
    return harrell_c(data.risk[0], data.event, data.time)


def cohort_fingerprint(clinical: pd.DataFrame) -> str:
    """Short hash of the validation cohort (ids and outcomes): same hash = same cohort."""
    cols = [c for c in ("participant_id", "time_months", "recurrence") if c in clinical.columns]
    table = clinical[cols].sort_values("participant_id").to_csv(index=False)
    return hashlib.blake2b(table.encode(), digest_size=8).hexdigest()


def decide(
    new_value: float,
    champion_value: float | None,
    margin: float,
    metric: str = "harrell_c",
    greater_is_better: bool = True,
) -> tuple[str, str]:
    """(alias, reason): champion only if the new value beats the champion's by > ``margin``."""
    if champion_value is None or math.isnan(champion_value):
        return CHAMPION, f"no current champion with a recorded {metric}"
    gain = new_value - champion_value if greater_is_better else champion_value - new_value
    verdict = "beats" if gain > margin else "does not beat"
    alias = CHAMPION if gain > margin else CHALLENGER
    return alias, (
        f"{metric} {new_value:.4f} {verdict} the champion's {champion_value:.4f} by more than "
        f"the margin {margin:g} (difference {gain:+.4f})"
    )


def current_champion(client: MlflowClient, model_name: str) -> Any | None:
    """The ``ModelVersion`` holding the ``champion`` alias, or None (no model or no alias)."""
    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None


def version_for_run(client: MlflowClient, model_name: str, run_id: str) -> str | None:
    """Newest version of ``model_name`` logged by ``run_id``, or None."""
    versions = client.search_model_versions(f"name='{model_name}' and run_id='{run_id}'")
    return str(max(int(v.version) for v in versions)) if versions else None


def _champion_numbers(
    champion: Any, metric: str, cohort: str | None
) -> tuple[float | None, bool | None]:
    tags = dict(champion.tags or {})
    value = float(tags[VALUE_TAG]) if tags.get(METRIC_TAG) == metric and VALUE_TAG in tags else None
    same = None if cohort is None or COHORT_TAG not in tags else tags[COHORT_TAG] == cohort
    return value, same


def promote(
    model_name: str,
    version: str,
    new_value: float,
    metric: str = "harrell_c",
    margin: float = 0.0,
    greater_is_better: bool = True,
    cohort: str | None = None,
    client: MlflowClient | None = None,
) -> PromotionDecision:
    """Tag ``version`` with its metric and give it ``champion`` or ``challenger``."""
    client = client or MlflowClient()
    champion = current_champion(client, model_name)
    champion_version = champion_value = same_cohort = None
    if champion is not None and str(champion.version) != str(version):
        champion_version = str(champion.version)
        champion_value, same_cohort = _champion_numbers(champion, metric, cohort)
    if same_cohort is False:
        logger.warning(
            "the champion (version %s) was validated on another cohort: %s values are compared "
            "across cohorts",
            champion_version,
            metric,
        )
    alias, reason = decide(new_value, champion_value, margin, metric, greater_is_better)
    client.set_model_version_tag(model_name, version, METRIC_TAG, metric)
    client.set_model_version_tag(model_name, version, VALUE_TAG, repr(float(new_value)))
    if cohort is not None:
        client.set_model_version_tag(model_name, version, COHORT_TAG, cohort)
    client.set_registered_model_alias(model_name, alias, version)
    decision = PromotionDecision(
        model_name,
        str(version),
        alias,
        metric,
        float(new_value),
        champion_version,
        champion_value,
        float(margin),
        reason,
        same_cohort,
    )
    logger.info("%s version %s -> @%s: %s", model_name, version, alias, reason)
    return decision


def promote_run_model(
    model_name: str,
    new_value: float,
    metric: str = "harrell_c",
    margin: float = 0.0,
    cohort: str | None = None,
    run_id: str | None = None,
) -> PromotionDecision:
    """Promote the version registered by ``run_id`` (default: the active run); tag the run.

    With no MLflow run (tracking switched off) nothing was logged: the decision says so.

    Raises:
        ValueError: a run is active but registered no version of ``model_name``.
    """
    import mlflow

    if run_id is None and mlflow.active_run() is not None:
        run_id = mlflow.active_run().info.run_id  # type: ignore[union-attr]
    if run_id is None:
        reason = "no active MLflow run: the model was neither logged nor registered"
        logger.warning("%s: %s", model_name, reason)
        return PromotionDecision(
            model_name, None, None, metric, float(new_value), None, None, margin, reason
        )
    client = MlflowClient()
    version = version_for_run(client, model_name, run_id)
    if version is None:
        raise ValueError(
            f"run {run_id} registered no version of {model_name!r}: the catalog entry "
            f"registered_model must have save_args.registered_model_name: {model_name} "
            "(conf/base/catalog_registry.yml, same name as registry.model_name)"
        )
    decision = promote(model_name, version, new_value, metric, margin, cohort=cohort, client=client)
    for key, value in {
        "registry.model_name": model_name,
        "registry.version": version,
        "registry.alias": decision.alias,
        "registry.reason": decision.reason,
    }.items():
        client.set_tag(run_id, key, str(value)[:5000])
    return decision
