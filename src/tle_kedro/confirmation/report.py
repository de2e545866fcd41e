"""Collect each cohort's comparison table into the confirmation table and its summary.

No Kedro and no model names: the rows are whatever models each cohort's
``comparison_table.csv`` holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from tle_kedro.confirmation.config import Cohort
from tle_kedro.evaluation.comparison import to_markdown

logger = logging.getLogger(__name__)

CONFIRMATION_COLUMNS = (
    "cohort_seed",
    "cohort_kind",
    "model",
    "harrell_c",
    "lower",
    "upper",
    "oracle_c",
    "ratio",
)
# paired ΔC vs the reference model, carried over from the comparison table when present
DELTA_COLUMNS = ("delta_c_vs_transeprelap", "delta_lo", "delta_hi", "delta_nb_lo", "delta_nb_hi")
SUMMARY_COLUMNS = (
    "cohort_kind",
    "model",
    "n_cohorts",
    "median_c",
    "min_c",
    "max_c",
    "median_ratio",
    "n_best",
    "share_best",
    "n_delta_above_0",
)


def cohort_rows(cohort: Cohort, table: pd.DataFrame) -> pd.DataFrame:
    """One cohort's comparison table as confirmation rows (oracle NaN on a real cohort)."""
    oracle = table["oracle_c"] if "oracle_c" in table.columns else np.nan
    rows = pd.DataFrame(
        {
            "cohort_seed": cohort.seed,
            "cohort_kind": cohort.kind,
            "model": table["model"],
            "harrell_c": table["harrell_c"],
            "lower": table["harrell_c_lo"],
            "upper": table["harrell_c_hi"],
            "oracle_c": oracle,
        }
    )
    rows["ratio"] = rows["harrell_c"] / rows["oracle_c"]
    for column in DELTA_COLUMNS:
        rows[column] = table[column] if column in table.columns else np.nan
    return rows


