"""Champion/challenger promotion in the MLflow model registry (aliases only, no stages).

A new version receives the alias ``champion`` only when it beats the current champion by more
than ``margin``; otherwise it receives ``challenger``. The first version of a name is
champion. Two rules, chosen per decision and written in its record (``comparison``):

- **paired** (the new model and the champion were scored on the same cohort: same
  :data:`COHORT_TAG`, a hash of ids and outcomes, and same :data:`FOLDS_TAG`, a hash of the
  fold assignment, and the champion's run holds its out-of-fold predictions as the artifact
  :data:`PREDICTIONS_ARTIFACT`, patients as positions in the cohort, never their ids):
  ΔC = C(new) − C(champion) on the same patients, with a paired patient bootstrap (both
  models' C on each resample, :mod:`..evaluation.bootstrap`);
  champion only when the **lower bound** of its interval is above ``margin``. A difference
  the resampling of patients can reverse does not move the alias.
- **unpaired** (anything else: another cohort, other folds, a champion registered before
  the predictions were logged): the recorded values, new − champion > ``margin``, with a
  warning that noise can decide it.

Each version carries its metric as version tags (:data:`METRIC_TAG`, :data:`VALUE_TAG`,
:data:`COHORT_TAG`, :data:`FOLDS_TAG`). kedro-mlflow never sets aliases: this module is the
one place that calls ``MlflowClient().set_registered_model_alias``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tle_kedro.evaluation import bootstrap as bs
from tle_kedro.evaluation.concordance import harrell_c
from tle_kedro.evaluation.metrics import prepare_eval_data

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
METRIC_TAG = "validation_metric"
VALUE_TAG = "validation_value"
COHORT_TAG = "validation_cohort"
FOLDS_TAG = "validation_folds"
# = artifact_path/filename of ``validation_predictions`` in conf/base/catalog_registry.yml
PREDICTIONS_ARTIFACT = "registry/validation_predictions.csv"
# ``patient`` = position of the participant id in the cohort's sorted ids: the MLflow store
# holds no participant id (tests/test_store_privacy.py), and on a cohort with the same
# fingerprint the same position is the same patient.
PREDICTION_COLUMNS = ("patient", "repeat", "fold", "risk")


@dataclass(frozen=True)
class PairedSettings:
    """Paired patient bootstrap of ΔC: ``n_boot`` resamples, two-sided ``level``."""

    n_boot: int = 1000
    level: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class PromotionDecision:
    """What happened to a new model version, with both numbers.

    ``alias`` is ``champion``, ``challenger`` or None (nothing registered: tracking off).
    ``champion_value`` is the previous champion's value (None when there was none);
    ``same_cohort`` is None when unknown. ``comparison`` is ``paired`` (ΔC and its paired
    bootstrap interval ``delta_lo``–``delta_hi`` decided) or ``unpaired`` (the two recorded
    values did).
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
    comparison: Literal["paired", "unpaired"] = "unpaired"
    delta: float | None = None
    delta_lo: float | None = None
    delta_hi: float | None = None

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


def validation_predictions(
    oof_predictions: pd.DataFrame, clinical: pd.DataFrame, model: str
) -> pd.DataFrame:
    """The out-of-fold rows of ``model`` as :data:`PREDICTION_COLUMNS` (the artifact a later
    run pairs with), sorted by repeat and patient; ids replaced by cohort positions.

    Raises:
        ValueError: no rows for ``model``, or a predicted patient not in ``clinical``.
    """
    rows = oof_predictions.loc[oof_predictions["model"] == model]
    if rows.empty:
        raise ValueError(f"oof_predictions has no rows for model {model!r}")
    position = {pid: k for k, pid in enumerate(sorted(clinical["participant_id"]))}
    unknown = sorted(set(rows["participant_id"]) - set(position))
    if unknown:
        raise ValueError(
            f"oof_predictions: {len(unknown)} patient(s) of {model!r} are not in "
            "clinical_validated; rerun modeling on this cohort"
        )
    out = rows.assign(patient=rows["participant_id"].map(position))[list(PREDICTION_COLUMNS)]
    return out.sort_values(["repeat", "patient"]).reset_index(drop=True)


