from __future__ import annotations

import logging
import pickle

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from tests.features import HISTORY, synthetic_clinical
from tle_kedro.features.clinical import (
    ClinicalFeatureConfig,
    ClinicalTokenizer,
    check_clinical_columns,
    fit_transform_fold,
    make_clinical_recipe,
)

NUMERIC = ["age_at_onset_months", "age_at_surgery_months", "epilepsy_duration_months"]


# ----------------------------------------------------------------------------- recipe


def test_recipe_statistics_come_from_the_training_fold_only() -> None:
    table = synthetic_clinical(12)
    train, test = table.iloc[:8].copy(), table.iloc[8:].copy()
    test.loc[test.index[0], "age_at_onset_months"] = 1e6  # would dominate any pooled mean
    test.loc[test.index[1], "age_at_onset_months"] = np.nan
    x_train, x_test = fit_transform_fold(make_clinical_recipe(), train, test)

    observed = train["age_at_onset_months"]
    mean, std = observed.mean(), observed.std(ddof=0)
    np.testing.assert_allclose(x_train["age_at_onset_months"], (observed - mean) / std)
    assert x_test["age_at_onset_months"].iloc[0] == pytest.approx((1e6 - mean) / std)
    # the missing test value is imputed with the *training* median
    assert x_test["age_at_onset_months"].iloc[1] == pytest.approx((observed.median() - mean) / std)
    # and the training matrix does not depend on the test fold at all
    other_test = test.assign(age_at_onset_months=-5.0)
    x_train_again, _ = fit_transform_fold(make_clinical_recipe(), train, other_test)
    pd.testing.assert_frame_equal(x_train, x_train_again)


def test_log1p_column_is_transformed_before_scaling() -> None:
    table = synthetic_clinical(12)
    x, _ = fit_transform_fold(make_clinical_recipe(), table, table)
    logged = np.log1p(table["seizure_frequency_per_month"])
    logged = logged.fillna(logged.median())
    expected = (logged - logged.mean()) / logged.std(ddof=0)
    np.testing.assert_allclose(x["log1p_seizure_frequency_per_month"], expected)


def test_recipe_column_names_are_readable_and_drop_reference_levels() -> None:
    table = synthetic_clinical(12)
    x, _ = fit_transform_fold(make_clinical_recipe(), table, table)
    assert list(x.columns) == [
        *NUMERIC,
        "log1p_seizure_frequency_per_month",
        *HISTORY,
        "seizure_frequency_per_month_missing",
        "febrile_seizures_missing",
        "sex_M",
        "operative_side_R",
        "mri_finding_hippocampal_sclerosis",
        "mri_finding_other_lesion",
    ]


def test_recipe_output_has_no_nan_and_keeps_the_index() -> None:
    table = synthetic_clinical(12).set_index("participant_id", drop=False)
    test = table.iloc[:4].copy()
    test.loc[test.index[0], ["age_at_surgery_months", "hypoxia", "sex"]] = [np.nan, np.nan, None]
    x_train, x_test = fit_transform_fold(make_clinical_recipe(), table, test)
    assert not x_train.isna().any().any()
    assert not x_test.isna().any().any()
    assert list(x_test.index) == list(test.index)
    assert (x_test.dtypes == np.float64).all()


def test_missing_indicator_marks_missing_rows_and_is_not_scaled() -> None:
    table = synthetic_clinical(12)
    x, _ = fit_transform_fold(make_clinical_recipe(), table, table)
    expected = table["seizure_frequency_per_month"].isna().astype(float).to_numpy()
    np.testing.assert_array_equal(x["seizure_frequency_per_month_missing"], expected)


def test_binary_items_are_imputed_with_the_most_frequent_value_and_stay_binary() -> None:
    table = synthetic_clinical(12)
    table["hypoxia"] = [1.0] * 8 + [0.0] * 3 + [np.nan]
    x, _ = fit_transform_fold(make_clinical_recipe(), table, table)
    assert x["hypoxia"].tolist() == [1.0] * 8 + [0.0] * 3 + [1.0]


def test_unknown_category_encodes_as_the_reference_level() -> None:
    table = synthetic_clinical(12)
    test = table.iloc[:2].assign(mri_finding=["dual_pathology", "other_lesion"])
    with pytest.warns(UserWarning, match="unknown categories"):
        _, x_test = fit_transform_fold(make_clinical_recipe(), table, test)
    assert x_test["mri_finding_other_lesion"].tolist() == [0.0, 1.0]
    assert x_test["mri_finding_hippocampal_sclerosis"].tolist() == [0.0, 0.0]


def test_fit_transform_fold_leaves_the_recipe_unfitted() -> None:
    recipe = make_clinical_recipe()
    table = synthetic_clinical(12)
    fit_transform_fold(recipe, table, table)
    with pytest.raises(NotFittedError):
        recipe.transform(table)


