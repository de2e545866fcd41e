"""Servers (kedro viz, MLflow UI) on free 127.0.0.1 ports and a headless Chromium to look at them.

Every server is started by the fixture of the test module that uses it and always stopped
(its whole process group) when the module ends, pass or fail. Selenium gets explicit paths to
Debian's ``chromium`` and ``chromedriver`` so that selenium-manager never downloads a browser.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
PAGE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Server:
    """A running local web server: where it answers and how it was started."""

    url: str
    port: int
    command: tuple[str, ...]
    log: Path


def free_port(host: str = "127.0.0.1", low: int = 20000, high: int = 32767) -> int:
    """A TCP port in ``[low, high]`` that is free on ``host`` right now.

    Below Linux's ephemeral range (32768+), so no client socket takes it meanwhile, and below
    49152: ``kedro viz run`` refuses ports above 49151.
    """
    rng = random.Random()
    for _ in range(100):
        port = rng.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port on {host} in [{low}, {high}] after 100 tries")


def _answers(url: str) -> bool:
    """True once ``url`` answers HTTP with a non-5xx status."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) < 500
    except urllib.error.HTTPError as error:
        return error.code < 500
    except (OSError, ValueError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (it may have forked workers), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
            break
        except subprocess.TimeoutExpired:
            continue
    # Workers that outlived their parent still belong to the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def serve(command: list[str], cwd: Path, port: int, log: Path, path: str = "/") -> Iterator[Server]:
    """Start ``command`` in its own process group, wait until it answers, always stop it."""
    env = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "1"}
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _answers(url + path):
            if proc.poll() is not None or time.monotonic() > deadline:
                state = (
                    f"exited with {proc.returncode}"
                    if proc.poll() is not None
                    else f"did not answer within {STARTUP_TIMEOUT_S:.0f} s"
                )
                output = log.read_text(errors="replace")[-6000:]
                pytest.fail(f"{' '.join(command)} (cwd {cwd}) {state}\n--- output ---\n{output}")
            time.sleep(0.5)
        yield Server(url, port, tuple(command), log)
    finally:
        _stop(proc)


def _bin(name: str) -> str:
    """An executable of this virtualenv (the one running pytest)."""
    return str(Path(sys.executable).with_name(name))


@pytest.fixture(scope="module")
def viz_server(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``kedro viz run`` on the smoke project, on a free 127.0.0.1 port."""
    port = free_port()
    command = [_bin("kedro"), "viz", "run", "--host", "127.0.0.1", "--port", str(port)]
    command.append("--no-browser")
    log = tmp_path_factory.mktemp("viz") / "server.log"
    with serve(command, smoke_run, port, log, path="/api/main") as server:
        yield server


@pytest.fixture(scope="module")
def mlflow_server(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``mlflow ui`` on the smoke project's ``mlflow.db``, on a free 127.0.0.1 port."""
    port = free_port()
    store = f"sqlite:///{smoke_run / 'mlflow.db'}"
    command = [_bin("mlflow"), "ui", "--backend-store-uri", store]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = tmp_path_factory.mktemp("mlflow_ui") / "server.log"
    with serve(command, smoke_run, port, log, path="/health") as server:
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


def listening_addresses(port: int) -> set[str]:
    """Local addresses (IPv4 dotted, IPv6 hex) with a LISTEN socket on ``port`` (Linux /proc)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                address, port_hex = fields[1].rsplit(":", 1)
                if fields[3] == "0A" and int(port_hex, 16) == port:
                    found.add(_decode_address(address))
    return found


def _decode_address(hex_address: str) -> str:
    """``0100007F`` → ``127.0.0.1``; IPv6 stays hex (only compared to known values)."""
    if len(hex_address) == 8:
        return socket.inet_ntoa(bytes.fromhex(hex_address)[::-1])
    return hex_address


def other_local_ipv4() -> str | None:
    """A non-loopback IPv4 address of this machine, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: connect() on UDP only picks a route
            address = str(sock.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def assert_loopback_only(port: int) -> None:
    """The server on ``port`` listens on 127.0.0.1 only: another local address is refused."""
    assert listening_addresses(port) == {"127.0.0.1"}
    other = other_local_ipv4()
    if other is not None:
        with pytest.raises(OSError), socket.create_connection((other, port), 2):
            pass


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
