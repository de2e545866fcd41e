"""Regional measures as tokens: what a reader measures on TLE images, computed in the model.

Reading FDG PET and T1 for TLE surgery means regional measures: the temporal-lobe asymmetry
index of FDG uptake, the uptake of the contralateral temporal lobe, hippocampal volume and
signal asymmetry. :mod:`tle_kedro.features.imaging` computes them for the classical
baselines; this module computes the same measures (same MNI regions, same formulas; a test
holds them equal) from the images a TransEpRelap batch carries, so the Transformer attends
over them next to the ResNet's grid tokens. They are computed inside the model, not read
from the feature table, so they follow the augmentation and the modality masking of each
batch and a registered model needs nothing but images and the clinical row.

Why by hand: no library computes ipsi/contralateral region statistics on a tensor in a
training graph. Measured on the demo cohort: docs/modeling.md (region tokens).

The images arrive in the ipsilateral view (``models.side``): the operated hemisphere is on
the left (MNI x < 0), so "ipsilateral" is the left region mask. A patient whose operative
side is unknown is not mirrored, so for them left/right stand in for ipsi/contra.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from tle_kedro.data.regions import (
    DEFAULT_CROP_BOX_MNI,
    REGION_NAMES,
    crop_grid_affine,
    region_mask,
)
from tle_kedro.features.imaging import TEMPORAL_REGIONS, ImagingFeatureConfig
from tle_kedro.models.tokenizers import _embedding

# Measure names, in token order, as features.imaging names the same quantities.
PET_MEASURES: tuple[str, ...] = (
    *(f"pet_ai_{name}" for name in REGION_NAMES),
    "pet_contra_temporal_rel",
)
T1_MEASURES: tuple[str, ...] = ("t1_diff_mesial_temporal", "t1_tissue_ai_mesial_temporal")
T1_TISSUE_THRESHOLD = ImagingFeatureConfig().t1_tissue_threshold  # the features' default


def grid_affine_or_default(
    affine: Sequence[Sequence[float]] | None, grid_shape: Sequence[int]
) -> np.ndarray:
    """The image grid's (4, 4) voxel → MNI mm; without one, the default crop box's."""
    if affine is None:
        shape = (int(grid_shape[0]), int(grid_shape[1]), int(grid_shape[2]))
        return crop_grid_affine(DEFAULT_CROP_BOX_MNI, shape)
    out = np.asarray(affine, dtype=np.float64)
    if out.shape != (4, 4):
        raise ValueError(f"grid_affine must be 4x4, got shape {out.shape}")
    return out


def measure_names(modality: str) -> tuple[str, ...]:
    """Names of the measures of ``modality`` (``"t1"`` or ``"pet"``), in token order."""
    if modality not in ("t1", "pet"):
        raise ValueError(f"modality must be 't1' or 'pet', got {modality!r}")
    return PET_MEASURES if modality == "pet" else T1_MEASURES


def _side_masks(name: str, affine: np.ndarray, grid_shape: tuple[int, int, int]) -> Tensor:
    """(2, D, H, W) float masks of region ``name``: [ipsi (left), contra (right)]."""
    masks = [region_mask(name, side, affine, grid_shape) for side in ("L", "R")]
    return torch.from_numpy(np.stack(masks).astype(np.float32))


def _asymmetry_index(ipsi: Tensor, contra: Tensor) -> Tensor:
    """(ipsi − contra) / mean; 0 where the mean is 0 (features.imaging gives NaN there)."""
    mean = (ipsi + contra) / 2
    safe = torch.where(mean != 0, mean, torch.ones_like(mean))
    return torch.where(mean != 0, (ipsi - contra) / safe, torch.zeros_like(mean))


class RegionMeasures(nn.Module):
    """Regional measures of one modality's images (ipsilateral view).

    Args:
        modality: ``"t1"`` or ``"pet"``.
        grid_shape: (D, H, W) of the images.
        affine: (4, 4) voxel → MNI mm of the grid (RAS voxel order).
    """

    masks: Tensor  # (R, 2, V) buffers: region masks [ipsi, contra], flattened
    contra_temporal: Tensor  # (V,) PET only: contralateral mesial ∪ lateral temporal mask

    def __init__(
        self,
        modality: str,
        grid_shape: Sequence[int],
        affine: np.ndarray | Sequence[Sequence[float]],
    ) -> None:
        super().__init__()
        self.names = measure_names(modality)
        self.modality = modality
        shape = (int(grid_shape[0]), int(grid_shape[1]), int(grid_shape[2]))
        aff = np.asarray(affine, dtype=np.float64)
        names = REGION_NAMES if modality == "pet" else ("mesial_temporal",)
        masks = torch.stack([_side_masks(n, aff, shape) for n in names])  # (R, 2, D, H, W)
        voxels = masks.sum(dim=(2, 3, 4))  # (R, 2)
        empty = [n for n, v in zip(names, voxels, strict=True) if not bool((v > 0).all())]
        if empty:
            raise ValueError(
                f"regions {empty} have no voxel on the {shape} image grid; the crop box must "
                "cover the temporal lobes (preprocessing.crop_box_mni)"
            )
        self.register_buffer("masks", masks.flatten(2))  # (R, 2, V)
        if modality == "pet":
            temporal = torch.maximum(
                *(_side_masks(n, aff, shape) for n in TEMPORAL_REGIONS)
            )  # union of the temporal regions, (2, D, H, W)
            self.register_buffer("contra_temporal", temporal[1].flatten())  # (V,)

    def _means(self, x: Tensor, masks: Tensor) -> Tensor:
        """(B, V) values → (B, R, 2) mean inside each (R, 2, V) mask."""
        return torch.einsum("bv,rsv->brs", x, masks) / masks.sum(-1)

    def forward(self, images: Tensor) -> Tensor:
        """images: (B, 1, D, H, W) of this modality → (B, len(names)) float32 measures."""
        x = images.flatten(1).float()  # (B, V)
        if self.modality == "pet":
            side = self._means(x, self.masks)  # (B, R, 2)
            ai = _asymmetry_index(side[..., 0], side[..., 1])  # (B, R)
            positive = (x > 0).float()
            crop_mean = (x * positive).sum(1) / positive.sum(1).clamp(min=1)
            contra = (x @ self.contra_temporal) / self.contra_temporal.sum()
            rel = torch.where(crop_mean > 0, contra / crop_mean.clamp(min=1e-12), 0.0)
            return torch.cat([ai, rel.unsqueeze(1)], dim=1)
        mesial = self._means(x, self.masks)[:, 0]  # (B, 2)
        tissue = self._means((x > T1_TISSUE_THRESHOLD).float(), self.masks)[:, 0]
        diff = mesial[:, 0] - mesial[:, 1]
        return torch.stack([diff, _asymmetry_index(tissue[:, 0], tissue[:, 1])], dim=1)


class MeasureTokenizer(nn.Module):
    """One token per measure: ``norm(x_i) * w_i + e_i + modality``.

    The measures are standardised by a BatchNorm without affine parameters: its running
    mean and variance are fitted in training, i.e. on the training fold only, like the
    clinical tokenizer's scaling. Tokens are built like the numeric clinical tokens.
    """

    def __init__(self, n_measures: int, d_model: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(n_measures, affine=False)
        self.value_vectors = _embedding(n_measures, d_model)
        self.variable = _embedding(n_measures, d_model)
        self.modality = _embedding(d_model)

    def standardise(self, measures: Tensor) -> Tensor:
        """measures: (B, F) → (B, F) standardised by the BatchNorm (training-fold statistics)."""
        if self.training and measures.shape[0] < 2:  # BatchNorm needs 2 rows to train
            return nn.functional.batch_norm(
                measures, self.norm.running_mean, self.norm.running_var, training=False
            )
        return self.norm(measures)

    def forward(self, measures: Tensor) -> tuple[Tensor, Tensor]:
        """measures: (B, F) → (tokens (B, F, d_model), standardised measures (B, F))."""
        z = self.standardise(measures)
        return z.unsqueeze(-1) * self.value_vectors + self.variable + self.modality, z
