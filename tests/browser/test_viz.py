"""``kedro viz`` on the smoke project, seen in headless Chromium: what a user must see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kedro.config import OmegaConfigLoader
from kedro.pipeline import Pipeline
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import (
    PAGE_TIMEOUT_S,
    click_all,
    make_recipe,
    on_screen,
)
from tests.serving import Server, assert_loopback_only
from tle_kedro.pipelines.modeling import create_pipeline
from tle_kedro.training.specs import DEFAULT_MODELS

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def catalog_layers(project: Path, datasets: set[str]) -> dict[str, str]:
    """``{dataset: layer}`` from the project's ``metadata: kedro-viz: layer:`` entries."""
    catalog: dict[str, Any] = OmegaConfigLoader(str(project / "conf"))["catalog"]
    layers = {}
    for name in datasets:
        layer = (catalog.get(name) or {}).get("metadata", {}).get("kedro-viz", {}).get("layer")
        if layer:
            layers[name] = str(layer)
    return layers


def visible_texts(driver: Any, css: str) -> set[str]:
    """Texts of the rendered elements matching ``css`` (read in one script: nothing goes stale)."""
    texts = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])]"
        ".filter(e => e.getClientRects().length > 0).map(e => e.textContent.trim());",
        css,
    )
    return set(texts)


def wait_for_texts(driver: Any, css: str, expected: set[str], what: str) -> set[str]:
    """Wait until every text in ``expected`` is shown in an element matching ``css``."""
    try:
        WebDriverWait(driver, PAGE_TIMEOUT_S).until(lambda d: expected <= visible_texts(d, css))
    except TimeoutException:
        shown = sorted(visible_texts(driver, css))
        pytest.fail(f"kedro viz does not show {what} {sorted(expected)}; it shows {shown}")
    return visible_texts(driver, css)


def dismiss_overlays(driver: Any) -> None:
    """Close the new-feature tour and the update banner (no internet: "Kedro-Viz None")."""
    click_all(driver, "//div[@class='feature-hints__close']")
    click_all(driver, "//div[contains(@class, 'update-reminder')]//button[text()='Dismiss']")
    overlays = ".feature-hints, .update-reminder-unexpanded"
    WebDriverWait(driver, 5).until(lambda d: not visible_texts(d, overlays))


def fit_graph(driver: Any) -> None:
    """Minimap off (it hides the lowest layer's name); wait until the graph is still."""
    click_all(driver, "//button[@aria-label='Turn minimap off']")
    # Park the pointer where it shows no tooltip over the graph.
    ActionChains(driver).move_to_element(driver.find_element(By.ID, "search-bar")).perform()
    rects: list[object] = []

    def still(d: Any) -> bool:
        rects.append(
            d.execute_script(
                "const r = document.querySelector('.pipeline-flowchart__nodes')"
                ".getBoundingClientRect(); return [r.x, r.y, r.width, r.height];"
            )
        )
        return len(rects) > 1 and rects[-1] == rects[-2]

    WebDriverWait(driver, 10, poll_frequency=0.5).until(still)


def outside_namespaces(pipeline: Pipeline) -> set[str]:
    """Datasets not internal to one namespace: kedro viz shows them with boxes collapsed."""
    users: dict[str, set[str | None]] = {}
    for node in pipeline.nodes:
        for name in [*node.inputs, *node.outputs]:
            users.setdefault(name, set()).add(node.namespace)
    boundary = pipeline.inputs() | pipeline.outputs()
    return {
        name
        for name, namespaces in users.items()
        if not name.startswith("params:")
        and (len(namespaces) > 1 or None in namespaces or name in boundary)
    }


def layers_top_down(driver: Any) -> list[str]:
    """The layer bands' names as the user reads them, top to bottom."""
    bands = driver.execute_script(
        "return [...document.querySelectorAll('.pipeline-layer-name')]"
        ".filter(e => e.getClientRects().length > 0)"
        ".map(e => [e.getBoundingClientRect().y, e.textContent.trim()]);"
    )
    return [name for _, name in sorted(bands) if name]


