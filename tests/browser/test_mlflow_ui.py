"""The MLflow UI on the smoke project's store, seen in headless Chromium: run, metrics, the
models side by side, champion; and the champion on the PostgreSQL-backed tracking server."""

from __future__ import annotations

import json
import math
import operator
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
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
MODEL = "tle_recurrence"
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


@pytest.fixture(scope="module")
def model_runs(smoke_run: Path) -> dict[str, Any]:
    """The model runs (tag ``run_kind=model``) of the smoke run's ``kedro run``, best first."""
    client = MlflowClient(f"sqlite:///{smoke_run / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None, f"no experiment {EXPERIMENT!r} in the smoke run's store"
    runs = client.search_runs([experiment.experiment_id], "tags.run_kind = 'model'")
    assert runs, "the smoke run logged no model runs"
    # the first `kedro run` that logged model runs (later tests may add runs of their own)
    parent = min(runs, key=lambda r: r.info.start_time).data.tags["mlflow.parentRunId"]
    mine = [r for r in runs if r.data.tags["mlflow.parentRunId"] == parent]
    mine.sort(key=lambda r: -r.data.metrics["harrell_c"])
    return {
        "experiment_id": experiment.experiment_id,
        "run_ids": [r.info.run_id for r in mine],
        "names": [r.info.run_name for r in mine],
        "harrell_c": [r.data.metrics["harrell_c"] for r in mine],
    }


def ui_number(value: float) -> str:
    """A metric value as MLflow's UI prints it (``Utils.formatMetric`` in its JavaScript)."""
    if value == 0:
        return "0"
    if abs(value) < 1e-3:
        mantissa, exponent = f"{value:.3e}".split("e")
        return f"{mantissa}e{int(exponent):+d}"
    digits = 3 if abs(value) < 10 else 2 if abs(value) < 100 else 1
    rounded = math.floor(value * 10**digits + 0.5) / 10**digits  # JS Math.round: half up
    return str(int(rounded)) if rounded.is_integer() else repr(rounded)


def test_ui_number_rounds_like_mlflows_javascript() -> None:
    assert [ui_number(v) for v in (0.671875, 0.28125, 0.6, 1.0, 0.0, 12.345, -0.0375)] == [
        "0.672", "0.281", "0.6", "1", "0", "12.35", "-0.037"
    ]  # fmt: skip


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


def aligned_metric_table(driver: Any, names: Any, values: Any) -> None:
    """Wheel the compare page's metric table by one pixel and wait until the metric names
    stand next to their values again.

    MLflow 3.17's compare page (``CompareRunView``'s metric table) scrolls the column of
    metric names to where the values grid was one scroll event earlier, so after a wheel the
    names stand one wheel step away from their values; one more small wheel event lines them
    up (docs/mlflow_workflow.md warns readers of it).
    """
    origin = ScrollOrigin.from_element(values)
    ActionChains(driver).scroll_from_origin(origin, 0, 1).perform()
    tops = "return [arguments[0].scrollTop, arguments[1].scrollTop]"
    try:
        WebDriverWait(driver, 5).until(
            lambda d: abs(operator.sub(*d.execute_script(tops, names, values))) <= 1
        )
    except TimeoutException:
        pytest.fail(
            f"metric names and values stay apart: {driver.execute_script(tops, names, values)}"
        )


def test_compare_view_puts_the_models_side_by_side(
    browser: Any, mlflow_server: Server, model_runs: dict[str, Any], screenshot_dir: Path
) -> None:
    """What docs/mlflow_workflow.md tells a user to do: tick the model runs, press Compare,
    read each model's ``harrell_c`` under its name."""
    query = urllib.parse.urlencode(
        {
            "runs": json.dumps(model_runs["run_ids"]),
            "experiments": json.dumps([model_runs["experiment_id"]]),
        }
    )
    size = browser.get_window_size()
    # wide enough for every model's column: the metric table renders the visible ones only
    browser.set_window_size(max(size["width"], 2100), max(size["height"], 1100))
    try:
        browser.get(f"{mlflow_server.url}/#/compare-runs?{query}")
        n = len(model_runs["run_ids"])
        on_screen(browser, f"//h2[normalize-space()='Comparing {n} Runs from 1 Experiment']",
                  f"the comparison of the {n} model runs")  # fmt: skip
        close_overlays(browser)
        for section in ("Visualizations", "Parameters"):  # folded, as a reader would
            header = f"//div[@role='button'][@aria-expanded='true'][normalize-space()='{section}']"
            click_all(browser, header)
        names_row = "//tr[th[normalize-space()='Run Name:']]/td"
        on_screen(browser, names_row, "the run names")
        name_cells = browser.find_elements(By.XPATH, names_row)
        assert sorted(c.text for c in name_cells) == sorted(model_runs["names"])

        grids = "//div[@role='button'][normalize-space()='Metrics']/..//div[@role='grid']"
        on_screen(browser, grids, "the metrics table")
        metric_names, values = browser.find_elements(By.XPATH, grids)
        key = f"{grids}//div[a[normalize-space()='harrell_c']]"
        for _ in range(40):  # wheel the metric table down until its harrell_c row shows
            aligned_metric_table(browser, metric_names, values)
            if any(e.is_displayed() for e in browser.find_elements(By.XPATH, key)):
                break
            origin = ScrollOrigin.from_element(values)
            ActionChains(browser).scroll_from_origin(origin, 0, 90).perform()
        row_y = on_screen(browser, key, "the metric harrell_c", lambda e: e.rect["y"])
        row = [
            e
            for e in values.find_elements(By.XPATH, ".//div[span]")
            if e.is_displayed() and abs(e.rect["y"] - row_y) < 5
        ]

        def under(name_cell: Any) -> list[str]:
            """The harrell_c cells whose middle lies in the column of ``name_cell``."""
            left, width = name_cell.rect["x"], name_cell.rect["width"]
            return [e.text for e in row if left <= e.rect["x"] + e.rect["width"] / 2 < left + width]

        shown = {cell.text: under(cell) for cell in name_cells}
        stored = {
            name: [ui_number(value)]
            for name, value in zip(model_runs["names"], model_runs["harrell_c"], strict=True)
        }
        assert shown == stored, f"harrell_c under each model: shown {shown}, stored {stored}"
        browser.save_screenshot(str(screenshot_dir / "mlflow_compare_models.png"))
    finally:
        browser.set_window_size(size["width"], size["height"])


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
