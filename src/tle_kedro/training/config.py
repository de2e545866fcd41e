"""Typed, validated parameters of training, classical baselines and Optuna tuning.

Validated once at the node boundary (``parameters_modeling.yml``); errors name the offending
key. A default that ``conf/base`` also sets equals it (``tests/test_conf_defaults.py`` holds
them equal): the YAML is the truth, the default only serves code and tests that build a
configuration without it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tle_kedro.transforms.augment import AugmentConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainConfig(_Strict):
    """One fit of a neural survival model (shared by every neural model and ablation).

    ``batch_size=None`` trains on the whole training fold per step (220 small crops fit);
    otherwise the batch sampler puts at least one event in every batch.
    ``early_stopping_patience=None`` trains every epoch but still restores the best epoch
    (by inner-validation Harrell C, or with ``early_stopping_metric="loss"`` by the
    inner-validation Cox loss, C breaking ties); ``inner_val_fraction=0`` disables the inner
    split (no early stopping, the last epoch is kept). ``ema_decay``: validate and keep an
    exponential moving average of the weights (and BatchNorm statistics), updated every step.
    ``ensemble``: train that many members, member ``k`` with seed ``seed + k`` (its own
    initialisation, batch order, augmentation and inner early-stopping split), and predict
    the mean of their log-risks (``models.ensemble.MeanEnsemble``).
    ``snapshots``: keep the best ``snapshots`` epochs of each network (by inner-validation
    score) instead of the best one, and let the network predict the mean of their log-risks
    (a checkpoint ensemble: variance reduction at the cost of inference only).
    ``warm_start``: ``cox`` starts each network's linear term of the region measures at a
    ridge Cox fit on its training patients (penalty from ``warm_start_penalizers`` by inner
    CV), frozen, with a zero risk head: attention learns the residual
    (``training.warm_start``). Models without a linear term ignore it. ``warm_start_rows``:
    fit that Cox model on the network's inner-training patients only, or on the whole outer
    training fold (its inner-validation patients too: more data for the ridge fit, at the
    price of an early-stopping split that the linear term has seen).
    ``recalibrate``: after training, fit a calibration slope and the Breslow baseline on the
    members' inner-validation patients instead of the Breslow baseline on the whole fold
    (``models.ensemble.Recalibrated``); needs ``inner_val_fraction > 0``.
    """

    epochs: int = Field(30, ge=1, le=10_000)
    lr: float = Field(3e-3, gt=0, le=1.0)
    weight_decay: float = Field(1e-2, ge=0)
    warmup_epochs: int = Field(2, ge=0)
    batch_size: int | None = Field(16, ge=2)
    eval_batch_size: int = Field(64, ge=1)
    early_stopping_patience: int | None = Field(4, ge=1)
    early_stopping_metric: Literal["c", "loss"] = "c"
    inner_val_fraction: float = Field(0.2, ge=0, le=0.5)
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True
    grad_clip: float | None = Field(1.0, gt=0)
    ema_decay: float | None = Field(None, gt=0, lt=1)
    ensemble: int = Field(2, ge=1, le=32)
    snapshots: int = Field(3, ge=1, le=16)
    recalibrate: bool = True
    warm_start: Literal["none", "cox"] = "cox"
    warm_start_rows: Literal["inner_train", "training_fold"] = "inner_train"
    warm_start_penalizers: list[float] = Field(default_factory=lambda: [0.1, 1.0, 10.0, 100.0])
    augment: AugmentConfig = AugmentConfig.model_validate({})
    progress: bool = True

    @model_validator(mode="after")
    def _warmup_shorter_than_training(self) -> TrainConfig:
        if self.warmup_epochs >= self.epochs and self.epochs > 1:
            raise ValueError(
                f"warmup_epochs ({self.warmup_epochs}) must be smaller than epochs "
                f"({self.epochs}): lower warmup_epochs or raise epochs"
            )
        return self


class ClassicalConfig(_Strict):
    """Classical baselines: Cox PH (ridge penalty) and random survival forest.

    ``cox_penalizer`` is one ridge penalty or a list of candidates chosen per training fold
    by inner 5-fold CV (Harrell C).
    """

    cox_penalizer: float | list[float] = Field(default_factory=lambda: [0.1, 1.0, 10.0, 100.0])
    rsf_n_estimators: int = Field(200, ge=1)
    rsf_min_samples_leaf: int = Field(10, ge=1)
    rsf_max_features: float | Literal["sqrt", "log2"] | None = "sqrt"
    rsf_n_jobs: int = Field(1, ge=1, le=4)
    seed: int = 42

    @field_validator("cox_penalizer")
    @classmethod
    def _non_negative(cls, value: float | list[float]) -> float | list[float]:
        values = value if isinstance(value, list) else [value]
        if not values or any(v < 0 for v in values):
            raise ValueError(f"cox_penalizer must be >= 0 (or a non-empty list), got {value}")
        return value


class ParamRange(_Strict):
    """Search range of one hyperparameter: ``low``/``high`` (``log`` scale) or ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ParamRange:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            if not self.choices:
                raise ValueError("choices must not be empty")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a range needs both low and high (or a list of choices)")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        return self


