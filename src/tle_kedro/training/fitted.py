"""A trained neural survival model and its predictions (what a fit returns and pickles).

:class:`FittedNeuralModel` bundles the network with the tokenizer and the Breslow baseline
fitted on its training patients (a Cox head), or with no baseline for a discrete-time head,
whose risk and survival curves come from its hazard logits (``models.discrete``);
:func:`predict_log_risk` and :func:`predict_logits` are the eval-mode forward passes that the
fit loop's validation and every prediction share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.models.batch import SurvivalBatch
from tle_kedro.models.classical import SURVIVAL_TIMES, SurvivalPrediction
from tle_kedro.models.discrete import risk_summary, survival_from_logits, time_bins_of
from tle_kedro.models.survival import BaselineHazard, survival_at
from tle_kedro.training.config import TrainConfig
from tle_kedro.training.data import SurvivalArrays, make_survival_arrays
from tle_kedro.training.device import DeviceSetup, eval_mode, resolve_device


@dataclass
class FittedNeuralModel:
    """A trained neural survival model with everything needed to predict new patients.

    ``model`` is on CPU in eval mode; ``tokenizer`` and ``baseline`` were fitted on the
    training fold only. Picklable (the module is moved to CPU before pickling).
    With a discrete-time head (``time_bins`` set) ``baseline`` is None: the risk is the
    head's ``log(-log S(last edge))`` and S(t) comes from its hazards, never from Breslow.
    """

    kind: str
    model_config: Any
    train_config: TrainConfig
    model: torch.nn.Module
    tokenizer: Any
    baseline: BaselineHazard | None
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    calibration_slope: float = 1.0  # 1 = not recalibrated (``train.recalibrate``)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["model"] = self.model.to("cpu").eval()
        return state

    def arrays(
        self, participant_ids: Sequence[str], image_tensors: ImageTensors, table: pd.DataFrame
    ) -> SurvivalArrays:
        """Tensors of new patients, tokenized with the training-fold tokenizer (no outcome)."""
        return make_survival_arrays(
            participant_ids, image_tensors, self.tokenizer, table, with_outcome=False
        )

    @property
    def time_bins(self) -> tuple[float, ...] | None:
        """The discrete-time head's bin edges (months), None for a Cox head."""
        return time_bins_of(self.model)

    def logits(
        self, data: SurvivalBatch | SurvivalArrays, device: DeviceSetup | None = None
    ) -> np.ndarray:
        """(N, K) float64 hazard logits of a discrete-time head."""
        setup = device or resolve_device("cpu")
        return predict_logits(self.model, data, setup, self.train_config.eval_batch_size)

    def log_risk(
        self, data: SurvivalBatch | SurvivalArrays, device: DeviceSetup | None = None
    ) -> np.ndarray:
        """(N,) float64 log-risk (higher = earlier recurrence); a discrete head's
        ``log(-log S(last edge))``."""
        if self.time_bins is not None:
            return _discrete_risk(self.logits(data, device), self.time_bins)
        setup = device or resolve_device("cpu")
        return predict_log_risk(self.model, data, setup, self.train_config.eval_batch_size)

    def predict(
        self, data: SurvivalBatch | SurvivalArrays, device: DeviceSetup | None = None
    ) -> SurvivalPrediction:
        """Risk, S(12 months | x) and S(24 months | x), each (N,) float64."""
        times = np.asarray(SURVIVAL_TIMES)
        if self.time_bins is not None:
            logits = self.logits(data, device)  # one forward pass for the risk and S(t)
            risk = _discrete_risk(logits, self.time_bins)
            surv = survival_from_logits(logits, self.time_bins, times)  # (N, 2)
        else:
            risk = self.log_risk(data, device)
            surv = survival_at(risk, self._breslow(), times)  # (N, 2)
        return SurvivalPrediction(risk=risk, surv_12=surv[:, 0], surv_24=surv[:, 1])

    def survival(
        self,
        data: SurvivalBatch | SurvivalArrays,
        times: np.ndarray,
        risk: np.ndarray | None = None,
    ) -> np.ndarray:
        """(N, T) S(t | x) at (T,) months (Breslow baseline, or the discrete head's hazards);
        ``risk``: the (N,) log-risks of ``data`` when already computed (saves a forward pass
        of a Cox head; a discrete head needs its logits, so it runs the forward pass)."""
        times = np.asarray(times, dtype=np.float64)
        if self.time_bins is not None:
            return survival_from_logits(self.logits(data), self.time_bins, times)
        risk = self.log_risk(data) if risk is None else np.asarray(risk, dtype=np.float64)
        return survival_at(risk, self._breslow(), times)

    def _breslow(self) -> BaselineHazard:
        if self.baseline is None:
            raise ValueError(
                f"this {self.kind} model has neither a Breslow baseline nor a discrete head"
            )
        return self.baseline


def _discrete_risk(logits: np.ndarray, time_bins: tuple[float, ...]) -> np.ndarray:
    """(N,) float64 risk summary of (N, K) logits (``models.discrete.risk_summary``)."""
    return risk_summary(torch.from_numpy(logits), time_bins).numpy()


def predict_log_risk(
    model: torch.nn.Module,
    data: SurvivalBatch | SurvivalArrays,
    setup: DeviceSetup,
    chunk: int = 64,
) -> np.ndarray:
    """Eval-mode forward pass over ``data`` in chunks; (N,) float64 log-risk."""
    return _forward(model, lambda b: model(b).float().reshape(-1), data, setup, chunk)


def predict_logits(
    model: torch.nn.Module,
    data: SurvivalBatch | SurvivalArrays,
    setup: DeviceSetup,
    chunk: int = 64,
) -> np.ndarray:
    """Eval-mode ``model.logits`` over ``data`` in chunks; (N, K) float64 hazard logits of a
    discrete-time head (``models.discrete.DiscreteTimeSurvival`` or an ensemble of them)."""
    if time_bins_of(model) is None:
        raise ValueError("predict_logits needs a discrete-time model (model.head: discrete)")
    return _forward(model, lambda b: model.logits(b).float(), data, setup, chunk)  # type: ignore[operator]


def _forward(
    model: torch.nn.Module,
    fn: Any,
    data: SurvivalBatch | SurvivalArrays,
    setup: DeviceSetup,
    chunk: int,
) -> np.ndarray:
    """``fn(batch)`` in eval mode over ``data`` in chunks, concatenated along the patients."""
    batches = [data] if isinstance(data, SurvivalBatch) else list(data.chunks(chunk))
    model.to(setup.device)
    out = []
    with eval_mode(model):
        for batch in batches:
            b = to_device(batch, setup)
            with setup.autocast():
                out.append(fn(b).cpu())
    return torch.cat(out).double().numpy()


def to_device(batch: SurvivalBatch, setup: DeviceSetup) -> SurvivalBatch:
    """``batch`` on ``setup.device``, its images in the setup's memory format."""
    return batch.to(setup.device, non_blocking=True).with_images(
        setup.images_to_device(batch.images)
    )
