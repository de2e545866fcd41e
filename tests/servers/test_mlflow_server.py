"""The project against an MLflow tracking server backed by PostgreSQL (docs/scaling_out.md §1).

``server_run`` configures a copy of the smoke project with conf/local as the docs say (the
tracking URI in ``mlflow.yml``, the Optuna storage in ``catalog.yml``), then runs
``final_model`` (refit, log, register, promote) and ``inference`` (loads
``models:/tle_recurrence@champion``) through HTTP.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import optuna
import pandas as pd
import pytest
import sqlalchemy
from mlflow.tracking import MlflowClient

from tests.servers.fixtures import INFERENCE_PATIENTS, ServerRun, docs_yaml
from tests.servers.postgres import Postgres
from tests.serving import assert_loopback_only
from tle_kedro.training.tuning import final_study_name

pytestmark = pytest.mark.slow

MODEL = "tle_recurrence"
EXPERIMENT = "tle_kedro"
_USERINFO_PASSWORD = re.compile(r"://[^/@\s:]+:[^/@\s]*@")  # scheme://user:password@host


def client_of(run: ServerRun) -> MlflowClient:
    return MlflowClient(tracking_uri=run.server.url, registry_uri=run.server.url)


def test_final_model_is_logged_registered_and_promoted_through_the_server(
    server_run: ServerRun,
) -> None:
    client = client_of(server_run)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    run = client.get_run(champion.run_id)
    assert run.info.run_name == "final_model"
    assert run.data.metrics["registry.promoted_to_champion"] == 1.0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "registry")}
    assert "registry/promotion_decision.json" in artifacts  # downloaded through the proxy
    # Artifacts went through the server into its --artifacts-destination, not a local mlruns/.
    assert client.get_experiment(run.info.experiment_id).artifact_location.startswith(
        "mlflow-artifacts:"
    )
    assert list(server_run.artifacts.rglob("python_model.pkl")), "the model is not on the server"
    assert list(server_run.artifacts.rglob("promotion_decision.json"))
    # The project never fell back to its embedded store.
    assert not (server_run.project / "mlflow.db").exists()
    assert not (server_run.project / "mlruns").exists()


def test_the_server_keeps_runs_and_the_registry_in_postgresql(
    server_run: ServerRun, postgres: Postgres
) -> None:
    engine = sqlalchemy.create_engine(postgres.url("mlflow"))
    try:
        with engine.connect() as db:
            aliases = db.execute(
                sqlalchemy.text("SELECT name, alias FROM registered_model_aliases")
            ).all()
            runs = db.execute(sqlalchemy.text("SELECT name FROM runs")).scalars().all()
    finally:
        engine.dispose()
    assert (MODEL, "champion") in [tuple(a) for a in aliases]
    assert {"final_model", "inference"} <= set(runs)


def test_the_final_models_study_is_in_the_postgresql_storage(server_run: ServerRun) -> None:
    prefix = final_study_name("transeprelap") + "-"  # then the study key
    (name,) = [n for n in optuna.get_all_study_names(server_run.storage) if n.startswith(prefix)]
    study = optuna.load_study(study_name=name, storage=server_run.storage)
    assert study.trials and all(t.state.is_finished() for t in study.trials)


def test_inference_loads_the_champion_through_the_server(server_run: ServerRun) -> None:
    predictions = pd.read_csv(server_run.project / "data/07_model_output/predictions.csv")
    cohort = pd.read_csv(server_run.cohort / "participants.tsv", sep="\t")
    assert len(cohort) == INFERENCE_PATIENTS
    assert sorted(predictions["participant_id"]) == sorted(cohort["participant_id"])
    assert predictions["risk"].notna().all()
    assert predictions["p_recurrence_12"].between(0, 1).all()
    client = client_of(server_run)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    inference = client.search_runs([experiment.experiment_id], "attributes.run_name = 'inference'")
    assert len(inference) == 1 and inference[0].info.status == "FINISHED"


def test_no_password_reaches_a_url_a_run_or_the_server_command(
    server_run: ServerRun, postgres: Postgres
) -> None:
    client = client_of(server_run)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert runs
    logged = [v for r in runs for v in (*r.data.params.values(), *r.data.tags.values())]
    logged += list(server_run.server.command)
    for password in postgres.passwords.values():
        assert not any(password in value for value in logged)
    assert not [v for v in logged if _USERINFO_PASSWORD.search(v)]
    # The URLs the docs tell users to write carry no password either.
    assert urlsplit(docs_yaml("optuna_storage")["optuna_storage"]["url"]).password is None
    assert urlsplit(server_run.storage).password is None


def test_servers_listen_on_loopback_only(server_run: ServerRun, postgres: Postgres) -> None:
    command = server_run.server.command
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert_loopback_only(server_run.server.port)
    assert_loopback_only(postgres.port)
