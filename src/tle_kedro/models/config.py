"""Sizes and switches of the neural models: :class:`ModelConfig`, validated once at the node
boundary from ``parameters_modeling.yml``.

A module of its own, below the models that read it (``transeprelap``, ``baselines``) and the
factory that builds them, so none of those import each other for it. The CPU default
(``conf/base``) and the full-size ``paper`` configuration (``conf/paper``, ``kedro run
--env=paper``) are this class with other numbers; ablations are flags (``use_t1``,
``use_pet``, ``use_clinical``), never other classes. The class defaults equal
``conf/base/parameters_modeling.yml`` (``tests/test_conf_defaults.py`` holds them equal).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tle_kedro.data.atlas import DEFAULT_ATLAS, AtlasConfig
from tle_kedro.losses.discrete_time import check_time_bins


class ModelConfig(BaseModel):
    """Sizes and switches of the neural models (validated once, at the node boundary).

    Attributes:
        grid_shape: (D, H, W) of the image tensors; sizes the position embedding.
        widths: channels of the four ResNet stages.
        layers: basic blocks per stage; (2, 2, 2, 2) = ResNet-18.
        conv1_stride, conv1_kernel: first convolution (stride 2 on CPU, 1 in the paper).
        no_max_pool: skip the stem max pooling (a finer token grid on small crops).
        channels_last: ``channels_last_3d`` memory format for the encoders.
        d_model, n_heads, ff_mult: Transformer token width, heads, feed-forward multiple.
        n_intra_layers: self-attention layers inside each modality.
        n_inter_layers: joint attention layers over all tokens and the summary token.
        dropout: dropout in the Transformer and the heads.
        modality_dropout: probability of dropping one image modality of a patient that has
            both (training only; never both).
        use_t1, use_pet, use_clinical: ablation switches; a switched-off modality is
            masked out entirely and its encoder is not built.
        clinical_tokens: ``per_variable`` (one token per variable) or ``pooled`` (the mean
            of a patient's present variable tokens as one token).
        clinical_fusion: TransEpRelap: ``attention`` (clinical tokens join the joint
            attention) or ``after`` (their pooled vector is concatenated with the summary
            token's output before the risk head, as in TransRP).
        fusion_hidden: hidden width of the late-fusion MLP.
        ipsilateral_view: mirror right-operated patients so the operated side is always on
            the left of the image (``models.side``); needs the operative-side column.
        asymmetry_channel: give each image encoder the left-right difference image as a
            second input channel (``models.encoders.with_asymmetry``).
        region_tokens: each image modality's atlas region measures (PET asymmetry and
            contralateral uptake, T1 signal and volume asymmetry; ``models.measures``),
            computed from its images: one token per measure in TransEpRelap, extra pooled
            features in the neural baselines (offered to every model alike).
        region_linear: TransEpRelap only, needs ``region_tokens``: also add a linear term
            of the standardised regional measures to the log-risk (a "wide & deep" skip
            past the attention; zero at initialisation).
        region_linear_basis: ``linear`` (one weight per standardised measure ``z``) or
            ``hinge`` (two: ``relu(z)`` and ``relu(-z)``, so an ipsilateral and a
            contralateral deficit get their own weights; ``models.measures.linear_basis``).
        grid_affine: (4, 4) voxel → MNI mm of the image grid, set from the image tensors
            (places the region masks); None = the default crop box on ``grid_shape``.
        atlas: the atlas regions of the region measures (``params:atlas``).
        last_stage_stride: 1 keeps the last ResNet stage at the third stage's resolution
            (a finer token grid for attention; ``models.encoders.ResNetEncoder``).
        head: ``cox`` (one log-risk, Cox partial likelihood, Breslow curves) or ``discrete``
            (one hazard logit per time bin, logistic-hazard likelihood, curves from the head;
            ``models.discrete``).
        time_bins_months: the ``discrete`` head's interval edges in months (positive,
            increasing): bins 0–e1, e1–e2, ..., and an open last bin after the last edge.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    grid_shape: tuple[int, int, int] = (40, 32, 24)
    widths: tuple[int, int, int, int] = (8, 16, 32, 64)
    layers: tuple[int, int, int, int] = (2, 2, 2, 2)
    conv1_stride: int = Field(2, ge=1, le=4)
    conv1_kernel: int = Field(3, ge=1)
    no_max_pool: bool = False
    channels_last: bool = True
    d_model: int = Field(32, ge=4)
    n_heads: int = Field(2, ge=1)
    ff_mult: int = Field(2, ge=1)
    n_intra_layers: int = Field(1, ge=0)
    n_inter_layers: int = Field(1, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    modality_dropout: float = Field(0.1, ge=0.0, le=1.0)
    use_t1: bool = True
    use_pet: bool = True
    use_clinical: bool = True
    clinical_tokens: Literal["per_variable", "pooled"] = "pooled"
    clinical_fusion: Literal["attention", "after"] = "attention"
    fusion_hidden: int = Field(32, ge=1)
    ipsilateral_view: bool = True
    asymmetry_channel: bool = True
    region_tokens: bool = True
    region_linear: bool = True
    region_linear_basis: Literal["linear", "hinge"] = "hinge"
    grid_affine: tuple[tuple[float, float, float, float], ...] | None = None
    atlas: AtlasConfig = DEFAULT_ATLAS
    last_stage_stride: Literal[1, 2] = 2
    head: Literal["cox", "discrete"] = "cox"
    time_bins_months: tuple[float, ...] = (3.0, 6.0, 12.0, 24.0)

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if any(w < 1 for w in self.widths) or any(n < 1 for n in self.layers):
            raise ValueError(f"widths {self.widths} and layers {self.layers} must be >= 1")
        if self.grid_affine is not None and len(self.grid_affine) != 4:
            raise ValueError(f"grid_affine must have 4 rows of 4, got {len(self.grid_affine)} rows")
        if any(n < 1 for n in self.grid_shape):
            raise ValueError(f"grid_shape {self.grid_shape} must be positive")
        if self.region_linear and not self.region_tokens:
            raise ValueError("region_linear needs region_tokens: true (it reuses its measures)")
        check_time_bins(self.time_bins_months)
        if not (self.use_t1 or self.use_pet or self.use_clinical):
            raise ValueError("use_t1, use_pet and use_clinical are all False: nothing to model")
        return self

    @property
    def modalities(self) -> tuple[str, ...]:
        """Used image modalities, in channel order."""
        return tuple(m for m, on in (("t1", self.use_t1), ("pet", self.use_pet)) if on)

    @property
    def head_outputs(self) -> int:
        """Outputs of the risk head: 1 log-risk (``cox``) or one logit per time bin."""
        return 1 if self.head == "cox" else len(self.time_bins_months) + 1

    def encoder_kwargs(self) -> dict[str, object]:
        return {
            "widths": self.widths,
            "layers": self.layers,
            "conv1_stride": self.conv1_stride,
            "conv1_kernel": self.conv1_kernel,
            "no_max_pool": self.no_max_pool,
            "channels_last": self.channels_last,
            "asymmetry_channel": self.asymmetry_channel,
            "last_stage_stride": self.last_stage_stride,
        }