def collect(cohorts: Iterable[Cohort], base: Path = Path()) -> pd.DataFrame:
    """Confirmation rows of every cohort whose comparison table exists (others are logged)."""
    frames = []
    for cohort in cohorts:
        path = base / cohort.comparison_table
        if not path.exists():
            logger.info(
                "%s cohort %d: no comparison table yet (%s)", cohort.kind, cohort.seed, path
            )
            continue
        frames.append(cohort_rows(cohort, pd.read_csv(path)))
    if not frames:
        return pd.DataFrame(columns=[*CONFIRMATION_COLUMNS, *DELTA_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def collect_timings(cohorts: Iterable[Cohort], base: Path = Path()) -> pd.DataFrame:
    """Every cohort's step timings (``timings.csv`` next to the cohort), where recorded."""
    frames = [pd.read_csv(base / c.timings) for c in cohorts if (base / c.timings).exists()]
    if not frames:
        return pd.DataFrame(columns=["cohort_seed", "cohort_kind", "step", "seconds", "skipped"])
    return pd.concat(frames, ignore_index=True)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per cohort kind and model: median (min, max) C over cohorts, median ratio to the
    oracle, how often the model had the highest C of its cohort, and in how many cohorts the
    reference model's lead over it was shown by both ΔC intervals (lower bounds above 0)."""
    if table.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    best_c = table.groupby(["cohort_kind", "cohort_seed"])["harrell_c"].transform("max")
    work = table.assign(
        best=np.isclose(table["harrell_c"], best_c),
        lead_shown=(table["delta_lo"] > 0) & (table["delta_nb_lo"] > 0),
    )
    grouped = work.groupby(["cohort_kind", "model"], sort=False)
    out = grouped.agg(
        n_cohorts=("cohort_seed", "nunique"),
        median_c=("harrell_c", "median"),
        min_c=("harrell_c", "min"),
        max_c=("harrell_c", "max"),
        median_ratio=("ratio", "median"),
        n_best=("best", "sum"),
        n_delta_above_0=("lead_shown", "sum"),
    ).reset_index()
    out["share_best"] = out["n_best"] / out["n_cohorts"]
    out = out.sort_values(["cohort_kind", "median_c"], ascending=[False, False], kind="stable")
    return out[list(SUMMARY_COLUMNS)].reset_index(drop=True)


def verdict(summary: pd.DataFrame, reference: str, target_ratio: float) -> list[str]:
    """Issue 14's criterion on each kind: the reference model's median C ≥ target × oracle and
    above every other model's median C. Lines of Markdown."""
    lines = []
    for kind, part in summary.groupby("cohort_kind", sort=False):
        part = part.set_index("model")
        if reference not in part.index:
            lines.append(f"- {kind}: no `{reference}` rows.")
            continue
        ref = part.loc[reference]
        others = part.drop(index=reference)
        best_other = others["median_c"].idxmax() if len(others) else None
        ahead = best_other is None or ref["median_c"] > others["median_c"].max()
        ratio_ok = bool(ref["median_ratio"] >= target_ratio)
        n = int(ref["n_cohorts"])
        lines.append(
            f"- {kind} ({n} cohort{'' if n == 1 else 's'}): `{reference}` median C "
            f"{ref['median_c']:.3f} = {ref['median_ratio']:.2f} × oracle "
            f"(target ≥ {target_ratio:.2f}: {'met' if ratio_ok else 'NOT met'}); "
            + (
                f"{'ahead of' if ahead else 'NOT ahead of'} every other model "
                f"(best other: `{best_other}` {others['median_c'].max():.3f})."
                if best_other
                else "no other model."
            )
        )
    return lines


def to_report_markdown(
    table: pd.DataFrame, summary: pd.DataFrame, reference: str, target_ratio: float
) -> str:
    """The ``confirmation_summary.md`` page: verdict, summary per kind, per-cohort table."""
    parts = [
        "# Design and confirmation cohorts\n",
        "Written by `make design` / `make confirm` (docs/confirmation.md); do not edit.\n",
        "Pooled out-of-fold Harrell C per model and cohort (mean over CV repeats), 95 % "
        "patient-bootstrap interval, oracle = C of the true log-hazard.\n",
        "## Criterion\n",
        "\n".join(verdict(summary, reference, target_ratio)) + "\n",
    ]
    for kind, part in summary.groupby("cohort_kind", sort=False):
        parts += [f"## Summary: {kind} cohorts\n", to_markdown(part.drop(columns="cohort_kind"))]
    columns = [*CONFIRMATION_COLUMNS, "delta_lo", "delta_hi", "delta_nb_lo", "delta_nb_hi"]
    parts += ["## Every cohort\n", to_markdown(table[columns])]
    return "\n".join(parts)


BY_MODALITY_COLUMNS = (
    "cohort_seed",
    "cohort_kind",
    "model",
    "subgroup",
    "n_patients",
    "n_events",
    "harrell_c",
    "lower",
    "upper",
    "note",
    "median_c",
)


def collect_by_modality(cohorts: Iterable[Cohort], base: Path = Path()) -> pd.DataFrame:
    """Every cohort's ``c_by_modality`` (Harrell C per model × subgroup of image
    availability), one row per cohort × model × subgroup, and ``median_c``: the median C of
    that model and subgroup over the cohorts of its kind that have one (NaN rows skipped)."""
    frames = []
    for cohort in cohorts:
        path = base / cohort.c_by_modality
        if not path.exists():
            continue
        table = pd.read_csv(path, keep_default_na=False, na_values=[""])
        frames.append(
            pd.DataFrame(
                {
                    "cohort_seed": cohort.seed,
                    "cohort_kind": cohort.kind,
                    "model": table["model"],
                    "subgroup": table["subgroup"],
                    "n_patients": table["n_patients"],
                    "n_events": table["n_events"],
                    "harrell_c": table["harrell_c"],
                    "lower": table["harrell_c_lo"],
                    "upper": table["harrell_c_hi"],
                    "note": table["note"].fillna(""),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=list(BY_MODALITY_COLUMNS))
    out = pd.concat(frames, ignore_index=True)
    keys = ["cohort_kind", "model", "subgroup"]
    out["median_c"] = out.groupby(keys, sort=False)["harrell_c"].transform("median")
    return out[list(BY_MODALITY_COLUMNS)]


def by_modality_markdown(table: pd.DataFrame) -> str:
    """``confirmation_by_modality.md``: per kind, one row per model × subgroup with the
    median C over cohorts and each cohort's ``C [lower, upper]`` (n patients / events)."""
    parts = [
        "# Harrell C by image availability\n",
        "Written by `make design` / `make confirm` (docs/confirmation.md); do not edit.\n",
        "Each cohort's `c_by_modality` (docs/evaluation.md): out-of-fold Harrell C of every "
        "model on the patients with both images, without PET and without T1, each subgroup "
        "scored alone, 95 % patient-bootstrap interval within the subgroup. A cell – "
        "has no C (its reason is in confirmation_by_modality.csv).\n",
    ]

    def cell(row: pd.Series) -> str:
        size = f"(n {row['n_patients']}, {row['n_events']} ev.)"
        if pd.isna(row["harrell_c"]):
            return f"– {size}"
        return f"{row['harrell_c']:.3f} [{row['lower']:.3f}, {row['upper']:.3f}] {size}"

    for kind, part in table.groupby("cohort_kind", sort=False):
        wide = part.assign(cell=part.apply(cell, axis=1)).pivot_table(
            index=["model", "subgroup"], columns="cohort_seed", values="cell", aggfunc="first"
        )
        wide.columns = [f"cohort {seed}" for seed in wide.columns]
        median = part.groupby(["model", "subgroup"])["median_c"].first()
        summary = pd.concat([median, wide], axis=1).reset_index()
        order = {m: i for i, m in enumerate(part["model"].unique())}
        order_sub = {s: i for i, s in enumerate(part["subgroup"].unique())}
        summary = summary.sort_values(
            ["model", "subgroup"],
            key=lambda s: s.map(order if s.name == "model" else order_sub),
        )
        parts += [f"## {kind} cohorts\n", to_markdown(summary.reset_index(drop=True))]
    return "\n".join(parts)
