"""A mean ensemble of survival networks (one log-risk, the average of its members'), and a
calibration-slope wrapper.

Each member is a full model (TransEpRelap, an ablation or a baseline) trained with its own
seed and its own early-stopping split of the training fold (``training.fit``), so the
members differ in initialisation, batch order, augmentation draws and the patients they
were fitted on. Averaging Cox log-risks (a geometric mean of the hazard ratios) keeps the
output a log-risk, so the Breslow baseline, the explanations and the registered model treat
the ensemble exactly like a single network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from tle_kedro.models.batch import SurvivalBatch


class MeanEnsemble(nn.Module):
    """``forward(batch) = mean_k member_k(batch)``, each member (B,) log-risk.

    Args:
        members: at least one module mapping a ``SurvivalBatch`` to (B,) log-risk.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) == 0:
            raise ValueError("MeanEnsemble needs at least one member")
        self.members = nn.ModuleList(members)

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, batch: SurvivalBatch) -> Tensor:
        """batch → (B,) mean log-risk over the members."""
        outputs = [member(batch).reshape(-1) for member in self.members]  # K × (B,)
        return torch.stack(outputs, dim=0).mean(dim=0)


class Recalibrated(nn.Module):
    """``forward(batch) = slope * model(batch)``: a log-risk rescaled by a calibration slope.

    A network's log-risks on its own training patients spread wider than on new patients
    (it has fitted them), so the slope is estimated on patients the network did not train
    on (``training.fit``: the inner-validation patients). Multiplying by a positive slope
    keeps every ranking (C-index) and changes only how far apart risks are, i.e. the
    survival probabilities and how one fold's risks compare with another's.

    Args:
        model: maps a ``SurvivalBatch`` to (B,) log-risk.
        slope: the calibration slope, > 0.
    """

    def __init__(self, model: nn.Module, slope: float) -> None:
        super().__init__()
        if not slope > 0:
            raise ValueError(f"calibration slope must be > 0, got {slope}")
        self.model = model
        self.slope = float(slope)

    def forward(self, batch: SurvivalBatch) -> Tensor:
        """batch → (B,) rescaled log-risk."""
        return self.model(batch) * self.slope
