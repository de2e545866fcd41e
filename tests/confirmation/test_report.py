from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tle_kedro.confirmation.config import Cohort
from tle_kedro.confirmation.report import (
    CONFIRMATION_COLUMNS,
    by_modality_markdown,
    collect,
    collect_by_modality,
    summarise,
    to_report_markdown,
    verdict,
)

MODELS = ("transeprelap", "cox_region_measures", "transeprelap_no_region_tokens")


def comparison(c: tuple[float, ...], oracle: float = 0.8) -> pd.DataFrame:
    """A comparison_table.csv of the evaluation pipeline, reduced to what is collected."""
    c_arr = np.array(c)
    return pd.DataFrame(
        {
            "model": MODELS[: len(c)],
            "harrell_c": c_arr,
            "harrell_c_lo": c_arr - 0.05,
            "harrell_c_hi": c_arr + 0.05,
            "delta_c_vs_transeprelap": c_arr[0] - c_arr,
            "delta_lo": c_arr[0] - c_arr - 0.02,
            "delta_hi": c_arr[0] - c_arr + 0.02,
            "delta_nb_lo": c_arr[0] - c_arr - 0.03,
            "delta_nb_hi": c_arr[0] - c_arr + 0.03,
            "oracle_c": oracle,
        }
    )


def write(tmp_path: Path, cohort: Cohort, table: pd.DataFrame) -> None:
    path = tmp_path / cohort.comparison_table
    path.parent.mkdir(parents=True)
    table.to_csv(path, index=False)


@pytest.fixture
def table(tmp_path) -> pd.DataFrame:
    cohorts = [Cohort(s, "confirmation", Path(f"c/{s}")) for s in (1, 2, 3)]
    cohorts.append(Cohort(9, "design", Path("d/9")))
    write(tmp_path, cohorts[0], comparison((0.70, 0.60, 0.65)))
    write(tmp_path, cohorts[1], comparison((0.72, 0.75, 0.70), oracle=0.9))
    write(tmp_path, cohorts[2], comparison((0.74, 0.60, 0.73)))
    write(tmp_path, cohorts[3], comparison((0.80, 0.70, 0.75)))
    missing = Cohort(4, "confirmation", Path("c/4"))  # not run yet: left out
    return collect([*cohorts, missing], tmp_path)


def test_collect_has_the_contract_columns_and_one_row_per_cohort_and_model(table):
    assert tuple(table.columns[: len(CONFIRMATION_COLUMNS)]) == CONFIRMATION_COLUMNS
    assert len(table) == 4 * 3
    row = table[(table["cohort_seed"] == 2) & (table["model"] == "cox_region_measures")].iloc[0]
    assert (row["harrell_c"], row["lower"], row["upper"]) == pytest.approx((0.75, 0.70, 0.80))
    assert row["ratio"] == pytest.approx(0.75 / 0.9)
    assert row["cohort_kind"] == "confirmation"


def test_summary_medians_and_counts_of_best_per_kind(table):
    summary = summarise(table).set_index(["cohort_kind", "model"])
    ref = summary.loc[("confirmation", "transeprelap")]
    assert ref["n_cohorts"] == 3
    assert ref["median_c"] == pytest.approx(0.72)
    assert ref["median_ratio"] == pytest.approx(np.median([0.70 / 0.8, 0.72 / 0.9, 0.74 / 0.8]))
    assert ref["n_best"] == 2 and ref["share_best"] == pytest.approx(2 / 3)
    assert summary.loc[("confirmation", "cox_region_measures"), "n_best"] == 1
    # lead shown (both ΔC lower bounds > 0) over cox_region_measures in cohorts 1 and 3
    assert summary.loc[("confirmation", "cox_region_measures"), "n_delta_above_0"] == 2
    assert summary.loc[("design", "transeprelap"), "n_cohorts"] == 1


def test_verdict_names_whether_the_target_and_the_lead_are_met(table):
    lines = verdict(summarise(table), "transeprelap", 0.85)
    confirmation = next(line for line in lines if line.startswith("- confirmation"))
    assert "0.87 × oracle (target ≥ 0.85: met)" in confirmation  # median of 0.875, 0.8, 0.925
    assert "NOT ahead" not in confirmation  # 0.72 > 0.70 (no-region-tokens), 0.60
    strict = verdict(summarise(table), "transeprelap", 0.95)
    assert "NOT met" in next(line for line in strict if line.startswith("- confirmation"))


def test_markdown_report_has_the_criterion_the_summaries_and_every_cohort(table):
    md = to_report_markdown(table, summarise(table), "transeprelap", 0.85)
    assert "## Criterion" in md
    assert "## Summary: confirmation cohorts" in md and "## Summary: design cohorts" in md
    assert md.count("| transeprelap |") == 4 + 2  # 4 cohort rows, 2 summary rows


