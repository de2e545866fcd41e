"""The official ``bids-validator``'s summary of a cohort folder, when it is installed.

Optional: the pipeline never requires it (it is an npm / deno tool, not a Python package).
When ``bids-validator`` is on ``PATH``, its ``--json`` output (legacy 1.x and schema-based 2.x
layouts) is summarised into one table-level row of the exclusion report; the folder is still
read by the pipeline's own rules whatever the validator says.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

EXECUTABLE = "bids-validator"


def validator_summary(root: Path, timeout_s: float) -> str | None:
    """One line ("N errors (CODE x k, …), M warnings (…)"), or None when not installed."""
    executable = shutil.which(EXECUTABLE)
    if executable is None:
        logger.info("%s not found on PATH; skipping the BIDS validation summary", EXECUTABLE)
        return None
    try:
        proc = subprocess.run(
            [executable, str(root), "--json"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        report = json.loads(proc.stdout)
    except subprocess.TimeoutExpired:
        return f"{EXECUTABLE} did not finish within {timeout_s:g} s; no summary"
    except (OSError, ValueError) as err:
        return f"{EXECUTABLE} gave no readable JSON summary ({type(err).__name__})"
    errors, warnings = _issues(report)
    return f"{EXECUTABLE}: {_count(errors, 'error')}, {_count(warnings, 'warning')}"


def _issues(report: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(error codes, warning codes) from either output layout."""
    issues = report.get("issues", {}) if isinstance(report, dict) else {}
    if isinstance(issues.get("issues"), list):  # 2.x: one list with a severity each
        found = issues["issues"]
        errors = [str(i.get("code")) for i in found if i.get("severity") == "error"]
        warnings = [str(i.get("code")) for i in found if i.get("severity") == "warning"]
        return errors, warnings
    return (  # 1.x: separate lists, one entry per issue kind
        [str(i.get("key")) for i in issues.get("errors", [])],
        [str(i.get("key")) for i in issues.get("warnings", [])],
    )


def _count(codes: list[str], noun: str) -> str:
    if not codes:
        return f"0 {noun}s"
    top = ", ".join(f"{code} x{n}" for code, n in Counter(codes).most_common(5))
    return f"{len(codes)} {noun}{'s' if len(codes) > 1 else ''} ({top})"
