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
    VALUE_TAG,
    cohort_fingerprint,
    decide,
    promote_run_model,
    validation_metric,
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
