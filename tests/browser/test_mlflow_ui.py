"""The MLflow UI on the smoke project's store, seen in headless Chromium: run, metrics, champion;
and the champion on the PostgreSQL-backed tracking server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import (
    click_all,
    make_recipe,
    on_screen,
)
from tests.servers.fixtures import ServerRun
from tests.serving import Server, assert_loopback_only

pytestmark = [pytest.mark.slow, pytest.mark.browser]

EXPERIMENT = "tle_kedro"
MODEL = "tle_transeprelap"
ALIAS = "champion"
PREFIX = "eval.transeprelap."
METRIC = PREFIX + "harrell_c"
ML_WORKFLOW = "workflowType=machine_learning"  # the "Model training" view, not GenAI's


@pytest.fixture(scope="module")
def champion(smoke_run: Path) -> dict[str, Any]:
    """What the store says (the truth the UI must show): experiment, champion run, metric."""
    client = MlflowClient(f"sqlite:///{smoke_run / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None, f"no experiment {EXPERIMENT!r} in the smoke run's store"
    version = client.get_model_version_by_alias(MODEL, ALIAS)
    assert version.run_id, f"{MODEL}@{ALIAS} has no run"
    run = client.get_run(version.run_id)
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    assert children, "the champion run has no nested runs (folds, trials)"
    return {
        "experiment_id": experiment.experiment_id,
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "child_name": children[0].info.run_name,
        "metric": run.data.metrics[METRIC],
        "n_prefixed": sum(key.startswith(PREFIX) for key in run.data.metrics),
        "version": version.version,
    }


def close_overlays(driver: Any) -> None:
    """Close the MLflow Assistant side panel and any promo dialog, as a user would."""
    closers = "//button[@aria-label='Close'] | //button[normalize-space()='Got it']"
    click_all(driver, closers)
    WebDriverWait(driver, 5, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: not any(e.is_displayed() for e in d.find_elements(By.XPATH, closers))
    )


def test_experiment_lists_the_champion_run_and_its_nested_runs(
    browser: Any, mlflow_server: Server, champion: dict[str, Any], screenshot_dir: Path
) -> None:
    name = champion["run_name"]
    browser.get(f"{mlflow_server.url}/#/experiments/{champion['experiment_id']}/runs?{ML_WORKFLOW}")
    on_screen(browser, f"//a[normalize-space()='{EXPERIMENT}']", f"the experiment {EXPERIMENT}")
    href = on_screen(
        browser,
        f"//a[normalize-space()='{name}']",
        f"the run {name}",
        lambda e: e.get_attribute("href"),
    )
    assert href.endswith(f"/runs/{champion['run_id']}")
    expand = f"//div[@role='gridcell'][.//a[normalize-space()='{name}']]//button"
    on_screen(browser, expand, "the button that shows the nested runs", lambda e: e.click())
    on_screen(browser, f"//a[normalize-space()='{champion['child_name']}']", "the nested runs")
    close_overlays(browser)
    browser.save_screenshot(str(screenshot_dir / "mlflow_runs.png"))


def test_run_page_shows_the_evaluation_metrics(
    browser: Any, mlflow_server: Server, champion: dict[str, Any], screenshot_dir: Path
) -> None:
    run = f"experiments/{champion['experiment_id']}/runs/{champion['run_id']}"
    browser.get(f"{mlflow_server.url}/#/{run}?{ML_WORKFLOW}")
    on_screen(
        browser,
        f"//*[@data-testid='runs-header'][normalize-space()='{champion['run_name']}']",
        "the run's name",
    )
    search = "//input[@placeholder='Search metrics']"
    on_screen(browser, search, "a metrics table", lambda e: e.send_keys(PREFIX))
    count = f"Metrics ({champion['n_prefixed']})"
    on_screen(browser, f"//h4[normalize-space()='{count}']", f"{count} after the search")
    row = f"//div[@role='row'][.//*[normalize-space()='{METRIC}']]"
    text = on_screen(browser, row, f"the metric {METRIC}")
    value = re.search(rf"{re.escape(METRIC)}\s+([-+.\deE]+)", text)
    assert value, f"no value next to {METRIC} in {text!r}"
    assert float(value.group(1)) == pytest.approx(champion["metric"], abs=1e-9)
    close_overlays(browser)
    browser.save_screenshot(str(screenshot_dir / "mlflow_run_metrics.png"))


def show_champion(browser: Any, url: str, version: str) -> None:
    """The registered model's page at ``url`` lists ``version`` with the champion alias."""
    browser.get(f"{url}/#/models/{MODEL}?{ML_WORKFLOW}")
    on_screen(browser, f"//h2[normalize-space()='{MODEL}']", f"the model {MODEL}")
    row = f"//div[@role='row'][.//*[@title='{ALIAS}']]"
    text = on_screen(browser, row, f"a model version with the alias {ALIAS}")
    assert f"Version {version}" in text
    close_overlays(browser)


def test_registered_model_shows_the_champion_alias(
    browser: Any, mlflow_server: Server, champion: dict[str, Any], screenshot_dir: Path
) -> None:
    show_champion(browser, mlflow_server.url, champion["version"])
    browser.save_screenshot(str(screenshot_dir / "mlflow_model_champion.png"))


def test_tracking_server_on_postgresql_shows_the_champion_alias(
    browser: Any, server_run: ServerRun
) -> None:
    """The team server of docs/scaling_out.md (tests/servers/fixtures.py), in the browser."""
    client = MlflowClient(server_run.server.url)
    version = client.get_model_version_by_alias(MODEL, ALIAS).version
    show_champion(browser, server_run.server.url, version)


def test_mlflow_ui_listens_on_loopback_only(mlflow_server: Server) -> None:
    assert_loopback_only(mlflow_server.port)


def test_make_ui_binds_to_loopback_by_default() -> None:
    assert "--host 127.0.0.1" in make_recipe("ui", "mlflow ui")