def _with_ids(predictions: pd.DataFrame, clinical: pd.DataFrame) -> pd.DataFrame:
    """:func:`validation_predictions` rows with ``participant_id`` back from the positions."""
    ids = sorted(clinical["participant_id"])
    patient = predictions["patient"].to_numpy()
    if len(patient) and (patient.min() < 0 or patient.max() >= len(ids)):
        raise ValueError(f"patient positions outside the cohort of {len(ids)} patients")
    return predictions.assign(participant_id=[ids[k] for k in patient])


def fold_fingerprint(predictions: pd.DataFrame) -> str:
    """Short hash of the fold assignment (patient, repeat, fold): same hash = same folds."""
    table = predictions[["patient", "repeat", "fold"]].astype(int)
    text = table.sort_values(["repeat", "patient"]).to_csv(index=False)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def paired_delta_c(
    new: pd.DataFrame,
    champion: pd.DataFrame,
    clinical: pd.DataFrame,
    settings: PairedSettings = PairedSettings(),
) -> bs.Interval:
    """C(new) − C(champion), Harrell's C of the risk averaged over repeats (as
    :func:`validation_metric`), with the paired patient-bootstrap percentile interval.

    Args:
        new, champion: out-of-fold rows :data:`PREDICTION_COLUMNS` of each model.
        clinical: ``participant_id, time_months, recurrence`` of the cohort.
    Raises:
        ValueError: the two do not cover the same patients (then nothing can be paired).
    """
    both = pd.concat(
        [
            _with_ids(new, clinical).assign(model="new"),
            _with_ids(champion, clinical).assign(model="champion"),
        ]
    )
    data = prepare_eval_data(both, clinical, reference_model="new")  # risk: (2, n)
    n = len(data.time)
    counts = bs.resample_counts(bs.resample_indices(n, settings.n_boot, settings.seed), n)
    samples = bs.harrell_c_bootstrap(data.time, data.event, data.risk, counts)  # (2, B)
    estimate = harrell_c(data.risk[0], data.event, data.time) - harrell_c(
        data.risk[1], data.event, data.time
    )
    return bs.paired_difference(samples[0], samples[1], estimate, settings.level)


def decide_paired(delta: bs.Interval, margin: float, level: float) -> tuple[str, str]:
    """(alias, reason): champion only if the lower bound of the paired ΔC interval > margin."""
    verdict = delta.lo > margin
    return (CHAMPION if verdict else CHALLENGER), (
        f"paired comparison on the same patients and folds: ΔC = {delta.estimate:+.4f}, "
        f"{level:.0%} paired patient-bootstrap interval [{delta.lo:+.4f}, {delta.hi:+.4f}] "
        f"({delta.n_valid} resamples); its lower bound is "
        f"{'above' if verdict else 'not above'} the margin {margin:g}"
    )


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


def _champion_predictions(client: MlflowClient, champion: Any) -> pd.DataFrame | None:
    """The champion run's :data:`PREDICTIONS_ARTIFACT`, or None (not logged or unreadable)."""
    run_id = getattr(champion, "run_id", None)
    if not run_id:
        return None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run_id, PREDICTIONS_ARTIFACT, tmp)
            frame = pd.read_csv(Path(path))
    except (MlflowException, OSError) as exc:
        logger.info("champion run %s: no readable %s (%s)", run_id, PREDICTIONS_ARTIFACT, exc)
        return None
    return frame if set(PREDICTION_COLUMNS) <= set(frame.columns) else None


def _paired_delta(
    client: MlflowClient,
    champion: Any,
    metric: str,
    same_cohort: bool | None,
    folds: str | None,
    predictions: pd.DataFrame | None,
    clinical: pd.DataFrame | None,
    settings: PairedSettings,
) -> tuple[bs.Interval | None, str]:
    """(paired ΔC interval, "") when the champion can be paired with the new model, else
    (None, why not)."""
    tags = dict(champion.tags or {})
    if metric != "harrell_c":
        return None, f"no paired comparison for the metric {metric}"
    if predictions is None or clinical is None or folds is None:
        return None, "this run passed no out-of-fold predictions to pair"
    if same_cohort is not True:
        return None, "the champion was not validated on the same cohort (validation_cohort)"
    if tags.get(FOLDS_TAG) != folds:
        return None, "the champion was not validated on the same folds (validation_folds)"
    champion_predictions = _champion_predictions(client, champion)
    if champion_predictions is None:
        return None, f"the champion's run has no {PREDICTIONS_ARTIFACT}"
    if fold_fingerprint(champion_predictions) != folds:
        return None, f"the champion's {PREDICTIONS_ARTIFACT} holds other folds than its tag"
    try:
        return paired_delta_c(predictions, champion_predictions, clinical, settings), ""
    except ValueError as exc:
        return None, f"the predictions could not be paired ({exc})"


