"""What every outer fold of the cross-validation shares: the data, the splits, the checks.

Used by the fits (``training.cv``), the per-fold Optuna studies (``training.fold_tuning``)
and the final refit (``training.final``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.training.fit import FitInputs
from tle_kedro.training.specs import ModelSpec

Split = tuple[int, int, list[str], list[str]]  # repeat, fold, train ids, test ids


@dataclass(frozen=True)
class CVData:
    """Inputs shared by every fold: tables, tensors and UNFITTED preprocessing objects.

    Attributes:
        clinical: ``clinical_validated`` (``participant_id``, contract columns).
        folds: ``cv_folds`` (``participant_id, repeat, fold``).
        image_tensors: needed by neural models.
        imaging_features: ``participant_id`` + float features; needed by ``*_imaging``.
        recipe: unfitted clinical ``ColumnTransformer``; needed by classical models.
        tokenizer: unfitted ``ClinicalTokenizer``; needed by neural models.
    """

    clinical: pd.DataFrame
    folds: pd.DataFrame
    image_tensors: ImageTensors | None = None
    imaging_features: pd.DataFrame | None = None
    recipe: Any = None
    tokenizer: Any = None


def check_folds(folds: pd.DataFrame, clinical: pd.DataFrame) -> None:
    """Raise ValueError unless every repeat assigns every clinical patient to exactly one fold."""
    missing = {"participant_id", "repeat", "fold"} - set(folds.columns)
    if missing:
        raise ValueError(f"cv_folds lacks columns {sorted(missing)}")
    if folds.duplicated(["participant_id", "repeat"]).any():
        raise ValueError("cv_folds: a patient appears twice in one repeat")
    patients = set(clinical["participant_id"])
    for repeat, part in folds.groupby("repeat"):
        ids = set(part["participant_id"])
        if ids != patients:
            raise ValueError(
                f"cv_folds repeat {repeat}: {len(ids - patients)} ids not in the clinical table "
                f"(e.g. {sorted(ids - patients)[:5]}), {len(patients - ids)} clinical patients "
                f"without a fold (e.g. {sorted(patients - ids)[:5]}); recompute the folds from "
                "clinical_validated"
            )


def check_specs(specs: Sequence[ModelSpec], data: CVData) -> None:
    """Raise ValueError unless every spec is unique and ``data`` holds what it needs."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names}")
    for s in specs:
        needs = {
            "cox_clinical": ["recipe"],
            "cox_region_measures": ["recipe", "imaging_features"],
            "rsf_region_measures": ["recipe", "imaging_features"],
            "neural": ["image_tensors", "tokenizer"],
        }[s.family]
        absent = [n for n in needs if getattr(data, n) is None]
        if absent:
            raise ValueError(f"model {s.name!r} ({s.family}) needs CVData fields {absent}")
        if s.family == "neural" and (s.kind is None or s.train_config is None):
            raise ValueError(f"neural model {s.name!r} needs kind and train_config")
        if s.tune_with is not None and s.tune_with not in names:
            raise ValueError(f"model {s.name!r}: tune_with={s.tune_with!r} is not a model name")


def neural_fit_inputs(spec: ModelSpec, data: CVData, train_ids: Sequence[str]) -> FitInputs:
    """The neural ``spec`` fitted on ``train_ids`` of ``data`` (its configured values)."""
    assert data.image_tensors is not None and spec.train_config is not None
    return FitInputs(
        spec.kind or "",
        spec.model_config,
        spec.train_config,
        train_ids,
        data.image_tensors,
        data.clinical,
        data.tokenizer,
    )


def fold_splits(folds: pd.DataFrame) -> list[Split]:
    """``(repeat, fold, train ids, test ids)`` of every outer fold, in (repeat, fold) order."""
    out: list[Split] = []
    for (repeat, fold), test_part in folds.groupby(["repeat", "fold"], sort=True):
        in_repeat = folds[folds["repeat"] == repeat]
        test_ids = sorted(test_part["participant_id"])
        train_ids = sorted(set(in_repeat["participant_id"]) - set(test_ids))
        out.append((int(repeat), int(fold), train_ids, test_ids))
    return out
