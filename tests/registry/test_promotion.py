"""Champion/challenger promotion against a temporary SQLite MLflow store."""

from __future__ import annotations

import re
from collections.abc import Iterator

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient
from sksurv.metrics import concordance_index_censored

from tle_kedro.registry.promotion import (
    CHALLENGER,
    CHAMPION,
    FOLDS_TAG,
    PREDICTION_COLUMNS,
    PREDICTIONS_ARTIFACT,
    VALUE_TAG,
    PairedSettings,
    cohort_fingerprint,
    decide,
    decide_paired,
    fold_fingerprint,
    paired_delta_c,
    promote_run_model,
    validation_metric,
    validation_predictions,
)


class _Constant(PythonModel):
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return model_input


@pytest.fixture(scope="module")
def _sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One temporary SQLite store for the module (creating one takes ~2 s)."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db")
    yield
    mlflow.set_tracking_uri(previous)


@pytest.fixture
def store(_sqlite: None) -> MlflowClient:
    return MlflowClient()


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """Each test registers under its own model name (the store is shared)."""
    return "m_" + re.sub(r"\W", "_", request.node.name)


def _register_and_promote(name: str, value: float, margin: float = 0.0, cohort: str = "c1"):  # type: ignore[no-untyped-def]
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(
            name="model", python_model=_Constant(), registered_model_name=name, pip_requirements=[]
        )
        decision = promote_run_model(name, value, margin=margin, cohort=cohort)
    return run.info.run_id, decision


def _alias(client: MlflowClient, name: str, alias: str) -> str:
    return str(client.get_model_version_by_alias(name, alias).version)


def test_first_model_becomes_champion(store: MlflowClient, name: str) -> None:
    run_id, decision = _register_and_promote(name, 0.61)
    assert (decision.alias, decision.version, decision.champion_value) == (CHAMPION, "1", None)
    assert _alias(store, name, CHAMPION) == "1"
    assert store.get_model_version(name, "1").tags[VALUE_TAG] == repr(0.61)
    run = store.get_run(run_id)
    assert run.data.tags["registry.alias"] == CHAMPION
    assert run.data.tags["registry.version"] == "1"


def test_better_model_takes_the_champion_alias(store: MlflowClient, name: str) -> None:
    _register_and_promote(name, 0.61)
    _, decision = _register_and_promote(name, 0.70)
    assert decision.alias == CHAMPION
    assert (decision.new_value, decision.champion_value) == (0.70, 0.61)
    assert decision.champion_version == "1"
    assert _alias(store, name, CHAMPION) == "2"
    assert decision.same_cohort is True


def test_worse_model_becomes_challenger_and_champion_stays(store: MlflowClient, name: str) -> None:
    _register_and_promote(name, 0.70)
    _, decision = _register_and_promote(name, 0.65)
    assert decision.alias == CHALLENGER
    assert (decision.new_value, decision.champion_value) == (0.65, 0.70)
    assert _alias(store, name, CHAMPION) == "1"
    assert _alias(store, name, CHALLENGER) == "2"


def test_a_gain_within_the_margin_is_not_enough(store: MlflowClient, name: str) -> None:
    _register_and_promote(name, 0.70, margin=0.02)
    _, decision = _register_and_promote(name, 0.71, margin=0.02)
    assert decision.alias == CHALLENGER
    assert "margin 0.02" in decision.reason


def test_another_cohort_is_flagged(store: MlflowClient, name: str) -> None:
    _register_and_promote(name, 0.70, cohort="c1")
    _, decision = _register_and_promote(name, 0.72, cohort="c2")
    assert decision.same_cohort is False


def test_without_an_mlflow_run_nothing_is_promoted(store: MlflowClient, name: str) -> None:
    decision = promote_run_model(name, 0.7)
    assert decision.alias is None and decision.version is None
    assert "no active MLflow run" in decision.reason


def test_a_run_that_registered_nothing_names_the_catalog_fix(
    store: MlflowClient, name: str
) -> None:
    with mlflow.start_run(), pytest.raises(ValueError, match="registered_model_name"):
        promote_run_model(name, 0.7)


@pytest.mark.parametrize(
    ("new", "champion", "margin", "expected"),
    [
        (0.7, None, 0.0, CHAMPION),
        (0.7, 0.6, 0.0, CHAMPION),
        (0.6, 0.6, 0.0, CHALLENGER),
        (0.5, 0.6, 0.0, CHALLENGER),
        (0.65, 0.6, 0.1, CHALLENGER),
        (0.7, float("nan"), 0.0, CHAMPION),
    ],
)
def test_decide_needs_a_gain_above_the_margin(
    new: float, champion: float | None, margin: float, expected: str
) -> None:
    assert decide(new, champion, margin)[0] == expected


def test_decide_respects_lower_is_better() -> None:
    assert decide(0.10, 0.15, 0.0, "ibs", greater_is_better=False)[0] == CHAMPION
    assert decide(0.20, 0.15, 0.0, "ibs", greater_is_better=False)[0] == CHALLENGER