def promote(
    model_name: str,
    version: str,
    new_value: float,
    metric: str = "harrell_c",
    margin: float = 0.0,
    greater_is_better: bool = True,
    cohort: str | None = None,
    client: MlflowClient | None = None,
    *,
    folds: str | None = None,
    predictions: pd.DataFrame | None = None,
    clinical: pd.DataFrame | None = None,
    paired: PairedSettings = PairedSettings(),
) -> PromotionDecision:
    """Tag ``version`` with its metric and give it ``champion`` or ``challenger``.

    With ``predictions`` (the new model's out-of-fold rows, :data:`PREDICTION_COLUMNS`),
    ``clinical`` and ``folds`` (:func:`fold_fingerprint`), a champion validated on the same
    cohort and folds is compared by :func:`paired_delta_c`; otherwise by the recorded values.
    """
    client = client or MlflowClient()
    champion = current_champion(client, model_name)
    champion_version = champion_value = same_cohort = None
    delta, why_unpaired = None, ""
    if champion is not None and str(champion.version) != str(version):
        champion_version = str(champion.version)
        champion_value, same_cohort = _champion_numbers(champion, metric, cohort)
        delta, why_unpaired = _paired_delta(
            client, champion, metric, same_cohort, folds, predictions, clinical, paired
        )
    if same_cohort is False:
        logger.warning(
            "the champion (version %s) was validated on another cohort: %s values are compared "
            "across cohorts",
            champion_version,
            metric,
        )
    if delta is not None:
        alias, reason = decide_paired(delta, margin, paired.level)
    else:
        alias, reason = decide(new_value, champion_value, margin, metric, greater_is_better)
        if champion_value is not None:
            logger.warning(
                "%s version %s: no paired comparison with the champion (version %s): %s. "
                "Falling back to the recorded values, which noise alone can order",
                model_name,
                version,
                champion_version,
                why_unpaired,
            )
            reason += f"; unpaired, the fallback rule: {why_unpaired}"
    client.set_model_version_tag(model_name, version, METRIC_TAG, metric)
    client.set_model_version_tag(model_name, version, VALUE_TAG, repr(float(new_value)))
    if cohort is not None:
        client.set_model_version_tag(model_name, version, COHORT_TAG, cohort)
    if folds is not None:
        client.set_model_version_tag(model_name, version, FOLDS_TAG, folds)
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
        "paired" if delta is not None else "unpaired",
        None if delta is None else delta.estimate,
        None if delta is None else delta.lo,
        None if delta is None else delta.hi,
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
    *,
    folds: str | None = None,
    predictions: pd.DataFrame | None = None,
    clinical: pd.DataFrame | None = None,
    paired: PairedSettings = PairedSettings(),
    version_tags: dict[str, str] | None = None,
) -> PromotionDecision:
    """Promote the version registered by ``run_id`` (default: the active run); tag the run.

    With no MLflow run (tracking switched off) nothing was logged: the decision says so.
    ``folds``, ``predictions``, ``clinical`` and ``paired``: see :func:`promote`.
    ``version_tags``: more tags for the model version (e.g. which comparison model it is and
    whether it is a refit or a fold ensemble), so the registry's version list says so.

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
    decision = promote(
        model_name,
        version,
        new_value,
        metric,
        margin,
        cohort=cohort,
        client=client,
        folds=folds,
        predictions=predictions,
        clinical=clinical,
        paired=paired,
    )
    for tag, text in (version_tags or {}).items():
        client.set_model_version_tag(model_name, version, tag, text)
    for key, value in {
        "registry.model_name": model_name,
        "registry.version": version,
        "registry.alias": decision.alias,
        "registry.reason": decision.reason,
        "registry.comparison": decision.comparison,
    }.items():
        client.set_tag(run_id, key, str(value)[:5000])
    return decision
