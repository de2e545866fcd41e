"""A mean ensemble of survival networks: one log-risk, the average of its members'.

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