def test_validation_metric_is_harrell_c_of_the_repeat_mean_risk() -> None:
    rng = np.random.default_rng(0)
    n = 40
    clinical = pd.DataFrame(
        {
            "participant_id": [f"sub-{i:03d}" for i in range(n)],
            "time_months": rng.uniform(1, 30, n),
            "recurrence": rng.integers(0, 2, n),
        }
    )
    risks = rng.normal(size=(2, n))
    oof = pd.concat(
        [
            pd.DataFrame(
                {
                    "participant_id": clinical["participant_id"],
                    "model": "transeprelap",
                    "repeat": r,
                    "fold": 0,
                    "risk": risks[r],
                    "surv_12": 0.5,
                }
            )
            for r in range(2)
        ]
    )
    expected = concordance_index_censored(
        clinical["recurrence"].astype(bool), clinical["time_months"], risks.mean(axis=0)
    )[0]
    assert validation_metric(oof, clinical) == pytest.approx(expected)
    with pytest.raises(ValueError, match="modeling.models"):
        validation_metric(oof, clinical, model="late_fusion")
    assert cohort_fingerprint(clinical) == cohort_fingerprint(clinical.iloc[::-1])
    assert cohort_fingerprint(clinical) != cohort_fingerprint(clinical.iloc[1:])


# ---------- paired promotion: same cohort and folds → paired patient-bootstrap ΔC ----------

N_PAIRED = 150


@pytest.fixture(scope="module")
def paired_cohort() -> tuple[pd.DataFrame, np.ndarray]:
    """(clinical, true log-hazard): exponential times, ~55 % events."""
    rng = np.random.default_rng(3)
    log_hazard = rng.normal(0.0, 1.0, N_PAIRED)
    event_time = rng.exponential(20.0 * np.exp(-log_hazard))
    follow_up = rng.uniform(12.0, 40.0, N_PAIRED)
    clinical = pd.DataFrame(
        {
            "participant_id": [f"sub-{i:03d}" for i in range(N_PAIRED)],
            "time_months": np.minimum(event_time, follow_up),
            "recurrence": (event_time <= follow_up).astype(int),
        }
    )
    return clinical, log_hazard


def _oof(clinical: pd.DataFrame, risk: np.ndarray, n_folds: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "participant_id": clinical["participant_id"],
            "model": "transeprelap",
            "repeat": 0,
            "fold": np.arange(len(clinical)) % n_folds,
            "risk": risk,
        }
    )


def _predictions(clinical: pd.DataFrame, risk: np.ndarray, n_folds: int = 5) -> pd.DataFrame:
    """What the run logs: the model's rows with cohort positions instead of ids."""
    return validation_predictions(_oof(clinical, risk, n_folds), clinical, "transeprelap")


def _c_of(clinical: pd.DataFrame, predictions: pd.DataFrame) -> float:
    ids = sorted(clinical["participant_id"])
    oof = predictions.assign(participant_id=[ids[k] for k in predictions["patient"]])
    return validation_metric(oof.assign(model="transeprelap"), clinical)


def _register_paired(  # type: ignore[no-untyped-def]
    name: str,
    clinical: pd.DataFrame,
    predictions: pd.DataFrame,
    tmp_path,
    log_predictions: bool = True,
):
    """A run that logs its predictions as the catalog does, registers and promotes."""
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="model", python_model=_Constant(), registered_model_name=name, pip_requirements=[]
        )
        if log_predictions:
            path = tmp_path / PREDICTIONS_ARTIFACT.split("/")[-1]
            predictions.to_csv(path, index=False)
            mlflow.log_artifact(str(path), artifact_path=PREDICTIONS_ARTIFACT.split("/")[0])
        return promote_run_model(
            name,
            _c_of(clinical, predictions),
            cohort=cohort_fingerprint(clinical),
            folds=fold_fingerprint(predictions),
            predictions=predictions,
            clinical=clinical,
            paired=PairedSettings(n_boot=400, seed=1),
        )


def test_a_clearly_better_model_takes_the_alias_on_a_paired_comparison(
    store: MlflowClient, name: str, paired_cohort, tmp_path
) -> None:
    clinical, lh = paired_cohort
    rng = np.random.default_rng(0)
    _register_paired(
        name, clinical, _predictions(clinical, lh + rng.normal(0, 3.0, N_PAIRED)), tmp_path
    )
    better = _predictions(clinical, lh + rng.normal(0, 0.3, N_PAIRED))
    decision = _register_paired(name, clinical, better, tmp_path)
    assert decision.comparison == "paired"
    assert decision.alias == CHAMPION and _alias(store, name, CHAMPION) == "2"
    assert decision.delta_lo > 0.0
    assert decision.delta == pytest.approx(decision.new_value - decision.champion_value)
    assert "paired comparison on the same patients and folds" in decision.reason
    assert store.get_model_version(name, "2").tags[FOLDS_TAG] == fold_fingerprint(better)


