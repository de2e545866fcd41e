"""Clinical variables for the models: a design-matrix recipe and a tokenizer.

Two consumers, one configuration (:class:`ClinicalFeatureConfig`):

* the classical Cox / random-survival-forest baselines get a numeric design matrix from
  :func:`make_clinical_recipe`, an *unfitted* scikit-learn ``ColumnTransformer`` that modeling
  fits inside each training fold only (:func:`fit_transform_fold`), so test-fold values never
  leak into imputation or scaling statistics;
* TransEpRelap gets clinical tokens from :class:`ClinicalTokenizer`: standardised numbers with
  NaN kept for missing (the model masks them) and integer category codes with -1 for missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sklearn.base import BaseEstimator, clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from tle_kedro.data.columns import BINARY_COLUMNS

logger = logging.getLogger(__name__)

SIDE_COLUMN = "operative_side"
SIDE_CODES: tuple[str, str] = ("L", "R")  # fixed: the left-right flip swaps codes 0 and 1

HISTORY_ITEMS: list[str] = list(BINARY_COLUMNS)


class ClinicalFeatureConfig(BaseModel):
    """Which clinical columns enter the models, and how (``params:clinical_features``).

    ``categories`` lists each categorical column's levels; the first level is the reference
    that the design matrix drops (no collinearity in Cox) and the order fixes the tokenizer's
    codes (``operative_side`` must be exactly ``[L, R]``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    numeric_columns: list[str] = Field(
        default_factory=lambda: [
            "age_at_onset_months",
            "age_at_surgery_months",
            "epilepsy_duration_months",
            "seizure_frequency_per_month",
        ]
    )
    log1p_columns: list[str] = Field(default_factory=lambda: ["seizure_frequency_per_month"])
    binary_columns: list[str] = Field(default_factory=lambda: list(HISTORY_ITEMS))
    categories: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "sex": ["F", "M"],
            SIDE_COLUMN: list(SIDE_CODES),
            "mri_finding": ["normal", "hippocampal_sclerosis", "other_lesion"],
        }
    )
    missing_indicator: bool = Field(
        default=True,
        description="add a 0/1 '<column>_missing' column for numeric and binary columns that "
        "have missing values in the training fold",
    )
    drop_reference_level: bool = True

    @model_validator(mode="after")
    def _check_columns(self) -> ClinicalFeatureConfig:
        groups = [self.numeric_columns, self.binary_columns, list(self.categories)]
        names = [c for group in groups for c in group]
        duplicated = sorted({c for c in names if names.count(c) > 1})
        if duplicated:
            raise ValueError(f"clinical_features: columns listed twice: {duplicated}")
        stray = sorted(set(self.log1p_columns) - set(self.numeric_columns))
        if stray:
            raise ValueError(
                f"clinical_features.log1p_columns {stray} are not in numeric_columns; "
                "add them there or remove them from log1p_columns"
            )
        for column, levels in self.categories.items():
            if not levels or len(set(levels)) != len(levels):
                raise ValueError(
                    f"clinical_features.categories.{column} must list distinct levels, got {levels}"
                )
        side = self.categories.get(SIDE_COLUMN)
        if side is not None and tuple(side) != SIDE_CODES:
            raise ValueError(
                f"clinical_features.categories.{SIDE_COLUMN} must be {list(SIDE_CODES)} "
                f"(fixed codes L=0, R=1 that the flip augmentation swaps), got {side}"
            )
        return self

    @property
    def plain_numeric_columns(self) -> list[str]:
        """Numeric columns used as they are (not log-transformed)."""
        return [c for c in self.numeric_columns if c not in self.log1p_columns]

    @property
    def all_columns(self) -> list[str]:
        return [*self.numeric_columns, *self.binary_columns, *self.categories]


def check_clinical_columns(table: pd.DataFrame, config: ClinicalFeatureConfig) -> None:
    """Raise ValueError naming every configured column that ``table`` lacks."""
    missing = [c for c in config.all_columns if c not in table.columns]
    if missing:
        raise ValueError(
            f"clinical table lacks configured columns {missing}; fix the table or remove "
            "them from clinical_features in parameters_feature_engineering.yml"
        )


# ---------------------------------------------------------------------------------------------
# Design-matrix recipe (classical baselines)
# ---------------------------------------------------------------------------------------------


def _log1p_names(_: Any, input_features: Any) -> list[str]:
    return [f"log1p_{name}" for name in input_features]


