"""The champion as a fold ensemble: the outer-fold models of the cross-validation, averaged.

HECKTOR 2021's best held-out result averaged its fold models instead of refitting once; this
is that option (``registry.champion: fold_ensemble``). A Cox log-risk is identified only up
to a constant, and each fold model has its own, so each member is centred on its mean
log-risk over the whole cohort before averaging: ``risk(x) = mean_k (r_k(x) - c_k)``. One
Breslow baseline is then fitted on the centred *out-of-fold* log-risks (each patient scored
by the member that did not train on it, averaged over repeats), so the survival
probabilities come from patients no member fitted. Each member keeps its own fold-fitted
clinical tokenizer, so new patients are encoded once per member.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.models.batch import SurvivalBatch
from tle_kedro.models.classical import SURVIVAL_TIMES, SurvivalPrediction
from tle_kedro.models.survival import BaselineHazard, breslow_baseline, survival_at
from tle_kedro.training.data import SurvivalArrays, outcome_arrays, rows_for
from tle_kedro.training.fitted import FittedNeuralModel


@dataclass
class FoldEnsemble:
    """K outer-fold networks predicting their mean centred log-risk, with one baseline.

    Attributes:
        members: the fold models (``FittedNeuralModel``), in ``(repeat, fold)`` order.
        keys: their ``<model>-r<repeat>-f<fold>`` names.
        offsets: (K,) each member's mean log-risk over the training cohort.
        baseline: Breslow baseline of the centred out-of-fold log-risks.
    """

    members: list[FittedNeuralModel]
    keys: list[str]
    offsets: np.ndarray
    baseline: BaselineHazard
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0

    @property
    def kind(self) -> str:
        return self.members[0].kind

    @property
    def model_config(self) -> Any:
        return self.members[0].model_config

    @property
    def train_config(self) -> Any:
        return self.members[0].train_config

    def arrays(
        self, participant_ids: Sequence[str], image_tensors: ImageTensors, table: pd.DataFrame
    ) -> list[SurvivalBatch | SurvivalArrays]:
        """Each member's tensors of new patients (its own fold-fitted tokenizer)."""
        return [m.arrays(participant_ids, image_tensors, table) for m in self.members]

    def member_risks(self, data: Sequence[SurvivalBatch | SurvivalArrays]) -> np.ndarray:
        """(K, N) centred log-risks of every member."""
        if len(data) != len(self.members):
            raise ValueError(f"need one input per member ({len(self.members)}), got {len(data)}")
        risks = [m.log_risk(d) for m, d in zip(self.members, data, strict=True)]
        return np.stack(risks) - self.offsets[:, None]

    def log_risk(self, data: Sequence[SurvivalBatch | SurvivalArrays]) -> np.ndarray:
        """(N,) mean centred log-risk."""
        return self.member_risks(data).mean(axis=0)

    def predict(self, data: Sequence[SurvivalBatch | SurvivalArrays]) -> SurvivalPrediction:
        """Risk, S(12 months | x) and S(24 months | x), each (N,) float64."""
        risk = self.log_risk(data)
        surv = survival_at(risk, self.baseline, np.asarray(SURVIVAL_TIMES))
        return SurvivalPrediction(risk=risk, surv_12=surv[:, 0], surv_24=surv[:, 1])

    def survival(
        self,
        data: Sequence[SurvivalBatch | SurvivalArrays],
        times: np.ndarray,
        risk: np.ndarray | None = None,
    ) -> np.ndarray:
        """(N, T) S(t | x) at (T,) months."""
        risk = self.log_risk(data) if risk is None else np.asarray(risk, dtype=np.float64)
        return survival_at(risk, self.baseline, np.asarray(times, dtype=np.float64))


def fold_ensemble(
    name: str,
    fold_models: Mapping[str, Any],
    oof_predictions: pd.DataFrame,
    clinical: pd.DataFrame,
    image_tensors: ImageTensors,
) -> FoldEnsemble:
    """The fold models of comparison model ``name`` as one :class:`FoldEnsemble`.

    Args:
        fold_models: ``cv_fold_models`` (``<model>-r<repeat>-f<fold>`` → fitted model).
        oof_predictions: the run's out-of-fold rows (``model, participant_id, repeat, fold,
            risk``): which member scored which patient.
        clinical: ``clinical_validated`` (outcomes for the baseline).
        image_tensors: the cohort's tensors (for the members' offsets).

    Raises:
        ValueError: no fold models of ``name`` (``modeling.keep_fold_models`` off, or a
            classical model, whose fold recipes are not kept), or out-of-fold rows missing.
    """
    prefix = f"{name}-r"
    keys = sorted(k for k in fold_models if k.startswith(prefix))
    members = [fold_models[k] for k in keys]
    if not members or not all(isinstance(m, FittedNeuralModel) for m in members):
        raise ValueError(
            f"registry.champion fold_ensemble needs the neural fold models of {name!r} in "
            "cv_fold_models (set modeling.keep_fold_models: true and rerun modeling); a "
            "classical baseline can only be refitted (registry.champion: refit)"
        )
    ids = list(clinical["participant_id"])
    offsets = np.array(
        [float(np.mean(m.log_risk(m.arrays(ids, image_tensors, clinical)))) for m in members]
    )
    rows = oof_predictions[oof_predictions["model"] == name]
    if rows.empty:
        raise ValueError(f"oof_predictions has no rows of {name!r} for the fold ensemble")
    offset_of = {
        tuple(int(v) for v in k[len(prefix) :].split("-f")): c
        for k, c in zip(keys, offsets, strict=True)
    }
    member = list(zip(rows["repeat"].astype(int), rows["fold"].astype(int), strict=True))
    unknown = sorted(set(member) - set(offset_of))
    if unknown:
        raise ValueError(f"out-of-fold rows of {name!r} from folds without a model: {unknown}")
    centred = rows["risk"].to_numpy(float) - np.array([offset_of[rf] for rf in member])
    oof = (
        pd.DataFrame({"participant_id": rows["participant_id"].to_numpy(), "risk": centred})
        .groupby("participant_id", sort=False)["risk"]
        .mean()
    )
    table = rows_for(clinical, list(oof.index), "clinical table")
    time, event = outcome_arrays(table)
    baseline = breslow_baseline(oof.to_numpy(), event, time)
    return FoldEnsemble(members, keys, offsets, baseline)
