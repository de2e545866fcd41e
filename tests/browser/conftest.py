"""Servers (kedro viz, MLflow UI) on free 127.0.0.1 ports and a headless Chromium to look at them.

Every server is started by the fixture of the test module that uses it and always stopped
(its whole process group: ``tests.serving``) when the module ends, pass or fail. Selenium gets
explicit paths to Debian's ``chromium`` and ``chromedriver`` so that selenium-manager never
downloads a browser.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    ElementNotInteractableException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.serving import MLFLOW_SERVER_ENV, Server, free_port, serve, venv_bin

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-gpu",
    "--window-size=1600,1000",
)
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO_ROOT / "docs" / "img"
BUILD_DIR = REPO_ROOT / "build" / "screenshots"
PAGE_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def viz_server(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``kedro viz run`` on the smoke project, on a free 127.0.0.1 port."""
    port = free_port()
    command = [venv_bin("kedro"), "viz", "run", "--host", "127.0.0.1", "--port", str(port)]
    command.append("--no-browser")
    log = tmp_path_factory.mktemp("viz") / "server.log"
    with serve(command, smoke_run, port, log, path="/api/main") as server:
        yield server


@pytest.fixture(scope="module")
def mlflow_server(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``mlflow ui`` on the smoke project's ``mlflow.db``, on a free 127.0.0.1 port."""
    port = free_port()
    store = f"sqlite:///{smoke_run / 'mlflow.db'}"
    command = [venv_bin("mlflow"), "ui", "--backend-store-uri", store]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = tmp_path_factory.mktemp("mlflow_ui") / "server.log"
    with serve(command, smoke_run, port, log, "/health", MLFLOW_SERVER_ENV) as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Debian's chromedriver (nothing is downloaded)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        reason = f"{', '.join(missing)} missing: apt-get install chromium chromium-driver"
        if os.environ.get("TLE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"TLE_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    service = Service(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """Where the screenshots go: ``build/screenshots/`` (ignored by git), so ``make test``
    leaves the working tree clean; ``docs/img/``, which the docs embed, only when asked
    (``make screenshots``, i.e. ``TLE_UPDATE_SCREENSHOTS=1``)."""
    target = SCREENSHOT_DIR if os.environ.get("TLE_UPDATE_SCREENSHOTS") == "1" else BUILD_DIR
    target.mkdir(parents=True, exist_ok=True)
    return target


def on_screen(
    driver: Any, xpath: str, what: str, act: Callable[[Any], object] = lambda e: e.text
) -> Any:
    """Wait until an element at ``xpath`` is displayed and return ``act(element)``.

    Single-page apps re-render while data arrives, so an element found a moment ago can go
    stale: the wait retries instead of failing. ``what`` says what the user does not see.
    """

    def attempt(d: Any) -> tuple[object] | bool:
        for element in d.find_elements(By.XPATH, xpath):
            if element.is_displayed():
                return (act(element),)
        return False

    try:
        found: Any = WebDriverWait(
            driver, PAGE_TIMEOUT_S, ignored_exceptions=(StaleElementReferenceException,)
        ).until(attempt)
    except TimeoutException:
        body = driver.find_element(By.TAG_NAME, "body").text[:2000]
        pytest.fail(f"the page does not show {what} at {driver.current_url}\n--- page ---\n{body}")
    return found[0]


def click_all(driver: Any, xpath: str) -> None:
    """Click every displayed element at ``xpath`` (close buttons of banners, tours, panels)."""
    for element in driver.find_elements(By.XPATH, xpath):
        with contextlib.suppress(StaleElementReferenceException, ElementNotInteractableException):
            if element.is_displayed():
                element.click()


def make_recipe(target: str, marker: str) -> str:
    """The line of ``make -n <target>`` (run in the repository) that contains ``marker``.

    ``make -n`` only prints the commands. HOST, UI_PORT and VIZ_PORT are removed from the
    environment so that the Makefile's defaults are what is checked.
    """
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if k not in {"HOST", "UI_PORT", "VIZ_PORT"}}
    proc = subprocess.run(
        [make, "-n", target], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, f"make -n {target} failed:\n{proc.stderr}"
    lines = [line for line in proc.stdout.splitlines() if marker in line]
    assert lines, f"make -n {target} runs nothing with {marker!r}:\n{proc.stdout}"
    return lines[-1]
