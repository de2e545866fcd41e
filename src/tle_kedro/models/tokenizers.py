"""Turn image feature grids and clinical variables into ``d_model``-wide tokens.

:class:`ClinicalEmbedding` embeds clinical variables already encoded as numbers and codes;
the encoding itself (scaling, category codes, fitted on the training fold) is
``features.clinical.ClinicalTokenizer``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from tle_kedro.models.batch import MISSING_CODE

_INIT_STD = 0.02


def _embedding(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * _INIT_STD)


class ImageTokenizer(nn.Module):
    """Project encoder features to tokens, add a modality and a 3D position embedding.

    Args:
        in_channels: C of the encoder tokens.
        d_model: token width.
        token_grid: (d, h, w) of the encoder feature map; one learned position vector per
            grid position (tokens come flattened in C order, as ``ResNetEncoder`` gives them).
    """

    def __init__(self, in_channels: int, d_model: int, token_grid: Sequence[int]) -> None:
        super().__init__()
        self.token_grid = tuple(int(n) for n in token_grid)
        n_tokens = self.token_grid[0] * self.token_grid[1] * self.token_grid[2]
        self.proj = nn.Linear(in_channels, d_model)
        self.modality = _embedding(d_model)
        self.position = _embedding(n_tokens, d_model)

    def forward(self, features: Tensor) -> Tensor:
        """features: (B, N, C) → tokens (B, N, d_model)."""
        if features.shape[1] != self.position.shape[0]:
            raise ValueError(
                f"got {features.shape[1]} image tokens but the position embedding was built "
                f"for a {self.token_grid} grid ({self.position.shape[0]} tokens): set the "
                f"model's grid_shape to the spatial shape of the image tensors"
            )
        return self.proj(features) + self.modality + self.position


class ClinicalEmbedding(nn.Module):
    """One token per clinical variable; a missing value gives a masked token.

    Numeric variable ``i`` with value ``x``: ``x * w_i + e_i`` (learned value vector ``w_i``
    and variable embedding ``e_i``). Categorical variable ``j`` with code ``c``:
    ``E_j[c] + e_j``. A modality embedding is added to every clinical token. Missing values
    (NaN, -1) are not imputed: their token is zero and flagged in the returned padding mask.

    Args:
        n_numeric: Nn numeric variables.
        cardinalities: number of categories of each of the Nc categorical variables.
        d_model: token width.
    """

    def __init__(self, n_numeric: int, cardinalities: Sequence[int], d_model: int) -> None:
        super().__init__()
        if n_numeric < 0 or any(c < 1 for c in cardinalities):
            raise ValueError(
                f"n_numeric must be >= 0 and every cardinality >= 1, got {n_numeric}, "
                f"{list(cardinalities)}"
            )
        self.n_numeric = n_numeric
        self.cardinalities = [int(c) for c in cardinalities]
        n_vars = n_numeric + len(self.cardinalities)
        self.value_vectors = _embedding(n_numeric, d_model)
        self.variable = _embedding(n_vars, d_model)
        self.modality = _embedding(d_model)
        tables = [nn.Embedding(c, d_model) for c in self.cardinalities]
        for table in tables:
            nn.init.normal_(table.weight, std=_INIT_STD)
        self.tables = nn.ModuleList(tables)

    @property
    def n_tokens(self) -> int:
        return self.n_numeric + len(self.cardinalities)

    def _check(self, clin_num: Tensor, clin_cat: Tensor) -> None:
        if clin_num.shape[1] != self.n_numeric or clin_cat.shape[1] != len(self.cardinalities):
            raise ValueError(
                f"clinical embedding built for {self.n_numeric} numeric and "
                f"{len(self.cardinalities)} categorical variables, got clin_num "
                f"{tuple(clin_num.shape)} and clin_cat {tuple(clin_cat.shape)}"
            )
        if clin_cat.numel() == 0:
            return
        high = torch.tensor(self.cardinalities, device=clin_cat.device)
        bad = (clin_cat < MISSING_CODE) | (clin_cat >= high)
        if bool(bad.any()):
            col = int(bad.any(dim=0).nonzero()[0])
            raise ValueError(
                f"clin_cat column {col} has codes outside [-1, {self.cardinalities[col] - 1}] "
                f"(e.g. {int(clin_cat[bad][0])}); codes must be 0..cardinality-1, -1 = missing"
            )

    def forward(self, clin_num: Tensor, clin_cat: Tensor) -> tuple[Tensor, Tensor]:
        """clin_num: (B, Nn) float NaN = missing, clin_cat: (B, Nc) int -1 = missing.

        Returns:
            tokens: (B, Nn + Nc, d_model), zero at missing values;
            missing: (B, Nn + Nc) bool, True = masked (key padding mask).
        """
        self._check(clin_num, clin_cat)
        num_missing = torch.isnan(clin_num)  # (B, Nn)
        values = torch.where(num_missing, torch.zeros_like(clin_num), clin_num)
        num_tokens = values.unsqueeze(-1) * self.value_vectors  # (B, Nn, d)
        cat_missing = clin_cat == MISSING_CODE  # (B, Nc)
        codes = clin_cat.clamp(min=0)
        cat_tokens = [table(codes[:, j]) for j, table in enumerate(self.tables)]  # Nc x (B, d)
        parts = [num_tokens] + [t.unsqueeze(1) for t in cat_tokens]
        tokens = torch.cat(parts, dim=1) + self.variable + self.modality  # (B, Nn + Nc, d)
        missing = torch.cat([num_missing, cat_missing], dim=1)
        tokens = tokens.masked_fill(missing.unsqueeze(-1), 0.0)
        return tokens, missing


def __getattr__(name: str) -> type[nn.Module]:
    # Models pickled before the rename name tle_kedro.models.tokenizers.ClinicalTokenizer;
    # ``features.clinical.ClinicalTokenizer`` is the one class of that name now.
    if name == "ClinicalTokenizer":
        return ClinicalEmbedding
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
