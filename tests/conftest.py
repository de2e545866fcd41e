"""Shared fixtures: a throw-away copy of the Kedro project to run real pipelines in."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_LAYERS = (
    "01_raw",
    "02_intermediate",
    "03_primary",
    "04_feature",
    "05_model_input",
    "06_models",
    "07_model_output",
    "08_reporting",
)

os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two test processes on a 2-core machine: one torch thread each (and in the kedro runs
    # they start), or the intra-op threads of both spin-wait for the same cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
# PostgreSQL, the MLflow tracking server and a run through it, shared by tests/servers/ and
# the browser tests (a plugin: fixtures of one folder are not visible in another).
pytest_plugins = ("tests.servers.fixtures",)


# Session fixtures that start real runs or servers. `make test` runs the suite in two
# processes (pytest-xdist, --dist loadgroup): every test using one of these runs in the same
# process, so each run and server starts once; every other module stays whole in one process,
# so its module fixtures run once too.
SHARED_RUN_FIXTURES = frozenset(
    {
        "smoke_run",
        "server_run",
        "postgres",
        "mlflow_tracking_server",
        "viz_server",
        "mlflow_server",
        "browser",
    }
)


def xdist_group_of(fixturenames: Iterable[str], module: str) -> str:
    """The pytest-xdist group of a test: ``shared-runs`` or its module."""
    return "shared-runs" if SHARED_RUN_FIXTURES.intersection(fixturenames) else module


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        group = xdist_group_of(getattr(item, "fixturenames", []), module)
        item.add_marker(pytest.mark.xdist_group(group))


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """One torch thread inside the block, the previous count restored after it.

    On a busy 2-core machine two intra-op threads spin-wait and run 5-20x slower than one,
    and one thread makes the sums (hence the fits) bit-reproducible.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def local_dask_cluster(n_workers: int = 2) -> Iterator[str]:
    """A real ``dask.distributed`` cluster, the kind a run starts for itself (single-threaded
    worker processes on 127.0.0.1, no dashboard): yields its scheduler address, always
    closes it."""
    from tle_kedro.training.parallel import local_cluster

    cluster = local_cluster(n_workers)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def make_project_copy(tmp_path: Path) -> Path:
    """A copy of the project's configuration in ``tmp_path`` (the package stays installed).

    Real ``kedro run``s in tests write their data layers and ``mlflow.db`` here, never into
    the developer's project.
    """
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir(exist_ok=True)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    shutil.copy(PROJECT_ROOT / ".telemetry", root / ".telemetry")
    # Kedro insists on a source folder inside the project; the package is the installed one.
    (root / "src").mkdir()
    for layer in DATA_LAYERS:
        (root / "data" / layer).mkdir(parents=True)
    return root


def run_kedro_command(
    project: Path, *args: str, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run ``kedro <args>`` in ``project``; fail the test with its output if it fails."""
    env = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "1"}
    kedro = Path(sys.executable).with_name("kedro")
    proc = subprocess.run(
        [str(kedro), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"kedro {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
        )
    return proc


def write_smoke_cohort(target: Path, n_patients: int, seed: int) -> Path:
    """A synthetic BIDS cohort with conf/smoke's generator settings, drawn in this process
    (what ``kedro run --env=smoke --pipelines=demo_cohort`` writes, without a kedro start-up).
    """
    from kedro.config import OmegaConfigLoader

    from tle_kedro.settings import CONFIG_LOADER_ARGS
    from tle_synth.api import generate_cohort

    args = {**CONFIG_LOADER_ARGS, "default_run_env": "smoke"}
    params = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env="smoke", **args)["parameters"]
    generate_cohort(params["demo_cohort"], target, seed=seed, n_patients=n_patients)
    return target


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """demo_cohort, then the default pipeline (``--env=smoke``), in a throw-away project copy.

    One real run shared by every test that needs its outputs (data layers, ``mlflow.db`` with
    the registered champion): end-to-end checks, the browser tests, the notebook and the
    store scan. Tests must not modify what it wrote, except under their own sub-folders.
    """
    root = make_project_copy(tmp_path_factory.mktemp("e2e"))
    run_kedro_command(root, "run", "--env=smoke", "--pipelines=demo_cohort")
    run_kedro_command(root, "run", "--env=smoke")
    return root
