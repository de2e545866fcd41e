"""Neural comparison models: image-only ResNet-18 and late fusion.

Both share TransEpRelap's encoders and missing-modality handling (an absent or dropped
modality is never encoded; its pooled features are zero and a presence indicator says so),
so the comparison isolates the fusion mechanism.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tle_kedro.models.batch import MISSING_CODE, MODALITIES, SurvivalBatch
from tle_kedro.models.config import ModelConfig
from tle_kedro.models.encoders import ModalityEncoders, drop_modalities
from tle_kedro.models.measures import (
    StandardisedMeasures,
    grid_affine_or_default,
    measure_names,
)


class PooledImageFeatures(nn.Module):
    """Per-modality ResNet features, globally average-pooled, zero where absent.

    Output: (B, M * (C + 1 + F_m)): for each used modality its C pooled features, a 0/1
    presence indicator and, with ``config.region_tokens``, its F_m standardised atlas region
    measures (``models.measures``: the measures TransEpRelap gets, offered here too so the
    comparison isolates the fusion, not the inputs).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not config.modalities:
            raise ValueError(
                "an image model needs use_t1 or use_pet; both are False in the configuration"
            )
        self.config = config
        self.modalities = config.modalities
        self.encoders = ModalityEncoders(self.modalities, **config.encoder_kwargs())
        self.measures = nn.ModuleDict()
        if config.region_tokens:
            affine = grid_affine_or_default(config.grid_affine, config.grid_shape)
            for m in self.modalities:
                self.measures[m] = StandardisedMeasures(m, config.grid_shape, affine, config.atlas)
        n_measures = sum(len(measure_names(m, config.atlas)) for m in self.measures)
        self.out_features = len(self.modalities) * (self.encoders.out_channels + 1) + n_measures

    def forward(self, batch: SurvivalBatch) -> Tensor:
        on = torch.tensor([m in self.modalities for m in MODALITIES], device=batch.images.device)
        present = batch.modality_mask & on
        if self.training:
            present = drop_modalities(present, self.config.modality_dropout, self.modalities)
        tokens = self.encoders(batch.images, present)  # {m: (B, N, C)}, zeros where absent
        parts = []
        for m in self.modalities:
            flag = present[:, MODALITIES.index(m)].unsqueeze(1).to(batch.images.dtype)  # (B, 1)
            parts += [tokens[m].mean(dim=1) * flag, flag]
            if m in self.measures:
                channel = MODALITIES.index(m)
                parts.append(
                    self.measures[m](batch.measure_source, present[:, channel], batch.mirrored)
                )
        return torch.cat(parts, dim=1)


class ResNetImageOnly(nn.Module):
    """Both images → one ResNet-18 each → pooled features concatenated → Linear → log-risk
    (or K hazard logits)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.features = PooledImageFeatures(config)
        self.head = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(self.features.out_features, config.head_outputs)
        )

    def forward(self, batch: SurvivalBatch) -> Tensor:
        """batch → (B,) log-risk, or (B, K) hazard logits with ``head: discrete``."""
        return _head_output(self.head(self.features(batch)))


def clinical_vector(clin_num: Tensor, clin_cat: Tensor, cardinalities: Sequence[int]) -> Tensor:
    """Fixed-length clinical vector for an MLP.

    Numeric values with NaN → 0 plus one missing indicator per variable; categorical codes
    one-hot (a missing code, -1, is all zeros).

    Args:
        clin_num: (B, Nn) float, NaN = missing; clin_cat: (B, Nc) int, -1 = missing.
    Returns:
        (B, 2 * Nn + sum(cardinalities)) float.
    """
    missing = torch.isnan(clin_num)
    parts = [torch.where(missing, torch.zeros_like(clin_num), clin_num), missing.to(clin_num.dtype)]
    for j, card in enumerate(cardinalities):
        codes = clin_cat[:, j]
        if bool(((codes < MISSING_CODE) | (codes >= card)).any()):
            raise ValueError(
                f"clin_cat column {j} has codes outside [-1, {card - 1}]; codes must be "
                f"0..cardinality-1, -1 = missing"
            )
        one_hot = F.one_hot(codes.clamp(min=0), card).to(clin_num.dtype)  # (B, card)
        parts.append(one_hot * (codes != MISSING_CODE).unsqueeze(1).to(clin_num.dtype))
    return torch.cat(parts, dim=1)


class LateFusion(nn.Module):
    """Pooled ResNet features ⊕ clinical vector → MLP → log-risk (or K hazard logits)."""

    def __init__(self, config: ModelConfig, n_numeric: int, cardinalities: Sequence[int]) -> None:
        super().__init__()
        self.features = PooledImageFeatures(config) if config.modalities else None
        self.use_clinical = config.use_clinical
        self.n_numeric = n_numeric
        self.cardinalities = [int(c) for c in cardinalities]
        n_clin = 2 * n_numeric + sum(self.cardinalities) if config.use_clinical else 0
        n_in = (self.features.out_features if self.features else 0) + n_clin
        if n_in == 0:
            raise ValueError("late fusion has no input: no image modality and no clinical data")
        self.mlp = nn.Sequential(
            nn.Linear(n_in, config.fusion_hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.fusion_hidden, config.head_outputs),
        )

    def forward(self, batch: SurvivalBatch) -> Tensor:
        """batch → (B,) log-risk, or (B, K) hazard logits with ``head: discrete``."""
        parts = []
        if self.features is not None:
            parts.append(self.features(batch))
        if self.use_clinical:
            if batch.clin_num.shape[1] != self.n_numeric or batch.clin_cat.shape[1] != len(
                self.cardinalities
            ):
                raise ValueError(
                    f"late fusion built for {self.n_numeric} numeric and "
                    f"{len(self.cardinalities)} categorical variables, got "
                    f"{batch.clin_num.shape[1]} and {batch.clin_cat.shape[1]}"
                )
            parts.append(clinical_vector(batch.clin_num, batch.clin_cat, self.cardinalities))
        return _head_output(self.mlp(torch.cat(parts, dim=1)))


def _head_output(out: Tensor) -> Tensor:
    """(B, 1) → (B,) log-risk; (B, K) discrete-head logits unchanged."""
    return out.squeeze(-1) if out.shape[-1] == 1 else out
