"""Regional measures of FDG PET and T1 over atlas regions: one implementation for all models.

Reading FDG PET and T1 for TLE surgery means regional measures: the asymmetry index of FDG
uptake per region, the uptake of the contralateral region relative to the whole crop (low
when hypometabolism is bilateral), and T1 signal and volume asymmetry of mesial structures.
The regions are the atlas regions of :mod:`tle_kedro.data.atlas` (AAL2 by default).

:class:`RegionMeasures` computes them from a batch of images; it is used twice, so the
classical baselines and TransEpRelap measure exactly the same thing:

- :func:`tle_kedro.features.imaging.imaging_features` runs it over the image tensors for the
  classical baselines (``cox_region_measures`` and the forest);
- TransEpRelap runs it inside the model on each batch (region tokens and the linear skip),
  so the measures follow augmentation and modality masking, and a registered model needs
  nothing but images and the clinical row.

Measures per region ``r`` (ipsi = operated hemisphere, contra = the other):

- ``pet_ai_<r>``: (ipsi − contra) / ((ipsi + contra) / 2) of the mean uptake (negative =
  ipsilateral hypometabolism; −0.22 for a 20 % ipsilateral loss);
- ``pet_rel_contra_<r>``: mean contralateral uptake / mean uptake of the crop (voxels > 0);
- ``t1_diff_<r>``: mean T1 ipsi − contra (T1 is z-scored in the brain, so a difference of
  means is scale-free and stable near zero, unlike a ratio);
- ``t1_tissue_ai_<r>`` (``atlas.t1_volume_regions`` only): asymmetry index of the fraction of
  region voxels with T1 z-score above ``T1_TISSUE_THRESHOLD`` (a volume proxy for atrophy).

Why by hand: no library computes ipsi/contralateral atlas-region statistics of a tensor in a
training graph (nilearn's maskers work on NIfTI files, one image at a time).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from tle_kedro.data.atlas import DEFAULT_ATLAS, AtlasConfig, region_masks
from tle_kedro.data.regions import DEFAULT_CROP_BOX_MNI, crop_grid_affine
from tle_kedro.models.tokenizers import _embedding

T1_TISSUE_THRESHOLD = -1.0  # T1 z-score above which a voxel counts as tissue


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


def measure_names(modality: str, atlas: AtlasConfig = DEFAULT_ATLAS) -> tuple[str, ...]:
    """Names of the measures of ``modality`` (``"t1"`` or ``"pet"``), in token order."""
    if modality == "pet":
        return tuple(f"pet_ai_{r}" for r in atlas.regions) + tuple(
            f"pet_rel_contra_{r}" for r in atlas.regions
        )
    if modality == "t1":
        return tuple(f"t1_diff_{r}" for r in atlas.regions) + tuple(
            f"t1_tissue_ai_{r}" for r in atlas.t1_volume_regions
        )
    raise ValueError(f"modality must be 't1' or 'pet', got {modality!r}")


def _asymmetry_index(ipsi: Tensor, contra: Tensor) -> Tensor:
    """(ipsi − contra) / mean; 0 where the mean is 0."""
    mean = (ipsi + contra) / 2
    safe = torch.where(mean != 0, mean, torch.ones_like(mean))
    return torch.where(mean != 0, (ipsi - contra) / safe, torch.zeros_like(mean))


class RegionMeasures(nn.Module):
    """Regional measures of one modality's images, relative to the operated side.

    Args:
        modality: ``"t1"`` or ``"pet"``.
        grid_shape: (D, H, W) of the images.
        affine: (4, 4) voxel → MNI mm of the grid (RAS voxel order).
        atlas: atlas and region set.

    The masks are kept on their support only (the voxels of any region): a few MB per
    modality instead of the full grid, since every fitted network carries them.
    """

    support: Tensor  # (K,) int64 flat voxel indices covered by some region
    masks: Tensor  # (R, 2, K) fractional masks [left, right] on the support

    def __init__(
        self,
        modality: str,
        grid_shape: Sequence[int],
        affine: np.ndarray | Sequence[Sequence[float]],
        atlas: AtlasConfig = DEFAULT_ATLAS,
    ) -> None:
        super().__init__()
        self.names = measure_names(modality, atlas)
        self.modality = modality
        shape = (int(grid_shape[0]), int(grid_shape[1]), int(grid_shape[2]))
        regions = region_masks(atlas, np.asarray(affine, dtype=np.float64), shape)
        flat = regions.masks.reshape(len(regions.names), 2, -1)  # (R, 2, V)
        support = np.flatnonzero(flat.max(axis=(0, 1)) > 0)
        self.register_buffer("support", torch.from_numpy(support))
        self.register_buffer("masks", torch.from_numpy(flat[:, :, support].copy()))
        self.volume_index = [atlas.regions.index(r) for r in atlas.t1_volume_regions]

    def _ipsi_contra(self, x: Tensor, ipsi_right: Tensor) -> tuple[Tensor, Tensor]:
        """(B, K) values → (B, R) mask-weighted means of the ipsi and contra regions."""
        side = torch.einsum("bk,rsk->brs", x, self.masks) / self.masks.sum(-1)  # (B, R, 2)
        right = ipsi_right.view(-1, 1)
        ipsi = torch.where(right, side[..., 1], side[..., 0])
        contra = torch.where(right, side[..., 0], side[..., 1])
        return ipsi, contra

    def forward(self, images: Tensor, ipsi_right: Tensor | None = None) -> Tensor:
        """Measures of each patient.

        Args:
            images: (B, 1, D, H, W) of this modality, in true (unmirrored) orientation.
            ipsi_right: (B,) bool, True where the right hemisphere is the operated one;
                None = left for all (an unknown side: left/right stand in for ipsi/contra).
        Returns:
            (B, len(names)) float32.
        """
        flat = images.flatten(1).float()  # (B, V)
        if ipsi_right is None:
            ipsi_right = torch.zeros(flat.shape[0], dtype=torch.bool, device=flat.device)
        x = flat[:, self.support]  # (B, K)
        ipsi, contra = self._ipsi_contra(x, ipsi_right)
        if self.modality == "pet":
            positive = (flat > 0).float()
            crop_mean = (flat * positive).sum(1, keepdim=True) / positive.sum(1, keepdim=True)
            rel = torch.where(crop_mean > 0, contra / crop_mean.clamp(min=1e-12), 0.0)
            return torch.cat([_asymmetry_index(ipsi, contra), rel], dim=1)
        tissue_ipsi, tissue_contra = self._ipsi_contra(
            (x > T1_TISSUE_THRESHOLD).float(), ipsi_right
        )
        volume = _asymmetry_index(tissue_ipsi, tissue_contra)[:, self.volume_index]
        return torch.cat([ipsi - contra, volume], dim=1)


LINEAR_BASES = ("linear", "hinge")


def linear_basis(z: Tensor, basis: str) -> Tensor:
    """The inputs of a linear term of standardised measures ``z`` (B, F).

    ``linear``: ``z`` itself. ``hinge``: ``[relu(z), relu(-z)]`` (B, 2F), a piecewise-linear
    term with its knot at the training mean: each side of a measure gets its own slope, e.g.
    an ipsilateral deficit (negative asymmetry) and a contralateral one (positive) need not
    carry opposite risks of the same size. Still one convex Cox fit (``training.warm_start``).
    """
    if basis == "linear":
        return z
    if basis == "hinge":
        return torch.cat([torch.relu(z), torch.relu(-z)], dim=-1)
    raise ValueError(f"linear basis must be one of {LINEAR_BASES}, got {basis!r}")


def linear_basis_width(n_measures: int, basis: str) -> int:
    """Number of inputs of the linear term of ``n_measures`` measures."""
    return 2 * n_measures if basis == "hinge" else n_measures


class StandardisedMeasures(nn.Module):
    """One modality's region measures of a batch, standardised, zero where the modality is
    absent: what TransEpRelap turns into tokens and the neural baselines concatenate.

    The measures are standardised by a BatchNorm without affine parameters: its running mean
    and variance are fitted in training, i.e. on the training fold only (like the clinical
    scaling), and only on the rows where the modality is present.
    """

    def __init__(
        self,
        modality: str,
        grid_shape: Sequence[int],
        affine: np.ndarray | Sequence[Sequence[float]],
        atlas: AtlasConfig = DEFAULT_ATLAS,
    ) -> None:
        super().__init__()
        self.channel = ("t1", "pet").index(modality)
        self.measures = RegionMeasures(modality, grid_shape, affine, atlas)
        self.names = self.measures.names
        self.norm = nn.BatchNorm1d(len(self.names), affine=False)

    def freeze_statistics(self) -> None:
        """Standardise with the running statistics as they are, in training too (a warm
        start set them from the training patients: ``training.warm_start``)."""
        self.frozen = True

    def standardise(self, measures: Tensor) -> Tensor:
        """measures: (B, F) → (B, F) standardised by the BatchNorm (training-fold statistics)."""
        frozen = getattr(self, "frozen", False)
        if frozen or (self.training and measures.shape[0] < 2):  # BatchNorm needs 2 rows
            return nn.functional.batch_norm(
                measures, self.norm.running_mean, self.norm.running_var, training=False
            )
        return self.norm(measures)

    def forward(self, images: Tensor, present: Tensor, mirrored: Tensor | None) -> Tensor:
        """Standardised measures of each patient.

        Args:
            images: (B, 2, D, H, W), possibly mirrored per row (``models.side``).
            present: (B,) bool, rows whose modality is present (and not dropped).
            mirrored: (B,) bool rows shown mirrored (right-operated), or None.
        Returns:
            (B, F) float; zero rows where the modality is absent.
        """
        out = images.new_zeros(images.shape[0], len(self.names))
        idx = present.nonzero().squeeze(1)
        if idx.numel() == 0:
            return out
        x = images[idx, self.channel : self.channel + 1]  # (B_present, 1, D, H, W)
        right = None if mirrored is None else mirrored[idx]
        if right is not None:  # measure in true orientation: the atlas has its own L/R
            x = torch.where(right.view(-1, 1, 1, 1, 1), x.flip(dims=[2]), x)
        z = self.standardise(self.measures(x, right))
        return out.index_copy(0, idx, z.to(out.dtype))


class MeasureTokenizer(nn.Module):
    """One token per standardised measure: ``z_i * w_i + e_i + modality``, built like the
    numeric clinical tokens."""

    def __init__(self, n_measures: int, d_model: int) -> None:
        super().__init__()
        self.value_vectors = _embedding(n_measures, d_model)
        self.variable = _embedding(n_measures, d_model)
        self.modality = _embedding(d_model)

    def forward(self, z: Tensor) -> Tensor:
        """z: (B, F) standardised measures → (B, F, d_model) tokens."""
        return z.unsqueeze(-1) * self.value_vectors + self.variable + self.modality
