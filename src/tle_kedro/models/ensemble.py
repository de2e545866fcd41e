"""A mean ensemble of survival networks (one log-risk, the average of its members'), and a
calibration-slope wrapper.

Each member is a full model (TransEpRelap, an ablation or a baseline) trained with its own
seed and its own early-stopping split of the training fold (``training.fit``), so the
members differ in initialisation, batch order, augmentation draws and the patients they
were fitted on. Averaging Cox log-risks (a geometric mean of the hazard ratios) keeps the
output a log-risk, so the Breslow baseline, the explanations and the registered model treat
the ensemble exactly like a single network.

Members with a discrete-time head (``models.discrete``) are mixed in survival space instead:
the ensemble's survival curve is the mean of the members' curves at every bin edge
(``mixture_logits``), turned back into hazard logits, and its risk is the risk summary of
that mixture, so the risk and the curves of the ensemble agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from tle_kedro.models.batch import SurvivalBatch
from tle_kedro.models.discrete import mixture_logits, risk_summary, time_bins_of


class MeanEnsemble(nn.Module):
    """``forward(batch) = mean_k member_k(batch)``, each member (B,) log-risk; for
    discrete-time members, the risk summary of the mixture of their survival curves.

    Args:
        members: at least one module mapping a ``SurvivalBatch`` to (B,) log-risk, all Cox
            or all discrete-time with the same ``time_bins``.
    """

    time_bins: tuple[float, ...] | None = None  # Cox members (and ensembles pickled before)

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) == 0:
            raise ValueError("MeanEnsemble needs at least one member")
        bins = {time_bins_of(m) for m in members}
        if len(bins) > 1:
            raise ValueError(
                f"MeanEnsemble members must share one head; got time bins {sorted(map(str, bins))}"
            )
        self.members = nn.ModuleList(members)
        self.time_bins = bins.pop()

    def __len__(self) -> int:
        return len(self.members)

    def logits(self, batch: SurvivalBatch) -> Tensor:
        """batch → (B, K) hazard logits of the mixture of the members' survival curves."""
        if self.time_bins is None:
            raise ValueError("logits() needs discrete-time members; these are Cox networks")
        outputs = [member.logits(batch) for member in self.members]  # type: ignore[operator]
        return mixture_logits(outputs, self.time_bins)

    def forward(self, batch: SurvivalBatch) -> Tensor:
        """batch → (B,) mean log-risk over the members (discrete: the mixture's risk)."""
        if self.time_bins is not None:
            return risk_summary(self.logits(batch), self.time_bins)
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
