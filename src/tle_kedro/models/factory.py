"""The one place that builds a neural survival model by name (``build_model``).

Its sizes and switches are a :class:`~tle_kedro.models.config.ModelConfig`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import nn

# ModelConfig is also imported so that models pickled before it moved to models.config
# (``tle_kedro.models.factory.ModelConfig``) still load.
from tle_kedro.models.baselines import LateFusion, ResNetImageOnly
from tle_kedro.models.config import ModelConfig
from tle_kedro.models.discrete import DiscreteTimeSurvival
from tle_kedro.models.side import IpsilateralView
from tle_kedro.models.transeprelap import TransEpRelap

ModelKind = Literal["transeprelap", "resnet_image", "late_fusion"]
MODEL_KINDS: tuple[str, ...] = ("transeprelap", "resnet_image", "late_fusion")


def build_model(
    kind: ModelKind,
    config: ModelConfig,
    n_numeric: int,
    cardinalities: Sequence[int],
    side_index: int | None = None,
) -> nn.Module:
    """Build a neural survival model; ``model(batch)`` returns a (B,) log-risk.

    With ``config.head == "discrete"`` the network is wrapped in a
    :class:`~tle_kedro.models.discrete.DiscreteTimeSurvival`: ``model.logits(batch)`` gives
    the (B, K) hazard logits and ``model(batch)`` the (B,) risk summary of the head.

    Args:
        kind: ``transeprelap``, ``resnet_image`` (image-only ResNet-18, Cox head) or
            ``late_fusion`` (pooled ResNet features ⊕ clinical vector → MLP).
        config: sizes and ablation switches.
        n_numeric: number of numeric clinical variables (columns of ``clin_num``).
        cardinalities: categories of each categorical variable (columns of ``clin_cat``).
        side_index: column of ``clin_cat`` holding the operative side (codes L=0, R=1);
            with ``config.ipsilateral_view`` the model sees right-operated patients mirrored.
    """
    model: nn.Module
    if kind == "transeprelap":
        model = TransEpRelap(config, n_numeric, cardinalities)
    elif kind == "resnet_image":
        model = ResNetImageOnly(config)
    elif kind == "late_fusion":
        model = LateFusion(config, n_numeric, cardinalities)
    else:
        raise ValueError(f"unknown model kind {kind!r}; use one of {MODEL_KINDS}")
    if config.ipsilateral_view and side_index is not None:
        model = IpsilateralView(model, side_index)
    if config.head == "discrete":
        model = DiscreteTimeSurvival(model, config.time_bins_months)
    return model
