"""Clinical baseline table: seizure-free vs recurrent patients (the seed's Table 3.3).

Continuous variables: median [Q1–Q3] per group, two-sided Mann–Whitney U p (scipy).
Categorical variables: n (%) per group over the non-missing values, p from Fisher's exact
test for a 2 × 2 table with any expected count < 5, otherwise Pearson's χ² (scipy
``chi2_contingency``, Yates-corrected when 2 × 2, as scipy does by default). Missing values
are never imputed here: a ``(missing)`` row counts them per group. Binary 0/1 history items
show the "1" (yes) level only; their test uses the full 2 × 2 table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from tle_kedro.data.columns import BINARY_COLUMNS

BASELINE_COLUMNS = ("variable", "level", "seizure_free", "recurrent", "p_value", "test")
CONTINUOUS = (
    "age_at_onset_months",
    "age_at_surgery_months",
    "epilepsy_duration_months",
    "seizure_frequency_per_month",
    "time_months",
)
BINARY = BINARY_COLUMNS
CATEGORICAL = ("sex", "operative_side", "mri_finding", *BINARY)
MANN_WHITNEY = "Mann-Whitney U"
CHI2 = "chi-squared"
FISHER = "Fisher exact"


def _row(variable: str, level: str, sf: str, rec: str, p: float = np.nan, test: str = "") -> dict:
    return dict(zip(BASELINE_COLUMNS, (variable, level, sf, rec, p, test), strict=True))


def _median_iqr(x: pd.Series) -> str:
    q1, med, q3 = np.nanquantile(x.to_numpy(float), [0.25, 0.5, 0.75])
    return f"{med:.1f} [{q1:.1f}–{q3:.1f}]"


def _missing_row(variable: str, sf: pd.Series, rec: pd.Series) -> list[dict]:
    n_sf, n_rec = int(sf.isna().sum()), int(rec.isna().sum())
    return [_row(variable, "(missing)", str(n_sf), str(n_rec))] if n_sf or n_rec else []


def continuous_rows(variable: str, sf: pd.Series, rec: pd.Series) -> list[dict]:
    """Median [IQR] per group and the Mann–Whitney U p-value (NaN if a group is empty)."""
    a, b = sf.dropna().to_numpy(float), rec.dropna().to_numpy(float)
    p = stats.mannwhitneyu(a, b, alternative="two-sided").pvalue if a.size and b.size else np.nan
    row = _row(variable, "", _median_iqr(sf), _median_iqr(rec), float(p), MANN_WHITNEY)
    return [row, *_missing_row(variable, sf, rec)]


def categorical_test(table: np.ndarray) -> tuple[float, str]:
    """p-value and test name for a (levels, 2) contingency table (rules in module doc)."""
    table = table[table.sum(axis=1) > 0]
    if table.shape[0] < 2 or (table.sum(axis=0) == 0).any():
        return float("nan"), ""
    expected = stats.contingency.expected_freq(table)
    if table.shape == (2, 2) and (expected < 5).any():
        return float(stats.fisher_exact(table).pvalue), FISHER
    return float(stats.chi2_contingency(table).pvalue), CHI2


def _level_name(level: object) -> str:
    return str(int(level)) if isinstance(level, float) and level.is_integer() else str(level)


def categorical_rows(variable: str, sf: pd.Series, rec: pd.Series, binary: bool) -> list[dict]:
    """n (%) per level and group; the p-value sits on the variable's first row."""
    levels = sorted(pd.concat([sf, rec]).dropna().unique(), key=str)
    counts = np.array([[(sf == lv).sum(), (rec == lv).sum()] for lv in levels], dtype=int)
    p, test = categorical_test(counts.reshape(-1, 2))
    n_sf, n_rec = max(int(sf.notna().sum()), 1), max(int(rec.notna().sum()), 1)
    rows = []
    for lv, (c_sf, c_rec) in zip(levels, counts, strict=True):
        if binary and _level_name(lv) != "1":
            continue
        rows.append(
            _row(
                variable,
                _level_name(lv),
                f"{c_sf} ({100 * c_sf / n_sf:.1f}%)",
                f"{c_rec} ({100 * c_rec / n_rec:.1f}%)",
            )
        )
    if rows:
        rows[0]["p_value"], rows[0]["test"] = p, test
    return rows + _missing_row(variable, sf, rec)


def clinical_baseline_table(
    clinical: pd.DataFrame,
    continuous: Sequence[str] = CONTINUOUS,
    categorical: Sequence[str] = CATEGORICAL,
    binary: Sequence[str] = BINARY,
) -> pd.DataFrame:
    """Seizure-free (recurrence = 0) vs recurrent (recurrence = 1) patients.

    Args:
        clinical: ``clinical_validated`` (one row per patient, ``recurrence`` 0/1).
        continuous, categorical: columns to summarise; ``binary`` ⊂ categorical show level 1.
    Returns:
        DataFrame with :data:`BASELINE_COLUMNS`; first row ``n`` (group sizes).
    """
    wanted = ["recurrence", *continuous, *categorical]
    missing = [c for c in wanted if c not in clinical.columns]
    if missing:
        raise ValueError(
            f"clinical baseline table: column(s) {missing} not in clinical_validated; "
            "pass the lists of variables that exist."
        )
    rec_mask = clinical["recurrence"].astype(int) == 1
    sf_df, rec_df = clinical[~rec_mask], clinical[rec_mask]
    rows = [_row("n", "", str(len(sf_df)), str(len(rec_df)))]
    for var in continuous:
        rows += continuous_rows(var, sf_df[var], rec_df[var])
    for var in categorical:
        rows += categorical_rows(var, sf_df[var], rec_df[var], binary=var in binary)
    return pd.DataFrame(rows, columns=list(BASELINE_COLUMNS))