def _missing_names(_: Any, input_features: Any) -> list[str]:
    return [f"{str(name).removeprefix('missingindicator_')}_missing" for name in input_features]


def _to_float(x: Any) -> Any:
    return x.astype(np.float64)


def _object_with_nan(x: Any) -> Any:
    """Categorical columns as object with ``np.nan`` for missing (SimpleImputer skips None)."""
    frame = pd.DataFrame(x).astype(object)
    return frame.where(frame.notna(), np.nan)


def make_clinical_recipe(config: ClinicalFeatureConfig | None = None) -> ColumnTransformer:
    """Unfitted design-matrix recipe for the Cox / RSF baselines.

    - plain numeric: median imputation, standard scaling;
    - ``log1p_columns``: ``log1p`` first (column renamed ``log1p_<name>``), then the same;
    - binary history items: most-frequent imputation, kept 0/1;
    - ``<column>_missing`` 0/1 indicators for numeric and binary columns with missing values in
      the fitting data (``missing_indicator``);
    - categorical: most-frequent imputation, one-hot over the configured levels with the
      reference (first) level dropped; an unknown level encodes as the reference (all zeros).

    Other columns (id, outcome, image flags) are dropped. Output is a pandas DataFrame with
    readable column names (``age_at_onset_months``, ``sex_M``, ``mri_finding_other_lesion``).
    Fit it on a training fold only (:func:`fit_transform_fold`).
    """
    config = config or ClinicalFeatureConfig()
    transformers: list[tuple[str, Any, list[str]]] = []
    if config.plain_numeric_columns:
        numeric = Pipeline(
            [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        )
        transformers.append(("numeric", numeric, config.plain_numeric_columns))
    if config.log1p_columns:
        log_numeric = Pipeline(
            [
                ("log1p", FunctionTransformer(np.log1p, feature_names_out=_log1p_names)),
                ("impute", SimpleImputer(strategy="median")),
                ("scale", StandardScaler()),
            ]
        )
        transformers.append(("log_numeric", log_numeric, config.log1p_columns))
    if config.binary_columns:
        transformers.append(
            ("binary", SimpleImputer(strategy="most_frequent"), config.binary_columns)
        )
    if config.missing_indicator:
        indicator = Pipeline(
            [
                ("indicate", MissingIndicator(features="missing-only", error_on_new=False)),
                ("as_float", FunctionTransformer(_to_float, feature_names_out=_missing_names)),
            ]
        )
        transformers.append(
            ("missing", indicator, [*config.numeric_columns, *config.binary_columns])
        )
    if config.categories:
        categorical = Pipeline(
            [
                (
                    "as_object",
                    FunctionTransformer(_object_with_nan, feature_names_out="one-to-one"),
                ),
                ("impute", SimpleImputer(strategy="most_frequent")),
                (
                    "one_hot",
                    OneHotEncoder(
                        categories=[list(v) for v in config.categories.values()],
                        drop="first" if config.drop_reference_level else None,
                        handle_unknown="ignore",
                        sparse_output=False,
                    ),
                ),
            ]
        )
        transformers.append(("categorical", categorical, list(config.categories)))
    recipe = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return recipe.set_output(transform="pandas")


def fit_transform_fold(
    recipe: ColumnTransformer, train_df: pd.DataFrame, test_df: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clone ``recipe``, fit it on ``train_df`` only, transform both frames.

    Returns:
        ``(X_train, X_test)``: (N_train, F) and (N_test, F) float DataFrames with the same
        columns, indexed like their inputs. The passed recipe itself stays unfitted.
    """
    fitted = clone(recipe)
    x_train = fitted.fit_transform(train_df)
    x_test = fitted.transform(test_df)
    return x_train.astype(np.float64), x_test.astype(np.float64)


# ---------------------------------------------------------------------------------------------
# Tokenizer (TransEpRelap)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClinicalTokens:
    """Clinical inputs of N patients for the Transformer.

    Attributes:
        numeric: (N, Nn) float32, standardised with training-fold statistics; NaN = missing.
        categorical: (N, Nc) int64 codes in ``[0, cardinality)``; -1 = missing or unknown.
    """

    numeric: np.ndarray
    categorical: np.ndarray

    def __len__(self) -> int:
        return int(self.numeric.shape[0])


class ClinicalTokenizer(BaseEstimator):
    """Turns clinical columns into :class:`ClinicalTokens` (scikit-learn style, picklable).

    Numeric columns (``log1p`` first where configured) are standardised with the mean and
    standard deviation of the data passed to :meth:`fit`, i.e. the training fold; NaN stays
    NaN. Categorical columns use the configured levels as fixed codes (``operative_side``:
    L=0, R=1, at :attr:`side_index`); binary history items are categories with 2 levels
    (0, 1). An unknown value becomes -1 (missing), with one warning per column.
    """

    def __init__(self, config: ClinicalFeatureConfig | None = None) -> None:
        self.config = config

    @property
    def _config(self) -> ClinicalFeatureConfig:
        return self.config or ClinicalFeatureConfig()

    @property
    def numeric_names(self) -> list[str]:
        return list(self._config.numeric_columns)

    @property
    def categorical_names(self) -> list[str]:
        return [*self._config.categories, *self._config.binary_columns]

    @property
    def cardinalities(self) -> list[int]:
        """Number of levels of each categorical column (codes exclude the -1 of missing)."""
        levels = [len(v) for v in self._config.categories.values()]
        return levels + [2] * len(self._config.binary_columns)

    @property
    def side_index(self) -> int:
        """Column of ``operative_side`` in ``ClinicalTokens.categorical``."""
        if SIDE_COLUMN not in self._config.categories:
            raise ValueError(f"this tokenizer has no {SIDE_COLUMN!r} column")
        return self.categorical_names.index(SIDE_COLUMN)

    def _numeric_values(self, df: pd.DataFrame) -> np.ndarray:
        check_clinical_columns(df, self._config)
        values = df[self.numeric_names].to_numpy(dtype=np.float64, na_value=np.nan)  # (N, Nn)
        for j, name in enumerate(self.numeric_names):
            if name in self._config.log1p_columns:
                values[:, j] = np.log1p(values[:, j])
        return values

    def fit(self, df: pd.DataFrame, y: Any = None) -> ClinicalTokenizer:
        """Learn per-column mean and standard deviation from ``df`` (the training fold)."""
        values = self._numeric_values(df)  # (N, Nn)
        means = np.zeros(values.shape[1])
        stds = np.ones(values.shape[1])
        for j, name in enumerate(self.numeric_names):
            observed = values[~np.isnan(values[:, j]), j]
            if observed.size == 0:
                logger.warning("clinical tokenizer: %r is missing for every patient", name)
                continue
            means[j] = observed.mean()
            if observed.std() > 0:
                stds[j] = observed.std()
            else:
                logger.warning("clinical tokenizer: %r is constant; it is only centred", name)
        self.means_ = means
        self.stds_ = stds
        self.warned_columns_: set[str] = set()
        return self

    def transform(self, df: pd.DataFrame) -> ClinicalTokens:
        """Tokens of every row of ``df``: numeric (N, Nn) float32, categorical (N, Nc) int64."""
        check_is_fitted(self, ["means_", "stds_"])
        numeric = ((self._numeric_values(df) - self.means_) / self.stds_).astype(np.float32)
        levels: dict[str, list[Any]] = {k: list(v) for k, v in self._config.categories.items()}
        levels.update({c: [0.0, 1.0] for c in self._config.binary_columns})
        codes = np.empty((len(df), len(self.categorical_names)), dtype=np.int64)  # (N, Nc)
        for j, name in enumerate(self.categorical_names):
            codes[:, j] = self._encode(df[name], levels[name], name)
        return ClinicalTokens(numeric=numeric, categorical=codes)

    def fit_transform(self, df: pd.DataFrame, y: Any = None) -> ClinicalTokens:
        return self.fit(df).transform(df)

    def _encode(self, column: pd.Series, levels: list[Any], name: str) -> np.ndarray:
        """(N,) int64 codes: position in ``levels``, -1 for missing or unknown values."""
        missing = column.isna().to_numpy()
        lookup = {level: code for code, level in enumerate(levels)}
        codes = np.array(
            [-1 if m else lookup.get(v, -2) for v, m in zip(column.tolist(), missing, strict=True)],
            dtype=np.int64,
        )
        unknown = codes == -2
        if unknown.any():
            if name not in self.warned_columns_:
                seen = sorted({str(v) for v in column[unknown].tolist()})
                logger.warning(
                    "clinical tokenizer: column %r has values %s outside its levels %s; "
                    "they are treated as missing",
                    name,
                    seen[:10],
                    levels,
                )
                self.warned_columns_.add(name)
            codes[unknown] = -1
        return codes
