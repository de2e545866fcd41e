"""make bench keeps the sections measured by hand when it rewrites docs/benchmarks.md."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
from run_benchmarks import kept_by_hand  # noqa: E402


def test_by_hand_sections_are_kept_and_generated_ones_are_not() -> None:
    previous = "\n".join(
        [
            "# Benchmarks",
            "## Pipeline runs",
            "| generated | 1 |",
            "## Budgets (2026-12-06, by hand)",
            "",
            "| make run | 7 min 22 s |",
            "",
            "## Validity: design and confirmation cohorts",
            "old validity",
            "## Champion (by hand)",
            "refit stays",
        ]
    )
    kept = kept_by_hand(previous)
    text = "\n".join(kept)
    assert "## Budgets (2026-12-06, by hand)" in text and "| make run | 7 min 22 s |" in text
    assert "## Champion (by hand)" in text and "refit stays" in text
    assert "generated" not in text and "old validity" not in text
    assert kept_by_hand("") == []


def test_the_shipped_report_keeps_its_hand_measured_sections() -> None:
    doc = (PROJECT_ROOT / "docs" / "benchmarks.md").read_text()
    headings = [line for line in kept_by_hand(doc) if line.startswith("## ")]
    assert any("Budgets" in h for h in headings)
    assert any("Champion" in h for h in headings)
    assert any("Augmentation backends" in h for h in headings)
    assert not any("Validity" in h for h in headings)  # regenerated from the confirmation report
    assert Path(PROJECT_ROOT / "benchmarks" / "run_benchmarks.py").is_file()
