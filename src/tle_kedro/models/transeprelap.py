"""TransEpRelap: intra- then inter-modality attention over T1, PET and clinical tokens.

Each image modality goes through its own 3D ResNet-18 into a grid of tokens (modality and
3D position embeddings added); clinical variables become one token each. Self-attention runs
first inside each modality, then jointly over all tokens plus a learned summary token whose
output feeds the risk head (LayerNorm → Linear → scalar Cox log-risk, or with ``head:
discrete`` one hazard logit per time bin, ``models.discrete``). With ``region_linear`` a
linear term of the standardised regional measures is added to that log-risk (wide & deep;
to every bin's logit with the discrete head). With ``clinical_fusion: after`` the clinical
tokens stay out of the joint attention: their pooled vector is concatenated with the summary
token's output before the head (TransRP's finding: clinical variables joined after the
Transformer).

Missing data is removed from attention, never zero-filled into it: a missing, switched-off
or dropped image modality and a missing clinical value are key-padding-masked. The summary
token is always present, so no attention row is fully masked (no NaN); intra-modality
attention runs only on the patients that have at least one token of that modality.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from tle_kedro.models.batch import MODALITIES, SurvivalBatch
from tle_kedro.models.config import ModelConfig
from tle_kedro.models.encoders import ModalityEncoders, drop_modalities
from tle_kedro.models.measures import (
    MeasureTokenizer,
    StandardisedMeasures,
    grid_affine_or_default,
    linear_basis,
    linear_basis_width,
    measure_names,
)
from tle_kedro.models.tokenizers import ClinicalEmbedding, ImageTokenizer


def transformer_stack(config: ModelConfig, n_layers: int) -> nn.TransformerEncoder:
    """``n_layers`` pre-norm Transformer encoder layers of width ``config.d_model``."""
    layer = nn.TransformerEncoderLayer(
        d_model=config.d_model,
        nhead=config.n_heads,
        dim_feedforward=config.ff_mult * config.d_model,
        dropout=config.dropout,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )
    return nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)


def attend_present_rows(stack: nn.Module, tokens: Tensor, padding: Tensor) -> Tensor:
    """Self-attention on the rows that have at least one unmasked token.

    A fully masked row would make softmax produce NaN; such rows are passed through
    unchanged (they are masked again downstream).

    Args:
        stack: a ``TransformerEncoder``.
        tokens: (B, N, E); padding: (B, N) bool, True = masked.
    Returns:
        (B, N, E).
    """
    rows = (~padding).any(dim=1).nonzero().squeeze(1)  # (B_present,)
    if rows.numel() == 0:
        return tokens
    out = stack(tokens[rows], src_key_padding_mask=padding[rows])
    return tokens.index_copy(0, rows, out)


class TransEpRelap(nn.Module):
    """TransEpRelap survival model.

    Args:
        config: a ``ModelConfig`` (sizes, ablation switches, modality dropout).
        n_numeric: number of numeric clinical variables.
        cardinalities: number of categories of each categorical clinical variable.
    """

    def __init__(self, config: ModelConfig, n_numeric: int, cardinalities: Sequence[int]) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.modalities = config.modalities
        self.encoders: ModalityEncoders | None = None
        self.image_tokenizers = nn.ModuleDict()
        self.intra = nn.ModuleDict()
        self.measures = nn.ModuleDict()
        self.measure_tokenizers = nn.ModuleDict()
        self.region_linear = nn.ModuleDict()
        if self.modalities:
            self.encoders = ModalityEncoders(self.modalities, **config.encoder_kwargs())
            grid = self.encoders.token_grid(config.grid_shape)
            affine = grid_affine_or_default(config.grid_affine, config.grid_shape)
            for m in self.modalities:
                self.image_tokenizers[m] = ImageTokenizer(self.encoders.out_channels, d, grid)
                if config.region_tokens:
                    n_measures = len(measure_names(m, config.atlas))
                    self.measures[m] = StandardisedMeasures(
                        m, config.grid_shape, affine, config.atlas
                    )
                    self.measure_tokenizers[m] = MeasureTokenizer(n_measures, d)
                    if config.region_linear:
                        width = linear_basis_width(n_measures, config.region_linear_basis)
                        linear = nn.Linear(width, 1, bias=False)
                        nn.init.zeros_(linear.weight)  # starts as the attention path alone
                        self.region_linear[m] = linear
        self.clinical: ClinicalEmbedding | None = None
        if config.use_clinical and n_numeric + len(cardinalities) > 0:
            self.clinical = ClinicalEmbedding(n_numeric, cardinalities, d)
        if config.n_intra_layers > 0:
            groups = list(self.modalities) + (["clinical"] if self.clinical else [])
            for g in groups:
                self.intra[g] = transformer_stack(config, config.n_intra_layers)
        self.summary = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.inter = transformer_stack(config, config.n_inter_layers)
        self.clinical_after = self.clinical is not None and config.clinical_fusion == "after"
        width = 2 * d if self.clinical_after else d
        self.head = nn.Sequential(
            nn.LayerNorm(width),
            nn.Dropout(config.dropout),
            nn.Linear(width, config.head_outputs),
        )

    def present_modalities(self, batch: SurvivalBatch) -> Tensor:
        """(B, 2) bool: present, switched on and (in training) not dropped."""
        on = torch.tensor([m in self.modalities for m in MODALITIES], device=batch.images.device)
        present = batch.modality_mask & on
        if self.training:
            present = drop_modalities(present, self.config.modality_dropout, self.modalities)
        return present

    def _image_groups(
        self, batch: SurvivalBatch, present: Tensor
    ) -> tuple[list[tuple[Tensor, Tensor]], Tensor | None]:
        """Each image modality's (tokens, padding), and the (B,) linear term of its regional
        measures summed over modalities (None without ``region_linear``)."""
        if self.encoders is None:
            return [], None
        features = self.encoders(batch.images, present)  # {m: (B, N, C)}
        groups = []
        linear: Tensor | None = None
        for m in self.modalities:
            tokens = self.image_tokenizers[m](features[m])  # (B, N, d)
            if m in self.measures:
                measure_tokens, term = self._measure_tokens(m, batch, present)
                tokens = torch.cat([tokens, measure_tokens], 1)
                if term is not None:
                    linear = term if linear is None else linear + term
            padding = ~present[:, MODALITIES.index(m)].unsqueeze(1).expand(-1, tokens.shape[1])
            if m in self.intra:
                tokens = attend_present_rows(self.intra[m], tokens, padding)
            groups.append((tokens, padding))
        return groups, linear

    def _measure_tokens(
        self, m: str, batch: SurvivalBatch, present: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """(B, F, d) region-measure tokens of modality ``m`` and, with ``region_linear``, the
        (B,) linear term of its standardised measures; both zero where it is absent.

        Computed on the present rows only (as the encoders are), so an absent modality's
        channel content reaches neither the measures nor the BatchNorm statistics.
        """
        channel = MODALITIES.index(m)
        z = self.measures[m](batch.measure_source, present[:, channel], batch.mirrored)  # (B, F)
        tokens = self.measure_tokenizers[m](z) * present[:, channel].view(-1, 1, 1).to(z.dtype)
        linear = None
        if m in self.region_linear:
            basis = linear_basis(z, getattr(self.config, "region_linear_basis", "linear"))
            linear = self.region_linear[m](basis).squeeze(-1)
        return tokens, linear

    def _clinical_group(self, batch: SurvivalBatch, pooled: bool) -> list[tuple[Tensor, Tensor]]:
        """The clinical (tokens, padding): one per variable, or ``pooled`` into one token (the
        mean of the present variables' tokens; zero and padded when none is present)."""
        if self.clinical is None:
            return []
        tokens, missing = self.clinical(batch.clin_num, batch.clin_cat)  # (B, Nv, d), (B, Nv)
        if "clinical" in self.intra:
            tokens = attend_present_rows(self.intra["clinical"], tokens, missing)
        if pooled:
            keep = (~missing).unsqueeze(-1).to(tokens.dtype)  # (B, Nv, 1)
            count = keep.sum(dim=1)  # (B, 1)
            tokens = ((tokens * keep).sum(dim=1) / count.clamp(min=1)).unsqueeze(1)  # (B, 1, d)
            missing = (count == 0).reshape(-1, 1)  # (B, 1)
        return [(tokens, missing)]

    def forward(self, batch: SurvivalBatch) -> Tensor:
        """batch → (B,) log-risk (higher = earlier recurrence), or (B, K) hazard logits with
        ``head: discrete``."""
        if self.encoders is not None and batch.grid_shape != tuple(self.config.grid_shape):
            raise ValueError(
                f"images have grid {batch.grid_shape} but the model was built for "
                f"grid_shape={tuple(self.config.grid_shape)}: set grid_shape in the model "
                f"configuration to the image tensors' (D, H, W)"
            )
        b = batch.batch_size
        present = self.present_modalities(batch)
        image_groups, linear = self._image_groups(batch, present)
        pooled = self.clinical_after or self.config.clinical_tokens == "pooled"
        clinical = self._clinical_group(batch, pooled)
        groups = image_groups + ([] if self.clinical_after else clinical)
        summary = self.summary.expand(b, -1, -1)  # (B, 1, d)
        no_pad = torch.zeros(b, 1, dtype=torch.bool, device=summary.device)
        tokens = torch.cat([summary] + [t for t, _ in groups], dim=1)  # (B, 1 + N_all, d)
        padding = torch.cat([no_pad] + [p for _, p in groups], dim=1)  # (B, 1 + N_all)
        tokens = tokens.masked_fill(padding.unsqueeze(-1), 0.0)
        tokens = self.inter(tokens, src_key_padding_mask=padding)
        head_input = tokens[:, 0]  # (B, d)
        if self.clinical_after:
            clin, absent = clinical[0]  # (B, 1, d), (B, 1): zero where no variable is present
            head_input = torch.cat([head_input, clin[:, 0].masked_fill(absent, 0.0)], dim=-1)
        out = self.head(head_input)  # (B, 1) or (B, K)
        if linear is not None:  # (B,): the same shift of every bin's logit
            out = out + linear.to(out.dtype).unsqueeze(-1)
        return out.squeeze(-1) if out.shape[-1] == 1 else out