def open_pipeline(driver: Any, server: Server, pipeline: str) -> None:
    """Open ``pipeline`` by its URL; the selector may show ``Default`` until it is loaded."""
    driver.get(f"{server.url}/?pid={pipeline}")
    selector = "//*[@data-test='kedro-pipeline-selector']//button[@class='dropdown__label']"
    on_screen(driver, selector, "the pipeline selector")
    try:
        WebDriverWait(
            driver, PAGE_TIMEOUT_S, ignored_exceptions=(StaleElementReferenceException,)
        ).until(lambda d: d.find_element(By.XPATH, selector).text.strip() == pipeline)
    except TimeoutException:
        shown = driver.find_element(By.XPATH, selector).text.strip()
        pytest.fail(f"kedro viz shows pipeline {shown!r}, not {pipeline!r}")


def test_modeling_pipeline_shows_its_nodes_and_dataset_layers(
    browser: Any, viz_server: Server, smoke_run: Path, screenshot_dir: Path
) -> None:
    pipeline = create_pipeline(models=DEFAULT_MODELS)  # `kedro viz` here: no --env
    node_names = {node.name for node in pipeline.nodes if node.namespace is None}
    datasets = outside_namespaces(pipeline)
    layers = catalog_layers(smoke_run, datasets)
    assert layers, (
        "no dataset of the modeling pipeline has `metadata: kedro-viz: layer:` in "
        "conf/base/catalog*.yml, so kedro viz cannot show layers"
    )

    open_pipeline(browser, viz_server, "modeling")
    wait_for_texts(browser, ".pipeline-node__text", node_names, "the modeling nodes")
    wait_for_texts(browser, ".pipeline-node__text", datasets, "the modeling datasets")
    shown_layers = wait_for_texts(
        browser, ".pipeline-layer-name", set(layers.values()), "the dataset layers"
    )
    # Only the layers of this pipeline's datasets, not the whole project's, in flow order.
    assert shown_layers - {""} == set(layers.values())
    assert layers_top_down(browser) == sorted(set(layers.values()))

    dismiss_overlays(browser)
    fit_graph(browser)
    dismiss_overlays(browser)  # the run-status tour can open once the graph has settled
    path = screenshot_dir / "kedro_viz_modeling.png"
    assert browser.save_screenshot(str(path)), f"could not write {path}"
    assert path.stat().st_size > 20_000  # a rendered graph, not a blank page


def test_each_model_is_a_box_that_opens_on_its_tuning_and_fits(
    browser: Any, viz_server: Server, screenshot_dir: Path
) -> None:
    open_pipeline(browser, viz_server, "modeling")
    boxes = ".pipeline-node--modularPipeline"
    wait_for_texts(browser, boxes, set(DEFAULT_MODELS), "one box (namespace) per model")
    dismiss_overlays(browser)
    # Clicking TransEpRelap's box opens it on its Optuna studies and its fold fits.
    box_xpath = "//*[contains(@class, 'pipeline-node--modularPipeline')][@data-id='transeprelap']"
    box = on_screen(browser, box_xpath, "TransEpRelap's box", lambda e: e)
    browser.execute_script(
        "arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}));", box
    )
    tasks = ".pipeline-node--task .pipeline-node__text"
    shown = wait_for_texts(browser, tasks, {"tune", "cross_validate"}, "TransEpRelap's nodes")
    assert "cross_validate" in shown
    others = set(DEFAULT_MODELS) - {"transeprelap"}
    WebDriverWait(browser, PAGE_TIMEOUT_S).until(lambda d: visible_texts(d, boxes) == others)
    wait_for_texts(
        browser, ".pipeline-node__text", {"transeprelap.tuned_params"}, "the tuned values"
    )
    fit_graph(browser)
    dismiss_overlays(browser)
    path = screenshot_dir / "kedro_viz_modeling_transeprelap.png"
    assert browser.save_screenshot(str(path)), f"could not write {path}"


def test_the_whole_lineage_reads_its_layers_in_flow_order(browser: Any, viz_server: Server) -> None:
    open_pipeline(browser, viz_server, "__default__")
    expected = ["01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input",
                "06_models", "07_model_output", "08_reporting"]  # fmt: skip
    wait_for_texts(browser, ".pipeline-layer-name", set(expected), "every data layer")
    assert layers_top_down(browser) == expected


def test_viz_listens_on_loopback_only(viz_server: Server) -> None:
    assert_loopback_only(viz_server.port)


def test_make_viz_binds_to_loopback_by_default() -> None:
    assert "--host 127.0.0.1" in make_recipe("viz", "kedro viz run")