def test_a_noise_level_gain_does_not_flip_the_champion(
    store: MlflowClient, name: str, paired_cohort, tmp_path
) -> None:
    clinical, lh = paired_cohort
    rng = np.random.default_rng(5)
    champion = _predictions(clinical, lh + rng.normal(0, 1.0, N_PAIRED))
    _register_paired(name, clinical, champion, tmp_path)
    # the same predictions with a little noise: pick a draw whose C is (by chance) higher
    for _ in range(50):
        noisy = champion.assign(risk=champion["risk"] + rng.normal(0, 0.3, N_PAIRED))
        if _c_of(clinical, noisy) > _c_of(clinical, champion):
            break
    assert _c_of(clinical, noisy) > _c_of(clinical, champion)  # today's rule would promote
    assert decide(_c_of(clinical, noisy), _c_of(clinical, champion), 0.0)[0] == CHAMPION
    decision = _register_paired(name, clinical, noisy, tmp_path)
    assert decision.comparison == "paired"
    assert decision.delta > 0 and decision.delta_lo <= 0.0
    assert decision.alias == CHALLENGER and _alias(store, name, CHAMPION) == "1"
    assert "not above the margin" in decision.reason


def test_another_cohort_falls_back_to_the_recorded_values_with_a_warning(
    store: MlflowClient, name: str, paired_cohort, tmp_path, caplog
) -> None:
    clinical, lh = paired_cohort
    rng = np.random.default_rng(2)
    _register_paired(
        name, clinical, _predictions(clinical, lh + rng.normal(0, 1.0, N_PAIRED)), tmp_path
    )
    other = clinical.iloc[10:].reset_index(drop=True)  # 10 patients fewer: another cohort
    noisy = _predictions(other, lh[10:] + rng.normal(0, 1.0, N_PAIRED - 10))
    with caplog.at_level("WARNING", logger="tle_kedro.registry.promotion"):
        decision = _register_paired(name, other, noisy, tmp_path)
    assert decision.comparison == "unpaired" and decision.delta is None
    assert decision.same_cohort is False
    assert "another cohort" in caplog.text and "Falling back" in caplog.text
    expected = decide(decision.new_value, decision.champion_value, 0.0)
    assert decision.alias == expected[0]
    assert "unpaired, the fallback rule" in decision.reason


def test_other_folds_or_a_champion_without_predictions_fall_back(
    store: MlflowClient, name: str, paired_cohort, tmp_path
) -> None:
    clinical, lh = paired_cohort
    first = _predictions(clinical, lh)
    _register_paired(name, clinical, first, tmp_path, log_predictions=False)
    decision = _register_paired(name, clinical, first.assign(risk=lh + 0.1), tmp_path)
    assert decision.comparison == "unpaired"
    assert "has no registry/validation_predictions.csv" in decision.reason
    refolded = _predictions(clinical, lh, n_folds=3)
    decision = _register_paired(name, clinical, refolded, tmp_path)
    assert decision.comparison == "unpaired"
    assert "same folds" in decision.reason


def test_paired_delta_of_identical_predictions_is_exactly_zero(paired_cohort) -> None:
    clinical, lh = paired_cohort
    same = _predictions(clinical, lh)
    delta = paired_delta_c(same, same, clinical, PairedSettings(n_boot=100))
    assert (delta.estimate, delta.lo, delta.hi) == (0.0, 0.0, 0.0)
    assert decide_paired(delta, 0.0, 0.95)[0] == CHALLENGER


def test_paired_delta_needs_the_same_patients(paired_cohort) -> None:
    clinical, lh = paired_cohort
    with pytest.raises(ValueError, match="same patients"):
        paired_delta_c(_predictions(clinical, lh), _predictions(clinical, lh).iloc[5:], clinical)


def test_logged_predictions_hold_cohort_positions_not_participant_ids(paired_cohort) -> None:
    clinical, lh = paired_cohort
    shuffled = clinical.sample(frac=1.0, random_state=0)  # order of the table is irrelevant
    logged = validation_predictions(_oof(clinical, lh), shuffled, "transeprelap")
    assert tuple(logged.columns) == PREDICTION_COLUMNS
    assert "sub-" not in logged.to_csv(index=False)
    first = sorted(clinical["participant_id"]).index("sub-007")
    assert logged.loc[logged["patient"] == first, "risk"].item() == lh[7]
    with pytest.raises(ValueError, match="not in clinical_validated"):
        validation_predictions(_oof(clinical, lh), clinical.iloc[1:], "transeprelap")


def test_fold_fingerprint_ignores_row_order_but_not_the_assignment(paired_cohort) -> None:
    clinical, lh = paired_cohort
    p = _predictions(clinical, lh)
    assert fold_fingerprint(p) == fold_fingerprint(p.iloc[::-1])
    assert fold_fingerprint(p) == fold_fingerprint(p.assign(risk=0.0))
    assert fold_fingerprint(p) != fold_fingerprint(_predictions(clinical, lh, n_folds=4))