def _default_space() -> dict[str, ParamRange]:
    return {
        "train.lr": ParamRange(low=3e-4, high=1e-2, log=True),
        "train.weight_decay": ParamRange(low=1e-4, high=1e-1, log=True),
        "model.n_intra_layers": ParamRange(choices=[1, 2]),
        "model.n_inter_layers": ParamRange(choices=[1, 2]),
        "model.n_heads": ParamRange(choices=[2, 4]),
        "model.d_model": ParamRange(choices=[32, 64]),
        "model.dropout": ParamRange(low=0.0, high=0.3),
        "model.modality_dropout": ParamRange(low=0.0, high=0.4),
        "train.augment.strength": ParamRange(low=0.5, high=1.5),
    }


class TuningConfig(_Strict):
    """Optuna study of one neural model, run inside a training fold (nested CV).

    ``search_space`` maps a dotted path into the configurations to a range: ``train.<field>``
    (``TrainConfig``, e.g. ``train.lr``, ``train.augment.<field>``) or ``model.<field>``
    (the model's config). ``n_trials`` is per call: re-running the same study adds that many
    trials (an interrupted study resumes where it stopped); a fresh study's first trial is
    the configured values when ``enqueue_base``. Trials are scored on an inner validation
    split of ``inner_val_fraction`` of the training fold, by the mean C of the last epochs
    (``score: final``) or the best epoch (``max``). ``storage`` is any SQLAlchemy URL (a
    Kedro run takes it from the catalog's ``optuna_storage``), None keeps the study in
    memory; a server-backed one (PostgreSQL/MySQL) lets several worker processes share a
    study.
    """

    enabled: bool = True
    n_trials: int = Field(2, ge=1)
    inner_val_fraction: float = Field(0.2, gt=0, le=0.5)
    score: Literal["max", "final"] = "final"
    timeout_s: float | None = Field(120.0, gt=0)
    epochs: int | None = Field(6, ge=1)
    storage: str | None = None
    study_name: str = Field("transeprelap", min_length=1)
    seed: int = 42
    pruner_startup_trials: int = Field(2, ge=0)
    pruner_warmup_epochs: int = Field(5, ge=0)
    heartbeat_interval_s: int | None = Field(None, ge=1)
    mlflow_nested_runs: bool = True
    enqueue_base: bool = True
    search_space: dict[str, ParamRange] = Field(default_factory=_default_space)

    @model_validator(mode="after")
    def _paths_have_known_roots(self) -> TuningConfig:
        bad = [k for k in self.search_space if k.split(".")[0] not in {"train", "model"}]
        if bad or any(k.count(".") < 1 for k in self.search_space):
            raise ValueError(
                f"search_space keys must start with 'train.' or 'model.', got {sorted(bad)}"
            )
        return self


def parse_section(model: type[BaseModel], raw: dict[str, Any] | None, where: str) -> Any:
    """Validate ``raw`` as ``model``; a ``ValueError`` names the section and every bad key."""
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        lines = [
            f"  {where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ValueError(
            f"invalid parameters in '{where}' (conf/base/parameters_modeling.yml):\n"
            + "\n".join(lines)
        ) from None