def test_no_cohort_done_gives_an_empty_table_with_the_columns(tmp_path):
    empty = collect([Cohort(1, "design", Path("x"))], tmp_path)
    assert empty.empty and "ratio" in empty.columns
    assert summarise(empty).empty


def test_write_report_writes_every_file_for_the_configured_cohorts(tmp_path):
    from tests.confirmation.test_config import _config
    from tle_kedro.confirmation.__main__ import write_report
    from tle_kedro.confirmation.config import plan_cohorts

    config = _config(output_root="out", report_dir="out/reports")
    for cohort, c in zip(plan_cohorts(config, "confirmation"), (0.7, 0.72, 0.74), strict=True):
        write(tmp_path, cohort, comparison((c, 0.6, 0.65)))
        (tmp_path / cohort.timings).write_text(
            f"cohort_seed,cohort_kind,step,seconds,skipped\n{cohort.seed},confirmation,compare,9.5,False\n"
        )
    table = write_report(config, tmp_path)
    assert len(table) == 9
    out = tmp_path / "out/reports"
    for name in ("confirmation.csv", "confirmation_summary.csv", "confirmation_summary.md"):
        assert (out / name).stat().st_size > 100
    assert (out / "confirmation_forest.png").stat().st_size > 10_000
    assert len(pd.read_csv(out / "confirmation_timings.csv")) == 3


def by_modality(c_pet_missing: float, note: str = "") -> pd.DataFrame:
    """A c_by_modality.csv of the evaluation pipeline (one model; T1 subgroup empty)."""
    return pd.DataFrame(
        {
            "model": ["transeprelap"] * 3,
            "subgroup": ["both images", "PET missing", "T1 missing"],
            "n_patients": [150, 20, 0],
            "n_events": [50, 7, 0],
            "harrell_c": [0.75, c_pet_missing, np.nan],
            "harrell_c_lo": [0.70, c_pet_missing - 0.1, np.nan],
            "harrell_c_hi": [0.80, c_pet_missing + 0.1, np.nan],
            "n_boot_valid": [1000, 990, 0],
            "note": ["", note, "no patient in this subgroup"],
        }
    )


def write_by_modality(tmp_path: Path, cohort: Cohort, table: pd.DataFrame) -> None:
    path = tmp_path / cohort.c_by_modality
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)


def test_by_modality_collects_every_cohort_with_the_median_over_cohorts(tmp_path):
    cohorts = [Cohort(s, "confirmation", Path(f"c/{s}")) for s in (1, 2, 3)]
    for cohort, c in zip(cohorts, (0.60, 0.70, 0.62), strict=True):
        write_by_modality(tmp_path, cohort, by_modality(c))
    design = Cohort(9, "design", Path("d/9"))
    write_by_modality(tmp_path, design, by_modality(0.9))
    not_run = Cohort(4, "confirmation", Path("c/4"))
    table = collect_by_modality([*cohorts, design, not_run], tmp_path)
    assert len(table) == 4 * 3
    rows = table.set_index(["cohort_kind", "cohort_seed", "subgroup"])
    pet = rows.loc[("confirmation", 2, "PET missing")]
    assert (pet["harrell_c"], pet["lower"], pet["upper"]) == pytest.approx((0.70, 0.60, 0.80))
    assert pet["median_c"] == pytest.approx(0.62)  # over the three confirmation cohorts only
    assert rows.loc[("design", 9, "PET missing"), "median_c"] == pytest.approx(0.9)
    empty = rows.loc[("confirmation", 1, "T1 missing")]
    assert np.isnan(empty["median_c"]) and empty["note"] == "no patient in this subgroup"
    md = by_modality_markdown(table)
    assert "## confirmation cohorts" in md and "## design cohorts" in md
    assert "0.700 [0.600, 0.800] (n 20, 7 ev.)" in md
    assert "| cohort 1 | cohort 2 | cohort 3 |" in md


def test_write_report_writes_the_by_modality_files_when_cohorts_have_them(tmp_path):
    from tests.confirmation.test_config import _config
    from tle_kedro.confirmation.__main__ import write_report
    from tle_kedro.confirmation.config import plan_cohorts

    config = _config(output_root="out", report_dir="out/reports")
    for cohort in plan_cohorts(config, "confirmation"):
        write(tmp_path, cohort, comparison((0.7, 0.6, 0.65)))
        write_by_modality(tmp_path, cohort, by_modality(0.6))
    write_report(config, tmp_path)
    out = tmp_path / "out/reports"
    written = pd.read_csv(out / "confirmation_by_modality.csv")
    assert len(written) == 3 * 3 and "participant_id" not in written.columns
    assert (out / "confirmation_by_modality.md").read_text().startswith("# Harrell C by image")
