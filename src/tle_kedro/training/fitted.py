"""A trained neural survival model and its predictions (what a fit returns and pickles).

:class:`FittedNeuralModel` bundles the network with the tokenizer and the Breslow baseline
fitted on its training patients; :func:`predict_log_risk` is the eval-mode forward pass that
the fit loop's validation and every prediction share.
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
from tle_kedro.models.survival import BaselineHazard, survival_at
from tle_kedro.training.config import TrainConfig
from tle_kedro.training.data import SurvivalArrays, make_survival_arrays
from tle_kedro.training.device import DeviceSetup, eval_mode, resolve_device


@dataclass
class FittedNeuralModel:
    """A trained neural survival model with everything needed to predict new patients.

    ``model`` is on CPU in eval mode; ``tokenizer`` and ``baseline`` were fitted on the
    training fold only. Picklable (the module is moved to CPU before pickling).
    """

    kind: str
    model_config: Any
    train_config: TrainConfig
    model: torch.nn.Module
    tokenizer: Any
    baseline: BaselineHazard
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

    def log_risk(
        self, data: SurvivalBatch | SurvivalArrays, device: DeviceSetup | None = None
    ) -> np.ndarray:
        """(N,) float64 log-risk (higher = earlier recurrence)."""
        setup = device or resolve_device("cpu")
        return predict_log_risk(self.model, data, setup, self.train_config.eval_batch_size)

    def predict(
        self, data: SurvivalBatch | SurvivalArrays, device: DeviceSetup | None = None
    ) -> SurvivalPrediction:
        """Risk, S(12 months | x) and S(24 months | x), each (N,) float64."""
        risk = self.log_risk(data, device)
        surv = survival_at(risk, self.baseline, np.asarray(SURVIVAL_TIMES))  # (N, 2)
        return SurvivalPrediction(risk=risk, surv_12=surv[:, 0], surv_24=surv[:, 1])

    def survival(
        self,
        data: SurvivalBatch | SurvivalArrays,
        times: np.ndarray,
        risk: np.ndarray | None = None,
    ) -> np.ndarray:
        """(N, T) S(t | x) at (T,) months (Breslow baseline); ``risk``: the (N,) log-risks of
        ``data`` when already computed (saves a forward pass)."""
        risk = self.log_risk(data) if risk is None else np.asarray(risk, dtype=np.float64)
        return survival_at(risk, self.baseline, np.asarray(times, dtype=np.float64))


def predict_log_risk(
    model: torch.nn.Module,
    data: SurvivalBatch | SurvivalArrays,
    setup: DeviceSetup,
    chunk: int = 64,
) -> np.ndarray:
    """Eval-mode forward pass over ``data`` in chunks; (N,) float64 log-risk."""
    batches = [data] if isinstance(data, SurvivalBatch) else list(data.chunks(chunk))
    model.to(setup.device)
    out = []
    with eval_mode(model):
        for batch in batches:
            b = to_device(batch, setup)
            with setup.autocast():
                out.append(model(b).float().reshape(-1).cpu())
    return torch.cat(out).double().numpy()


def to_device(batch: SurvivalBatch, setup: DeviceSetup) -> SurvivalBatch:
    """``batch`` on ``setup.device``, its images in the setup's memory format."""
    return batch.to(setup.device, non_blocking=True).with_images(
        setup.images_to_device(batch.images)
    )
