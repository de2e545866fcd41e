"""Warm start of TransEpRelap's linear term from a ridge Cox model of the region measures.

TransEpRelap's log-risk is ``head(summary token) + Σ_m w_m · z_m`` (``region_linear``), with
``z_m`` the standardised atlas region measures of modality ``m``. Trained from zero by
stochastic gradient on ~150 patients, ``w`` is a noisy, weakly regularised Cox fit; a ridge
Cox model on the same ``z``, its penalty chosen by inner cross-validation, is the better
estimate of that linear part (it is exactly ``cox_region_measures`` without clinical terms).
With ``train.warm_start: cox`` each network starts from it:

1. the measures of the training patients are computed by the model's own measure modules
   (true orientation, ipsilateral to the operated side) and their BatchNorm statistics are
   set to the training patients' mean and variance, then frozen (eval and training alike);
2. a ridge Cox model (scikit-survival, :func:`tle_kedro.models.classical.select_penalizer`)
   on those ``z`` gives ``w``, copied into the linear term, which is then frozen;
3. the risk head's last layer starts at zero, so the network starts *exactly* at the ridge
   Cox model, and attention learns the residual: what the images and clinical tokens add
   beyond the region measures. Early stopping on the inner split decides how far it goes.
   A discrete-time head (``model.head: discrete``) gets the same linear term added to every
   bin's hazard logit (for small per-bin hazards ``logit h ≈ log h``, the Cox scale) and its
   bias starts at the training patients' life-table hazard of each bin, so it starts at the
   ridge Cox model's ranking with the pooled event rates.

Why by hand: no library warm-starts a network's linear skip from a penalised Cox fit; the
Cox fit itself is scikit-survival's.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.util import Surv
from torch import nn

from tle_kedro.losses.discrete_time import bin_targets
from tle_kedro.models.batch import MODALITIES
from tle_kedro.models.classical import select_penalizer
from tle_kedro.models.measures import linear_basis
from tle_kedro.models.side import RIGHT_CODE
from tle_kedro.training.data import SurvivalArrays

logger = logging.getLogger(__name__)


def core_model(model: nn.Module) -> Any:
    """The TransEpRelap inside its wrappers (``DiscreteTimeSurvival``, ``IpsilateralView``),
    or the model itself."""
    while isinstance(getattr(model, "model", None), nn.Module):
        model = model.model  # type: ignore[assignment]
    return model


@torch.no_grad()
def _standardised(
    core: Any, arrays: SurvivalArrays, side_index: int | None, device: torch.device
) -> tuple[np.ndarray, list[str]]:
    """(N, F) inputs of the linear term (the standardised measures of every modality with a
    linear term, 0 where absent, in the model's ``region_linear_basis``);
    sets each measure BatchNorm to the training statistics and freezes it."""
    right = (
        arrays.clin_cat[:, side_index] == RIGHT_CODE
        if side_index is not None
        else torch.zeros(len(arrays), dtype=torch.bool)
    ).to(device)
    blocks, modalities = [], []
    for m in core.region_linear:
        block = core.measures[m]
        channel = MODALITIES.index(m)
        present = arrays.modality_mask[:, channel].to(device)
        images = arrays.images[:, channel : channel + 1].to(device)
        raw = block.measures(images, right).float()  # (N, F), true orientation
        rows = raw[present]
        if len(rows) >= 2:
            block.norm.running_mean.copy_(rows.mean(0))
            block.norm.running_var.copy_(rows.var(0, unbiased=True).clamp(min=1e-8))
        block.freeze_statistics()
        z = block.standardise(raw) * present.unsqueeze(1).to(raw.dtype)
        z = linear_basis(z, getattr(core.config, "region_linear_basis", "linear"))
        blocks.append(z.double().cpu().numpy())
        modalities.append(m)
    return np.concatenate(blocks, axis=1), modalities


def warm_start_from_cox(
    model: nn.Module,
    arrays: SurvivalArrays,
    side_index: int | None,
    penalizers: list[float],
    seed: int,
) -> float:
    """Set the linear term of ``model`` to a ridge Cox fit on ``arrays`` (its training
    patients), freeze it and zero the risk head's last layer. Returns the chosen penalty.

    Raises:
        ValueError: the model has no linear term (``region_linear`` off) or no outcomes.
    """
    core = core_model(model)
    if not len(getattr(core, "region_linear", {})):
        raise ValueError("warm_start: cox needs region_linear: true (a linear term to start)")
    if arrays.time is None or arrays.event is None:
        raise ValueError("warm_start: the training arrays have no outcomes")
    device = next(core.parameters()).device
    z, modalities = _standardised(core, arrays, side_index, device)
    y = Surv.from_arrays(event=arrays.event.numpy().astype(bool), time=arrays.time.numpy())
    alpha = select_penalizer(z, y, penalizers, seed)
    cox = CoxPHSurvivalAnalysis(alpha=alpha, ties="efron", n_iter=200).fit(z, y)
    beta = torch.as_tensor(np.asarray(cox.coef_), dtype=torch.float32, device=device)
    start = 0
    with torch.no_grad():
        for m in modalities:
            linear = core.region_linear[m]
            width = linear.weight.shape[1]
            linear.weight.copy_(beta[start : start + width].view(1, -1))
            linear.weight.requires_grad_(False)
            start += width
        last = core.head[-1]
        last.weight.zero_()
        last.bias.zero_()
        if last.bias.numel() > 1:  # a discrete-time head: one logit per bin
            last.bias.copy_(life_table_logits(arrays, core.config.time_bins_months))
    logger.info("warm start: ridge Cox on %d measures, penalty %g", z.shape[1], alpha)
    return alpha


def life_table_logits(arrays: SurvivalArrays, time_bins: tuple[float, ...]) -> torch.Tensor:
    """(K,) logits of the pooled life-table hazard of each bin: events in the bin over the
    patients known to be at risk through it (``losses.discrete_time.bin_targets``), clipped
    to [0.01, 0.99] so an empty or all-event bin keeps a finite logit."""
    assert arrays.event is not None and arrays.time is not None
    survived, event_bin = bin_targets(arrays.event, arrays.time, time_bins)
    k = torch.arange(len(time_bins) + 1)
    events = (event_bin.unsqueeze(1) == k).sum(0).double()  # (K,)
    at_risk = events + (survived.unsqueeze(1) > k).sum(0).double()  # (K,)
    hazard = (events / at_risk.clamp(min=1)).clamp(0.01, 0.99)
    return torch.logit(hazard).float()
