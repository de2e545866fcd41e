"""Fixtures with real servers: PostgreSQL, an MLflow tracking server on it, a run through it.

A pytest plugin (``pytest_plugins`` in tests/conftest.py), so that tests/servers/ and the
browser tests share one cluster and one server per session. Everything listens on 127.0.0.1
only and is stopped at the end of the session, pass or fail.

Without PostgreSQL these tests skip and say why; with ``TLE_REQUIRE_SERVERS=1`` (``.ci/run``
sets it after installing ``postgresql``) they fail instead, so CI cannot pass without them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from tests.conftest import PROJECT_ROOT, make_project_copy, run_kedro_command
from tests.servers.postgres import Postgres, PostgresUnavailable, throwaway_cluster
from tests.serving import MLFLOW_SERVER_ENV, Server, free_port, serve, venv_bin

ROLES = ("optuna", "mlflow")
SCALING_OUT = PROJECT_ROOT / "docs" / "scaling_out.md"
_YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)
INFERENCE_PATIENTS = 2
# What `final_model` reads (not 06_models: the smoke run's fold models are ~450 MB).
FINAL_MODEL_INPUTS = (
    "01_raw",
    "02_intermediate",
    "03_primary",
    "04_feature",
    "05_model_input",
    "07_model_output",
)


def servers_unavailable(reason: str) -> NoReturn:
    """Skip (locally) or fail (``TLE_REQUIRE_SERVERS=1``, CI) a test that needs the servers."""
    if os.environ.get("TLE_REQUIRE_SERVERS") == "1":
        pytest.fail(f"TLE_REQUIRE_SERVERS=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """A throw-away PostgreSQL cluster with the databases ``optuna`` and ``mlflow``.

    ``PGPASSFILE`` names its password file for the session (this process and every
    subprocess: workers, ``kedro run``, ``mlflow server``), so no URL carries a password.
    """
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(
                throwaway_cluster(ROLES, tmp_path_factory.mktemp("pgpass"))
            )
        except PostgresUnavailable as exc:
            servers_unavailable(str(exc))
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        patch.setenv("PGPASSFILE", str(cluster.passfile))
        yield cluster


@pytest.fixture(scope="session")
def mlflow_tracking_server(
    postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """``mlflow server`` with PostgreSQL as backend store and a temporary artifact folder.

    Artifacts are proxied (``--artifacts-destination``): clients upload and download them
    through HTTP. Started as docs/scaling_out.md shows, on 127.0.0.1 and a free port.
    """
    folder = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    command = [
        venv_bin("mlflow"), "server",
        "--backend-store-uri", postgres.url("mlflow"),
        "--artifacts-destination", str(folder / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log = folder / "server.log"
    with serve(command, folder, port, log, "/health", MLFLOW_SERVER_ENV) as server:
        yield server


def docs_yaml(first_key: str) -> dict[str, Any]:
    """The YAML block of docs/scaling_out.md whose first key is ``first_key``.

    The tests configure the project with the very snippets the docs tell users to put in
    ``conf/local``, so the two cannot drift apart.
    """
    for block in _YAML_BLOCK.findall(SCALING_OUT.read_text(encoding="utf-8")):
        parsed = yaml.safe_load(block)
        if isinstance(parsed, dict) and next(iter(parsed)) == first_key:
            return parsed
    raise AssertionError(f"docs/scaling_out.md has no ```yaml block starting with {first_key}:")


@dataclass(frozen=True)
class ServerRun:
    """A project whose conf/local points at the tracking server and the PostgreSQL storage."""

    project: Path
    server: Server
    storage: str
    cohort: Path
    artifacts: Path


def write_local_conf(project: Path, tracking_uri: str, storage: str) -> None:
    """conf/local as docs/scaling_out.md says, plus the smoke sizes (one env: no --env).

    ``mlflow.yml``, the ``optuna_storage`` catalog entry and ``modeling.tuning`` are the
    docs' snippets with this machine's URLs; conf/smoke's parameters are copied in (its
    ``modeling`` section merged into the same ``parameters_modeling.yml``: one key may not be
    defined twice in an environment).
    """
    local = project / "conf" / "local"
    mlflow_yml = docs_yaml("server")
    mlflow_yml["server"]["mlflow_tracking_uri"] = tracking_uri
    catalog = docs_yaml("optuna_storage")
    catalog["optuna_storage"]["url"] = storage
    tuning = docs_yaml("modeling")
    smoke = yaml.safe_load((project / "conf" / "smoke" / "parameters.yml").read_text())
    modeling = smoke.pop("modeling")
    modeling["tuning"] = {**modeling.get("tuning", {}), **tuning["modeling"]["tuning"]}
    # One network instead of the smoke run's 2 x 2 snapshot ensemble: what is tested here is
    # where the model goes, not the ensemble (test_end_to_end covers that).
    modeling["train"] |= {"ensemble": 1, "snapshots": 1}
    (local / "mlflow.yml").write_text(yaml.safe_dump(mlflow_yml))
    (local / "catalog.yml").write_text(yaml.safe_dump(catalog))
    (local / "parameters_modeling.yml").write_text(yaml.safe_dump({"modeling": modeling}))
    (local / "parameters.yml").write_text(yaml.safe_dump(smoke))
    shutil.copy(project / "conf/smoke/parameters_confirmation.yml", local)


def small_cohort(source: Path, target: Path, n: int) -> Path:
    """The first ``n`` patients of a BIDS cohort, without outcomes (new patients)."""
    import pandas as pd

    table = pd.read_csv(source / "participants.tsv", sep="\t").head(n)
    target.mkdir(parents=True)
    for pid in table["participant_id"]:
        shutil.copytree(source / pid, target / pid)
    table.drop(columns=["engel_class", "recurrence", "time_months"]).to_csv(
        target / "participants.tsv", sep="\t", index=False
    )
    return target


@pytest.fixture(scope="session")
def server_run(
    smoke_run: Path,
    postgres: Postgres,
    mlflow_tracking_server: Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> ServerRun:
    """``final_model`` (refit, log, register, promote) then ``inference``, both through HTTP.

    The project is a copy of the smoke run's data layers (so nothing upstream runs again)
    without its ``mlflow.db``: the tracking server is the only registry there is. The final
    model's Optuna study goes to PostgreSQL.
    """
    project = make_project_copy(tmp_path_factory.mktemp("server_run"))
    for layer in FINAL_MODEL_INPUTS:
        shutil.copytree(smoke_run / "data" / layer, project / "data" / layer, dirs_exist_ok=True)
    storage = postgres.url("optuna")
    write_local_conf(project, mlflow_tracking_server.url, storage)
    cohort = small_cohort(
        smoke_run / "data/01_raw/cohort", project / "new_patients", INFERENCE_PATIENTS
    )
    run_kedro_command(project, "run", "--pipelines=final_model")
    # No attribution maps (tests/pipelines/test_inference.py checks them): only the loading.
    run_kedro_command(
        project,
        "run",
        "--pipelines=inference",
        f"--params=cohort_dir={cohort},inference.explain=false",
    )
    artifacts = mlflow_tracking_server.log.parent / "artifacts"  # --artifacts-destination
    return ServerRun(project, mlflow_tracking_server, storage, cohort, artifacts)
