"""Local servers for tests: free 127.0.0.1 ports, start-and-wait, always stop, loopback checks.

Shared by the browser tests (kedro viz, ``mlflow ui``) and the server tests (PostgreSQL, the
MLflow tracking server): every server is started in its own process group and stopped with
it, pass or fail.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
# `mlflow ui`/`mlflow server` on a database store also start MLflow's GenAI job runner: 7
# huey consumer processes (~0.3 GB and seconds of CPU each) that this project never uses.
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


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
def serve(
    command: list[str],
    cwd: Path,
    port: int,
    log: Path,
    path: str = "/",
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Start ``command`` in its own process group, wait until it answers, always stop it."""
    env = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "1", **(env or {})}
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


def venv_bin(name: str) -> str:
    """An executable of this virtualenv (the one running pytest)."""
    return str(Path(sys.executable).with_name(name))


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
