"""Without PostgreSQL the server tests skip and say why; TLE_REQUIRE_SERVERS=1 fails them."""

from __future__ import annotations

import pytest

from tests.servers import postgres
from tests.servers.fixtures import servers_unavailable


def test_missing_server_binaries_are_named_with_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(postgres.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    with pytest.raises(postgres.PostgresUnavailable, match="apt-get install postgresql"):
        postgres.server_binaries()


def test_unavailable_servers_skip_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TLE_REQUIRE_SERVERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no initdb"):
        servers_unavailable("no initdb")


def test_unavailable_servers_fail_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLE_REQUIRE_SERVERS", "1")
    with pytest.raises(pytest.fail.Exception, match="TLE_REQUIRE_SERVERS=1 but no initdb"):
        servers_unavailable("no initdb")