def test_fitted_recipe_survives_pickle() -> None:
    table = synthetic_clinical(12)
    fitted = make_clinical_recipe().fit(table)
    restored = pickle.loads(pickle.dumps(fitted))
    pd.testing.assert_frame_equal(restored.transform(table), fitted.transform(table))


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"log1p_columns": ["time_months"]}, "not in numeric_columns"),
        ({"binary_columns": ["sex"]}, "listed twice"),
        ({"categories": {"operative_side": ["R", "L"]}}, "fixed codes L=0, R=1"),
        ({"categories": {"sex": ["M", "M"]}}, "distinct levels"),
        ({"missing_indicatr": True}, "Extra inputs"),
    ],
)
def test_bad_config_is_rejected_with_a_clear_message(options: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ClinicalFeatureConfig.model_validate(options)


def test_missing_configured_column_is_named() -> None:
    table = synthetic_clinical(12).drop(columns=["hypoxia"])
    with pytest.raises(ValueError, match=r"lacks configured columns \['hypoxia'\]"):
        check_clinical_columns(table, ClinicalFeatureConfig())


# ----------------------------------------------------------------------------- tokenizer


def test_tokenizer_names_and_shapes() -> None:
    table = synthetic_clinical(12)
    tokenizer = ClinicalTokenizer()
    tokens = tokenizer.fit(table).transform(table)
    assert tokenizer.numeric_names == [*NUMERIC, "seizure_frequency_per_month"]
    assert tokenizer.categorical_names == ["sex", "operative_side", "mri_finding", *HISTORY]
    assert tokenizer.cardinalities == [2, 2, 3] + [2] * 8
    assert tokens.numeric.shape == (12, 4) and tokens.numeric.dtype == np.float32
    assert tokens.categorical.shape == (12, 11) and tokens.categorical.dtype == np.int64
    assert len(tokens) == 12
    assert (tokens.categorical < np.array(tokenizer.cardinalities)).all()


def test_tokenizer_standardises_with_training_statistics_and_keeps_nan() -> None:
    table = synthetic_clinical(12)
    train, test = table.iloc[:8], table.iloc[8:].copy()
    test.loc[test.index[0], "age_at_onset_months"] = np.nan
    tokenizer = ClinicalTokenizer().fit(train)
    train_tokens, test_tokens = tokenizer.transform(train), tokenizer.transform(test)
    np.testing.assert_allclose(np.nanmean(train_tokens.numeric, axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.nanstd(train_tokens.numeric, axis=0), 1.0, atol=1e-5)
    column = tokenizer.numeric_names.index("age_at_onset_months")
    assert np.isnan(test_tokens.numeric[0, column])
    observed = train["age_at_onset_months"]
    expected = (test["age_at_onset_months"].iloc[1] - observed.mean()) / observed.std(ddof=0)
    assert test_tokens.numeric[1, column] == pytest.approx(expected, rel=1e-5)
    frequency = tokenizer.numeric_names.index("seizure_frequency_per_month")
    assert np.isnan(train_tokens.numeric[1, frequency])  # missing in the synthetic table


def test_tokenizer_codes_missing_categories_as_minus_one() -> None:
    table = synthetic_clinical(12)
    tokenizer = ClinicalTokenizer().fit(table)
    codes = tokenizer.transform(table).categorical
    names = tokenizer.categorical_names
    assert codes[3, names.index("mri_finding")] == -1
    assert codes[2, names.index("febrile_seizures")] == -1
    hs = table["mri_finding"] == "hippocampal_sclerosis"
    assert (codes[hs.to_numpy(), names.index("mri_finding")] == 1).all()


def test_operative_side_codes_are_fixed_whatever_the_training_fold() -> None:
    table = synthetic_clinical(12)
    only_right = table[table["operative_side"] == "R"]
    tokenizer = ClinicalTokenizer().fit(only_right)
    codes = tokenizer.transform(table).categorical[:, tokenizer.side_index]
    assert tokenizer.categorical_names[tokenizer.side_index] == "operative_side"
    np.testing.assert_array_equal(codes, (table["operative_side"] == "R").astype(int))


def test_unknown_category_becomes_missing_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    table = synthetic_clinical(12)
    tokenizer = ClinicalTokenizer().fit(table)
    odd = table.iloc[:3].assign(sex=["X", "M", "X"], hypoxia=[0.5, 1.0, 0.0])
    with caplog.at_level(logging.WARNING, logger="tle_kedro.features.clinical"):
        codes = tokenizer.transform(odd).categorical
        tokenizer.transform(odd)
    names = tokenizer.categorical_names
    assert codes[:, names.index("sex")].tolist() == [-1, 1, -1]
    assert codes[:, names.index("hypoxia")].tolist() == [-1, 1, 0]
    sex_warnings = [r for r in caplog.records if "'sex'" in r.getMessage()]
    assert len(sex_warnings) == 1 and "['X']" in sex_warnings[0].getMessage()
    assert sum("'hypoxia'" in r.getMessage() for r in caplog.records) == 1


def test_tokenizer_must_be_fitted_and_clones_and_pickles() -> None:
    table = synthetic_clinical(12)
    config = ClinicalFeatureConfig(missing_indicator=False)
    tokenizer = ClinicalTokenizer(config)
    with pytest.raises(NotFittedError):
        tokenizer.transform(table)
    assert clone(tokenizer).config == config
    tokenizer.fit(table)
    restored = pickle.loads(pickle.dumps(tokenizer))
    np.testing.assert_array_equal(
        restored.transform(table).numeric, tokenizer.transform(table).numeric
    )
