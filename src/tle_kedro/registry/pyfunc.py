"""The registered model: preprocessing + fitted model + risk-group cut, as an MLflow pyfunc.

The fitted model is whichever comparison model ``registry.model`` names (TransEpRelap, a
neural baseline, or a classical baseline on the atlas region measures).

:class:`TLESurvivalModel` takes what a hospital has (a participants table and image paths),
not tensors: it validates the table (outcome columns optional), registers and crops the
images with the training run's preprocessing parameters, tokenizes the clinical values with
the training tokenizer and predicts. Nothing is refitted. MLflow stores it with cloudpickle
(``python_model.pkl``): loading a registered model runs arbitrary code, so load only models
from a registry you trust.

Input (``predict``): one row per patient with the ``participants.tsv`` columns, plus either
``t1_path``/``pet_path`` (file paths; empty = no image) or ``cohort_dir`` (a BIDS folder holding
``sub-<id>/anat`` and ``sub-<id>/pet``). Output: :data:`PREDICTION_COLUMNS` and
``exclusion_reason`` (empty for predicted patients; nothing is dropped silently).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from tle_kedro.data.cohort import IMAGE_COLUMNS, _subject_images, is_valid_participant_id
from tle_kedro.data.exclusions import PATIENT_REASONS, concat_exclusions
from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.data.schema import validate_participants
from tle_kedro.models.classical import SurvivalPrediction
from tle_kedro.models.survival import cumulative_baseline_at, survival_at
from tle_kedro.training.classical import FittedClassicalPipeline
from tle_kedro.training.data import SurvivalArrays
from tle_kedro.training.fitted import FittedNeuralModel
from tle_kedro.training.fold_ensemble import ClassicalFoldEnsemble, FoldEnsemble
from tle_kedro.transforms.params import PreprocessingParams
from tle_kedro.transforms.preprocess import preprocess_cohort
from tle_kedro.transforms.templates import mni_templates

logger = logging.getLogger(__name__)

PREDICTION_COLUMNS: tuple[str, ...] = (
    "participant_id",
    "risk",
    "risk_group",
    "p_recurrence_12",
    "p_recurrence_24",
    "modalities_used",
)
PATH_COLUMNS: tuple[str, str] = ("t1_path", "pet_path")
COHORT_DIR_COLUMN = "cohort_dir"
RISK_GROUP_TIME = 12.0  # months: the cut is expressed as P(recurrence by 12 months)
# What a registered model wraps: a neural model or the fold ensemble of one (Breslow
# baseline), or a classical baseline or the fold ensemble of one (no Breslow baseline).
FittedModel = FittedNeuralModel | FoldEnsemble | FittedClassicalPipeline | ClassicalFoldEnsemble


@dataclass(frozen=True)
class RiskGroups:
    """Median split into ``low``/``high`` risk, fixed on the training cohort.

    Attributes:
        threshold: the cut (``value >= threshold`` is ``high``) on the model's log-risk
            (``scale="log_risk"``) or on its P(recurrence by 12 months) (``scale="p12"``).
        p12_threshold: the same cut as P(recurrence by 12 months) of the final model.
        source: ``oof_probability`` (median out-of-fold P(recurrence by 12 months) of the
            comparison run, mapped through the final model's Breslow baseline) or
            ``final_training`` (median of the final model's risk on its own training data).
        scale: ``log_risk`` for models with a Breslow baseline (a log-risk cut is exact and
            needs no survival curve); ``p12`` for the others, whose risk score is not a
            log-risk (a forest's is a summed cumulative hazard, a discrete-time head's
            log(-log S(24))).
    """

    threshold: float
    p12_threshold: float
    source: str
    scale: Literal["log_risk", "p12"] = "log_risk"

    def assign(self, risk: np.ndarray, p12: np.ndarray | None = None) -> np.ndarray:
        """(N,) ``"low"``/``"high"`` for (N,) log-risks, or (N,) P(12) on the ``p12`` scale."""
        if self.scale == "p12":
            if p12 is None:
                raise ValueError("these risk groups cut P(recurrence by 12 months): pass p12")
            value = np.asarray(p12, dtype=np.float64)
        else:
            value = np.asarray(risk, dtype=np.float64)
        return np.where(value >= self.threshold, "high", "low")


def risk_groups(
    fitted: FittedModel,
    training: SurvivalPrediction,
    oof_predictions: pd.DataFrame | None,
    model: str,
    source: str = "oof_probability",
) -> RiskGroups:
    """The training cohort's median split, on the scale of the final model.

    A Cox log-risk is identified only up to a constant, so the fold models' out-of-fold
    log-risks cannot be compared with the final model's. Their P(recurrence by 12 months) can
    (each has its own baseline): the median out-of-fold probability ``p*`` becomes the
    log-risk cut ``log(-log(1 - p*) / H0(12))`` of a final model with a Breslow baseline, and
    is the cut itself for a model without one (``scale="p12"``).

    Args:
        fitted: the final model.
        training: its predictions on its own training patients.
        oof_predictions: long table with ``model, participant_id, surv_12``; may be None
            with ``source="final_training"``.
        model: the comparison model whose out-of-fold predictions are used.
        source: ``oof_probability`` or ``final_training``.
    """
    # the Breslow baseline of a Cox-type model; None (cut on the P(12) scale) for a model
    # whose risk is no log-risk: a classical baseline (no baseline attribute) or a network
    # with a discrete-time head, single or a fold ensemble (baseline None)
    baseline = getattr(fitted, "baseline", None)
    if source == "oof_probability":
        if oof_predictions is None or model not in set(oof_predictions["model"]):
            raise ValueError(
                f"risk groups from out-of-fold predictions need rows of model {model!r} in "
                "oof_predictions; run the modeling pipeline with that model, or set "
                "registry.risk_group_threshold: final_training"
            )
        rows = oof_predictions[oof_predictions["model"] == model]
        p_star = float(np.median(1.0 - rows.groupby("participant_id")["surv_12"].mean()))
        h12 = 1.0 if baseline is None else float(cumulative_baseline_at(baseline, RISK_GROUP_TIME))
        if h12 > 0 and 0.0 < p_star < 1.0:
            if baseline is None:
                return RiskGroups(p_star, p_star, source, "p12")
            threshold = float(np.log(-np.log1p(-p_star) / h12))
            return RiskGroups(threshold, p_star, source)
        logger.warning(
            "risk groups: H0(12)=%.3g, median out-of-fold P(12)=%.3g cannot be mapped; using "
            "the final model's median training risk instead",
            h12,
            p_star,
        )
    elif source != "final_training":
        raise ValueError(f"risk group source must be oof_probability or final_training: {source}")
    if baseline is None:
        p12 = float(np.median(1.0 - np.asarray(training.surv_12, dtype=np.float64)))
        return RiskGroups(p12, p12, "final_training", "p12")
    threshold = float(np.median(training.risk))
    p12 = float(1.0 - survival_at(np.array([threshold]), baseline, RISK_GROUP_TIME)[0])
    return RiskGroups(threshold, p12, "final_training")


@dataclass(frozen=True)
class PreparedCohort:
    """New patients after validation and preprocessing.

    Attributes:
        table: validated rows of the used patients (+ ``has_t1``, ``has_pet``), sorted by id.
        tensors: their image tensors (N, 2, D, H, W) on the training grid.
        exclusions: the exclusion report (``participant_id, reason, detail``).
        n_read: rows of the input table.
    """

    table: pd.DataFrame
    tensors: ImageTensors
    exclusions: pd.DataFrame
    n_read: int


def split_input(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a model input into (participants as strings, image paths like ``RawCohort.images``).

    Raises:
        ValueError: no ``participant_id`` column, or neither path columns nor ``cohort_dir``.
    """
    if "participant_id" not in frame.columns:
        raise ValueError(
            f"model input has no 'participant_id' column (columns: {list(frame.columns)}); "
            "pass the participants.tsv table"
        )
    has_paths = any(c in frame.columns for c in PATH_COLUMNS)
    if not has_paths and COHORT_DIR_COLUMN not in frame.columns:
        raise ValueError(
            "model input needs image locations: add 't1_path' and 'pet_path' columns (empty = "
            "no image) or a 'cohort_dir' column (the BIDS folder holding sub-<id>/anat, /pet)"
        )
    rows = []
    for record in frame.to_dict("records"):
        pid = record["participant_id"]
        if has_paths:
            valid = is_valid_participant_id(pid)
            rows.append(
                {
                    "participant_id": pid,
                    **{c: _path_or_none(record.get(c)) if valid else None for c in PATH_COLUMNS},
                    "subject_dir_exists": valid,
                }
            )
        else:
            rows.append(_subject_images(Path(str(record[COHORT_DIR_COLUMN])), pid))
    images = pd.DataFrame(rows, columns=IMAGE_COLUMNS)
    extra = [c for c in (*PATH_COLUMNS, COHORT_DIR_COLUMN) if c in frame.columns]
    raw = frame.drop(columns=extra).astype(object)
    raw = raw.map(lambda v: None if _missing(v) else str(v))
    return raw, images


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def _path_or_none(value: Any) -> str | None:
    return None if _missing(value) or str(value).strip() == "" else str(value)


class TLESurvivalModel(PythonModel):
    """Preprocessing + fitted model + risk-group cut: the object registered in MLflow.

    Args:
        fitted: the final model: a neural model (torch module on CPU, fitted tokenizer,
            Breslow baseline) or a classical baseline (fitted recipe, atlas, estimator).
        preprocessing: the training run's preprocessing parameters (the cache is switched
            off: a deployed model writes no files).
        groups: the training cohort's risk-group cut.
        info: provenance (validation metric, cohort size, tuned parameters), kept as is.
    """

    def __init__(
        self,
        fitted: FittedModel,
        preprocessing: PreprocessingParams,
        groups: RiskGroups,
        info: dict[str, Any] | None = None,
    ) -> None:
        grid = tuple(getattr(fitted.model_config, "grid_shape", preprocessing.grid_shape))
        if grid != tuple(preprocessing.grid_shape):
            raise ValueError(
                f"the model was built for grid {grid} but preprocessing.grid_shape is "
                f"{tuple(preprocessing.grid_shape)}; bundle it with the training run's parameters"
            )
        self.fitted = fitted
        self.preprocessing = preprocessing.model_copy(
            update={"cache_dir": None, "progress_bar": False}
        )
        self.groups = groups
        self.info = dict(info or {})

    def load_context(self, context: Any) -> None:
        """Build the MNI templates once at load, so the first patient is not slower."""
        mni_templates(self.preprocessing.registration.resolution_mm)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Predictions for every input row (excluded patients: NaN and their reason)."""
        prepared = self.prepare(model_input)
        predictions = self.predict_prepared(prepared)
        predictions["exclusion_reason"] = ""
        patient_level = {str(r) for r in PATIENT_REASONS}
        rows = prepared.exclusions[prepared.exclusions["reason"].isin(patient_level)]
        rows = rows[rows["participant_id"] != ""]
        excluded = rows.groupby("participant_id", sort=True)["reason"].agg(";".join)
        excluded = excluded.drop(index=predictions["participant_id"], errors="ignore")
        missing = pd.DataFrame(
            {"participant_id": excluded.index, "exclusion_reason": excluded.to_numpy()}
        )
        return pd.concat([predictions, missing], ignore_index=True)

    def prepare(
        self, participants: pd.DataFrame, images: pd.DataFrame | None = None
    ) -> PreparedCohort:
        """Validate (outcome optional) and preprocess new patients.

        Args:
            participants: a model input (see module docstring), or with ``images`` the raw
                ``participants.tsv`` table of a :class:`~tle_kedro.data.cohort.RawCohort`.
            images: ``RawCohort.images`` (``participant_id, t1_path, pet_path,
                subject_dir_exists``), or None to read the locations from ``participants``.
        """
        raw, paths = (participants, images) if images is not None else split_input(participants)
        valid, table_exclusions = validate_participants(raw, require_outcome=False)
        used, image_exclusions, tensors = preprocess_cohort(valid, paths, self.preprocessing)
        exclusions = concat_exclusions(table_exclusions, image_exclusions)
        return PreparedCohort(used, tensors, exclusions, len(raw))

    def arrays(
        self, prepared: PreparedCohort
    ) -> SurvivalArrays | list[SurvivalArrays] | pd.DataFrame:
        """Model inputs of the prepared patients: tensors (training tokenizer) of a neural
        model (one per member of a fold ensemble), the design matrix (training recipe, atlas
        measures) of a classical one."""
        ids = list(prepared.table["participant_id"])
        return self.fitted.arrays(ids, prepared.tensors, prepared.table)

    def predict_prepared(self, prepared: PreparedCohort) -> pd.DataFrame:
        """One row per used patient: :data:`PREDICTION_COLUMNS`."""
        if len(prepared.table) == 0:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in PREDICTION_COLUMNS})
        prediction = self.fitted.predict(self.arrays(prepared))  # type: ignore[arg-type]
        return pd.DataFrame(
            {
                "participant_id": prepared.table["participant_id"].astype(str).to_numpy(),
                "risk": prediction.risk,
                "risk_group": self.groups.assign(prediction.risk, 1.0 - prediction.surv_12),
                "p_recurrence_12": 1.0 - prediction.surv_12,
                "p_recurrence_24": 1.0 - prediction.surv_24,
                "modalities_used": self.modalities_used(prepared.tensors.index),
            }
        )

    def modalities_used(self, index: pd.DataFrame) -> list[str]:
        """Per patient, ``+``-joined inputs the model actually used (e.g. ``PET+clinical``)."""
        config = self.fitted.model_config
        use_t1, use_pet = getattr(config, "use_t1", True), getattr(config, "use_pet", True)
        clinical = ["clinical"] if getattr(config, "use_clinical", True) else []
        out = []
        for has_t1, has_pet in index[["has_t1", "has_pet"]].itertuples(index=False):
            names = ["T1"] * bool(has_t1 and use_t1) + ["PET"] * bool(has_pet and use_pet)
            out.append("+".join(names + clinical) or "none")
        return out

    def survival_curves(
        self, inputs: Any, times: np.ndarray, risk: np.ndarray | None = None
    ) -> np.ndarray:
        """(N, T) S(t | x) at (T,) months of the patients whose model inputs ``inputs``
        (:meth:`arrays`) are; ``risk``: their predicted risks when known (a neural model then
        needs no second forward pass)."""
        return self.fitted.survival(inputs, np.asarray(times, dtype=np.float64), risk)


def as_survival_model(model: Any) -> TLESurvivalModel:
    """The :class:`TLESurvivalModel` inside an MLflow ``PyFuncModel`` (or the object itself)."""
    inner = model.unwrap_python_model() if hasattr(model, "unwrap_python_model") else model
    if not isinstance(inner, TLESurvivalModel):
        raise ValueError(
            f"expected a tle_kedro TLESurvivalModel, got {type(inner).__name__}; is the "
            "registered model one logged by the final_model pipeline?"
        )
    return inner
