"""The champion as a fold ensemble: the outer-fold models of the cross-validation, averaged.

HECKTOR 2021's best held-out result averaged its fold models instead of refitting once; this
is that option (``registry.champion: fold_ensemble``), for both families of comparison model:

- **neural** (:class:`FoldEnsemble`): a Cox log-risk is identified only up to a constant, and
  each fold model has its own, so each member is centred on its mean log-risk over the whole
  cohort before averaging: ``risk(x) = mean_k (r_k(x) - c_k)``. One Breslow baseline is then
  fitted on the centred *out-of-fold* log-risks (each patient scored by the member that did
  not train on it, averaged over repeats), so the survival probabilities come from patients
  no member fitted. Each member keeps its own fold-fitted clinical tokenizer. Members with a
  discrete-time head (``model.head: discrete``) have no Breslow baseline and need none: the
  ensemble's curve is the mean of the heads' own curves, and its risk the same summary a
  single discrete network gives, ``log(-log S(24 | x))`` of that mean curve.
- **classical** (:class:`ClassicalFoldEnsemble`): a forest's risk score is a summed
  cumulative hazard, not a log-risk, so no Breslow baseline is fitted on it. The ensemble's
  survival curve is the mean of the members' own curves, ``S(t | x) = mean_k S_k(t | x)``
  (each member: its fold's Breslow baseline for a Cox model, its trees for a forest), and
  its risk is the mean of the members' risk scores (it orders patients; the registered
  model's risk groups cut P(recurrence by 12 months) of a classical model). The
  cross-validation keeps each fold's estimator but not the clinical recipe fitted on the
  fold, so the recipe is fitted again on the same training patients (deterministic: medians
  and categories) and the rebuilt member must reproduce its out-of-fold predictions.

Both builders check that every member reproduces the out-of-fold survival it recorded, so
fold models and ``oof_predictions`` of different runs are refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from tle_kedro.data.atlas import AtlasConfig
from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.features.imaging import imaging_features
from tle_kedro.models.batch import SurvivalBatch
from tle_kedro.models.classical import (
    SURVIVAL_TIMES,
    FittedClassicalModel,
    SurvivalPrediction,
    combine,
)
from tle_kedro.models.survival import BaselineHazard, breslow_baseline, survival_at
from tle_kedro.training.classical import (
    MEASURE_FAMILIES,
    ClassicalInputs,
    FittedClassicalPipeline,
    design_matrix,
)
from tle_kedro.training.cv import pooled_risk
from tle_kedro.training.data import SurvivalArrays, outcome_arrays, rows_for
from tle_kedro.training.fitted import FittedNeuralModel

# |S_24 rebuilt - S_24 recorded| above this: the fold models are not those of the predictions.
OOF_TOLERANCE = 1e-4


@dataclass
class FoldEnsemble:
    """K outer-fold networks predicting their mean centred log-risk, with one baseline.

    Attributes:
        members: the fold models (``FittedNeuralModel``), in ``(repeat, fold)`` order.
        keys: their ``<model>-r<repeat>-f<fold>`` names.
        offsets: (K,) each member's mean log-risk over the training cohort (zeros for
            discrete-time heads, whose curves are averaged instead).
        baseline: Breslow baseline of the centred out-of-fold log-risks; None for members
            with a discrete-time head.
    """

    members: list[FittedNeuralModel]
    keys: list[str]
    offsets: np.ndarray
    baseline: BaselineHazard | None
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
        risks = [m.log_risk(d) for m, d in per_member(self.members, data)]
        return np.stack(risks) - self.offsets[:, None]

    def log_risk(self, data: Sequence[SurvivalBatch | SurvivalArrays]) -> np.ndarray:
        """(N,) mean centred log-risk; for discrete heads log(-log S(24 | x)) of the mean curve."""
        if self.baseline is None:
            return self.predict(data).risk
        return self.member_risks(data).mean(axis=0)

    def predict(self, data: Sequence[SurvivalBatch | SurvivalArrays]) -> SurvivalPrediction:
        """Risk, S(12 months | x) and S(24 months | x), each (N,) float64."""
        if self.baseline is None:
            surv = mean_survival(self.members, data, np.asarray(SURVIVAL_TIMES))
            return SurvivalPrediction(
                risk=pooled_risk(surv[:, 1]), surv_12=surv[:, 0], surv_24=surv[:, 1]
            )
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
        if self.baseline is None:  # discrete-time heads: the mean of their own curves
            return mean_survival(self.members, data, times)
        risk = self.log_risk(data) if risk is None else np.asarray(risk, dtype=np.float64)
        return survival_at(risk, self.baseline, np.asarray(times, dtype=np.float64))


@dataclass
class ClassicalFoldEnsemble:
    """K outer-fold classical baselines: mean survival curve and mean risk score.

    Attributes:
        members: the fold models with their fold-fitted recipes, in ``(repeat, fold)`` order.
        keys: their ``<model>-r<repeat>-f<fold>`` names.
    """

    members: list[FittedClassicalPipeline]
    keys: list[str]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0

    @property
    def kind(self) -> str:
        return self.members[0].kind

    @property
    def model_config(self) -> ClassicalInputs:
        return self.members[0].model_config

    @property
    def atlas(self) -> AtlasConfig | None:
        return self.members[0].atlas

    def arrays(
        self, participant_ids: Sequence[str], image_tensors: ImageTensors, table: pd.DataFrame
    ) -> list[pd.DataFrame]:
        """Each member's design matrix of new patients (its own recipe). The atlas measures do
        not depend on the fold, so they are taken once, not once per member."""
        clinical = [
            design_matrix(m.recipe, None, participant_ids, None, table) for m in self.members
        ]
        if self.atlas is None:
            return clinical
        rows = rows_for(table, participant_ids, "clinical table")
        # one row per tensor row: keep the patients asked for, in their order
        every = imaging_features(image_tensors, rows, self.atlas)
        measures = rows_for(every, participant_ids, "image tensors")
        measures = measures.drop(columns=["participant_id"]).astype(np.float64)
        return [combine(x, measures) for x in clinical]

    def member_risks(self, data: Sequence[pd.DataFrame]) -> np.ndarray:
        """(K, N) risk scores of every member (Cox: linear predictor; forest: summed
        cumulative hazard)."""
        return np.stack([m.log_risk(d) for m, d in per_member(self.members, data)])

    def log_risk(self, data: Sequence[pd.DataFrame]) -> np.ndarray:
        """(N,) mean risk score (the name is the shared interface's; not a log-risk)."""
        return self.member_risks(data).mean(axis=0)

    def predict(self, data: Sequence[pd.DataFrame]) -> SurvivalPrediction:
        """Mean risk score, mean S(12 months | x) and mean S(24 months | x), each (N,)."""
        parts = [m.predict(d) for m, d in per_member(self.members, data)]
        return SurvivalPrediction(*(np.mean([p[i] for p in parts], axis=0) for i in range(3)))

    def survival(
        self, data: Sequence[pd.DataFrame], times: np.ndarray, risk: np.ndarray | None = None
    ) -> np.ndarray:
        """(N, T) mean of the members' S(t | x) at (T,) months (``risk`` is not needed)."""
        return mean_survival(self.members, data, times)


def per_member(members: Sequence[Any], data: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
    """``(member, its input)`` pairs; ValueError unless there is one input per member."""
    if len(data) != len(members):
        raise ValueError(f"need one input per member ({len(members)}), got {len(data)}")
    return zip(members, data, strict=True)


def mean_survival(members: Sequence[Any], data: Sequence[Any], times: np.ndarray) -> np.ndarray:
    """(N, T) mean of the members' own S(t | x) at (T,) months (classical members, and
    networks with a discrete-time head, have no shared baseline to put a mean risk through)."""
    t = np.asarray(times, dtype=np.float64)
    return np.mean([m.survival(d, t) for m, d in per_member(members, data)], axis=0)


def _members(name: str, fold_models: Mapping[str, Any], kind: type) -> tuple[list[str], list[Any]]:
    """Keys (sorted) and fold models of ``name``; ValueError unless all are ``kind``."""
    keys = sorted(k for k in fold_models if k.startswith(f"{name}-r"))
    members = [fold_models[k] for k in keys]
    if not members:
        raise ValueError(
            f"registry.champion fold_ensemble needs the fold models of {name!r}, but its "
            "cv_fold_models holds none: set modeling.keep_fold_models: true and rerun "
            f"`kedro run --pipelines=modeling --namespaces={name}`, or set registry.champion: "
            "refit"
        )
    wrong = sorted({type(m).__name__ for m in members if not isinstance(m, kind)})
    if wrong:
        raise ValueError(
            f"fold models of {name!r} are {wrong}, not {kind.__name__}: the model's family "
            "and its fold models disagree (different configurations?)"
        )
    return keys, members


def _oof_members(
    name: str, keys: list[str], oof_predictions: pd.DataFrame, ids: list[str]
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``name``'s out-of-fold rows, the member that scored each (K index) and the patient's
    position in ``ids``."""
    rows = oof_predictions[oof_predictions["model"] == name]
    if rows.empty:
        raise ValueError(f"oof_predictions has no rows of {name!r} for the fold ensemble")
    index = {f"{name}-r{r}-f{f}": k for k, (r, f) in enumerate(_repeat_fold(name, keys))}
    member_keys = [
        f"{name}-r{int(r)}-f{int(f)}" for r, f in zip(rows["repeat"], rows["fold"], strict=True)
    ]
    unknown = sorted(set(member_keys) - set(index))
    if unknown:
        raise ValueError(f"out-of-fold rows of {name!r} from folds without a model: {unknown}")
    position = {pid: i for i, pid in enumerate(ids)}
    missing = sorted(set(rows["participant_id"]) - set(position))
    if missing:
        raise ValueError(
            f"out-of-fold rows of {name!r} for patients not in the cohort: {missing[:5]}"
        )
    member = np.array([index[k] for k in member_keys])
    where = np.array([position[p] for p in rows["participant_id"]])
    return rows, member, where


def _repeat_fold(name: str, keys: list[str]) -> list[tuple[int, int]]:
    prefix = f"{name}-r"
    return [tuple(int(v) for v in k[len(prefix) :].split("-f")) for k in keys]  # type: ignore[misc]


def _check_reproduced(name: str, rows: pd.DataFrame, surv_24: np.ndarray) -> None:
    """ValueError unless the members' S(24 | x) are the recorded out-of-fold ones."""
    gap = np.abs(surv_24 - rows["surv_24"].to_numpy(float))
    if gap.max() > OOF_TOLERANCE:
        raise ValueError(
            f"the fold models of {name!r} do not reproduce its out-of-fold predictions (max "
            f"|ΔS(24)| = {gap.max():.3g}): cv_fold_models and oof_predictions come from "
            "different modeling runs; rerun the modeling pipeline for this model"
        )


def fold_ensemble(
    name: str,
    fold_models: Mapping[str, Any],
    oof_predictions: pd.DataFrame,
    clinical: pd.DataFrame,
    image_tensors: ImageTensors,
) -> FoldEnsemble:
    """The neural fold models of comparison model ``name`` as one :class:`FoldEnsemble`.

    Args:
        fold_models: ``<model>.cv_fold_models`` (``<model>-r<repeat>-f<fold>`` → fitted).
        oof_predictions: the run's out-of-fold rows (``model, participant_id, repeat, fold,
            surv_24``): which member scored which patient. Their ``risk`` column is on the
            pooled scale log H(24 | x) (``training.cv.pooled_risk``), not a member's
            log-risk, so the members' log-risks are taken from the members themselves.
        clinical: ``clinical_validated`` (outcomes for the baseline).
        image_tensors: the cohort's tensors (for the members' offsets).

    Raises:
        ValueError: no fold models of ``name`` (``modeling.keep_fold_models`` off), members
            that are not neural, out-of-fold rows missing, or not reproduced by the members.
    """
    keys, members = _members(name, fold_models, FittedNeuralModel)
    ids = list(clinical["participant_id"])
    if any(m.baseline is None for m in members):  # discrete-time heads: their own curves
        rows, member, where = _oof_members(name, keys, oof_predictions, ids)
        each = [m.predict(m.arrays(ids, image_tensors, clinical)).surv_24 for m in members]
        _check_reproduced(name, rows, np.stack(each)[member, where])
        return FoldEnsemble(members, keys, np.zeros(len(members)), None)
    raw = np.stack([m.log_risk(m.arrays(ids, image_tensors, clinical)) for m in members])  # (K, N)
    offsets = raw.mean(axis=1)
    rows, member, where = _oof_members(name, keys, oof_predictions, ids)
    oof_raw = raw[member, where]  # each row's log-risk by the member that did not train on it
    surv_24 = np.empty(len(rows))
    for k, m in enumerate(members):
        surv_24[member == k] = survival_at(oof_raw[member == k], m.baseline, SURVIVAL_TIMES[1])
    _check_reproduced(name, rows, surv_24)
    oof = (
        pd.DataFrame(
            {"participant_id": rows["participant_id"].to_numpy(), "risk": oof_raw - offsets[member]}
        )
        .groupby("participant_id", sort=False)["risk"]
        .mean()
    )
    time, event = outcome_arrays(rows_for(clinical, list(oof.index), "clinical table"))
    return FoldEnsemble(members, keys, offsets, breslow_baseline(oof.to_numpy(), event, time))


def classical_fold_ensemble(
    name: str,
    family: str,
    fold_models: Mapping[str, Any],
    oof_predictions: pd.DataFrame,
    clinical: pd.DataFrame,
    image_tensors: ImageTensors,
    recipe: Any,
    atlas: AtlasConfig,
) -> ClassicalFoldEnsemble:
    """The fold estimators of classical model ``name`` (``family``) with their recipes.

    Each member's clinical recipe is ``recipe`` (unfitted, ``clinical_features``) fitted on
    its fold's training patients: the cohort minus the patients its out-of-fold rows hold.

    Raises:
        ValueError: as :func:`fold_ensemble`.
    """
    keys, estimators = _members(name, fold_models, FittedClassicalModel)
    ids = list(clinical["participant_id"])
    rows, member, where = _oof_members(name, keys, oof_predictions, ids)
    measures = atlas if family in MEASURE_FAMILIES else None
    inputs = ClassicalInputs(
        grid_shape=tuple(image_tensors.grid_shape),  # type: ignore[arg-type]
        use_t1=measures is not None,
        use_pet=measures is not None,
    )
    members = []
    for k, estimator in enumerate(estimators):
        tested = set(rows["participant_id"].to_numpy()[member == k])
        train = rows_for(clinical, [p for p in sorted(ids) if p not in tested], "clinical table")
        fitted = clone(recipe).fit(train)
        members.append(FittedClassicalPipeline(name, inputs, fitted, measures, estimator))
    ensemble = ClassicalFoldEnsemble(members, keys)
    data = ensemble.arrays(ids, image_tensors, clinical)
    surv = np.stack([m.predict(d).surv_24 for m, d in zip(members, data, strict=True)])  # (K, N)
    _check_reproduced(name, rows, surv[member, where])
    return ensemble


def champion_fold_ensemble(
    name: str,
    family: str,
    fold_models: Mapping[str, Any],
    oof_predictions: pd.DataFrame,
    clinical: pd.DataFrame,
    image_tensors: ImageTensors,
    recipe: Any,
    atlas: AtlasConfig,
) -> FoldEnsemble | ClassicalFoldEnsemble:
    """:func:`fold_ensemble` for a neural ``family``, else :func:`classical_fold_ensemble`."""
    if family == "neural":
        return fold_ensemble(name, fold_models, oof_predictions, clinical, image_tensors)
    return classical_fold_ensemble(
        name, family, fold_models, oof_predictions, clinical, image_tensors, recipe, atlas
    )
