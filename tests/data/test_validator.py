"""The optional bids-validator summary: used when installed, skipped cleanly when not."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tle_kedro.data.validator import validator_summary

LEGACY = {
    "issues": {
        "errors": [{"key": "NOT_INCLUDED", "severity": "error"}],
        "warnings": [{"key": "NO_AUTHORS"}, {"key": "README_FILE_MISSING"}],
    }
}
SCHEMA = {
    "issues": {
        "issues": [
            {"code": "NOT_INCLUDED", "severity": "error"},
            {"code": "NOT_INCLUDED", "severity": "error"},
            {"code": "SIDECAR_KEY_RECOMMENDED", "severity": "warning"},
        ]
    }
}


def _fake_validator(folder: Path, stdout: str, monkeypatch: pytest.MonkeyPatch) -> None:
    folder.mkdir()
    script = folder / "bids-validator"
    script.write_text(f"#!/bin/sh\ncat <<'JSON'\n{stdout}\nJSON\nexit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.parametrize(
    ("report", "summary"),
    [
        (LEGACY, "1 error (NOT_INCLUDED x1), 2 warnings (NO_AUTHORS x1, README_FILE_MISSING x1)"),
        (SCHEMA, "2 errors (NOT_INCLUDED x2), 1 warning (SIDECAR_KEY_RECOMMENDED x1)"),
    ],
    ids=["legacy_1x", "schema_2x"],
)
def test_an_installed_validator_is_summarised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, report: dict, summary: str
) -> None:
    _fake_validator(tmp_path / "bin", json.dumps(report), monkeypatch)
    assert validator_summary(tmp_path, timeout_s=30) == f"bids-validator: {summary}"


def test_unreadable_validator_output_is_said_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_validator(tmp_path / "bin", "Segmentation fault", monkeypatch)
    assert "no readable JSON summary" in str(validator_summary(tmp_path, timeout_s=30))


def test_an_absent_validator_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert validator_summary(tmp_path, timeout_s=30) is None
