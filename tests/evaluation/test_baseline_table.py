from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.evaluation import make_cohort
from tle_kedro.evaluation.baseline_table import (
    BASELINE_COLUMNS,
    CHI2,
    FISHER,
    MANN_WHITNEY,
    categorical_test,
    clinical_baseline_table,
)


@pytest.fixture(scope="module")
def clinical():
    return make_cohort(150, seed=4)[0]


@pytest.fixture(scope="module")
def table(clinical):
    return clinical_baseline_table(clinical)


def _first(table: pd.DataFrame, variable: str) -> pd.Series:
    return table[table["variable"] == variable].iloc[0]


def test_columns_and_group_sizes(table, clinical):
    assert tuple(table.columns) == BASELINE_COLUMNS
    n = table.iloc[0]
    assert (n["seizure_free"], n["recurrent"]) == (
        str(int((clinical["recurrence"] == 0).sum())),
        str(int(clinical["recurrence"].sum())),
    )


def test_continuous_p_value_equals_scipy_mann_whitney(table, clinical):
    rec = clinical["recurrence"] == 1
    x = clinical["age_at_onset_months"]
    expected = stats.mannwhitneyu(x[~rec].dropna(), x[rec].dropna(), alternative="two-sided")
    row = _first(table, "age_at_onset_months")
    assert row["p_value"] == expected.pvalue
    assert row["test"] == MANN_WHITNEY
    med, q1, q3 = x[~rec].median(), x[~rec].quantile(0.25), x[~rec].quantile(0.75)
    assert row["seizure_free"] == f"{med:.1f} [{q1:.1f}–{q3:.1f}]"


def test_missing_values_are_counted_per_group(table, clinical):
    rows = table[(table["variable"] == "age_at_onset_months") & (table["level"] == "(missing)")]
    rec = clinical["recurrence"] == 1
    x = clinical["age_at_onset_months"]
    assert rows["seizure_free"].item() == str(int(x[~rec].isna().sum()))
    assert rows["recurrent"].item() == str(int(x[rec].isna().sum()))


def test_three_level_categorical_uses_chi_squared_equal_to_scipy(table, clinical):
    cross = pd.crosstab(clinical["mri_finding"], clinical["recurrence"]).to_numpy()
    row = _first(table, "mri_finding")
    assert row["test"] == CHI2
    assert row["p_value"] == stats.chi2_contingency(cross).pvalue
    assert (table["variable"] == "mri_finding").sum() == 3


def test_binary_item_shows_yes_level_with_count_and_percent(table, clinical):
    row = _first(table, "febrile_seizures")
    assert row["level"] == "1"
    sf = clinical.loc[clinical["recurrence"] == 0, "febrile_seizures"]
    n_yes = int((sf == 1).sum())
    assert row["seizure_free"] == f"{n_yes} ({100 * n_yes / sf.notna().sum():.1f}%)"


def test_small_expected_counts_switch_to_fisher_exact():
    table = np.array([[3, 1], [10, 12]])
    p, test = categorical_test(table)
    assert test == FISHER
    assert p == stats.fisher_exact(table).pvalue
    big = np.array([[30, 21], [40, 52]])
    p, test = categorical_test(big)
    assert test == CHI2 and p == stats.chi2_contingency(big).pvalue


def test_rare_binary_variable_uses_fisher_in_the_table(clinical):
    rare = clinical.copy()
    rare["hypoxia"] = 0.0
    rare.loc[rare.index[:3], "hypoxia"] = 1.0
    row = _first(clinical_baseline_table(rare), "hypoxia")
    cross = pd.crosstab(rare["hypoxia"], rare["recurrence"]).to_numpy()
    assert row["test"] == FISHER
    assert row["p_value"] == stats.fisher_exact(cross).pvalue


def test_unknown_variable_is_reported(clinical):
    with pytest.raises(ValueError, match="not_a_column"):
        clinical_baseline_table(clinical, continuous=("not_a_column",))
