"""``kedro viz`` on the smoke project, seen in headless Chromium: what a user must see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kedro.config import OmegaConfigLoader
from selenium.common.exceptions import TimeoutException
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


def test_modeling_pipeline_shows_its_nodes_and_dataset_layers(
    browser: Any, viz_server: Server, smoke_run: Path, screenshot_dir: Path
) -> None:
    pipeline = create_pipeline()
    node_names = {node.name for node in pipeline.nodes}
    datasets = {name for name in pipeline.datasets() if not name.startswith("params:")}
    layers = catalog_layers(smoke_run, pipeline.datasets())
    assert layers, (
        "no dataset of the modeling pipeline has `metadata: kedro-viz: layer:` in "
        "conf/base/catalog*.yml, so kedro viz cannot show layers"
    )

    browser.get(f"{viz_server.url}/?pid=modeling")
    selector = "//*[@data-test='kedro-pipeline-selector']//button[@class='dropdown__label']"
    assert on_screen(browser, selector, "the pipeline selector").strip() == "modeling"
    wait_for_texts(browser, ".pipeline-node__text", node_names, "the modeling nodes")
    wait_for_texts(browser, ".pipeline-node__text", datasets, "the modeling datasets")
    shown_layers = wait_for_texts(
        browser, ".pipeline-layer-name", set(layers.values()), "the dataset layers"
    )
    # Only the layers of this pipeline's datasets, not the whole project's.
    assert shown_layers - {""} == set(layers.values())

    dismiss_overlays(browser)
    fit_graph(browser)
    dismiss_overlays(browser)  # the run-status tour can open once the graph has settled
    path = screenshot_dir / "kedro_viz_modeling.png"
    assert browser.save_screenshot(str(path)), f"could not write {path}"
    assert path.stat().st_size > 20_000  # a rendered graph, not a blank page


def test_viz_listens_on_loopback_only(viz_server: Server) -> None:
    assert_loopback_only(viz_server.port)


def test_make_viz_binds_to_loopback_by_default() -> None:
    assert "--host 127.0.0.1" in make_recipe("viz", "kedro viz run")
