"""The one input object of every neural survival model: images, modality mask, clinical data.

A :class:`SurvivalBatch` is what the training loop feeds to ``model(batch)``; every neural
model returns a ``(B,)`` log-risk from it. Missing data is explicit, never imputed here:
``modality_mask`` says which image exists, NaN marks a missing numeric clinical value and
-1 a missing categorical code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

MODALITIES: tuple[str, str] = ("t1", "pet")
MISSING_CODE = -1


@dataclass(frozen=True)
class SurvivalBatch:
    """A batch of patients.

    Attributes:
        images: (B, 2, D, H, W) float32; channel 0 = T1, 1 = PET; zeros where missing.
        modality_mask: (B, 2) bool; True where the modality is present.
        clin_num: (B, Nn) float32; standardised numeric clinical values, NaN = missing.
        clin_cat: (B, Nc) int64; categorical codes in ``[0, cardinality)``, -1 = missing.
        time: (B,) float32 months to recurrence or censoring, or None (inference).
        event: (B,) bool recurrence indicator, or None (inference).
        mirrored: (B,) bool, set by ``models.side.IpsilateralView`` inside a model: True
            where the images were mirrored (right-operated); None = never mirrored.
        measure_images: (B, 2, D, H, W) the images the atlas region measures are computed
            from when they are not ``images`` (``train.augment.measures_from: original``:
            the un-augmented images, mirrored like ``images``); None = ``images``.
    """

    images: Tensor
    modality_mask: Tensor
    clin_num: Tensor
    clin_cat: Tensor
    time: Tensor | None = None
    event: Tensor | None = None
    mirrored: Tensor | None = None
    measure_images: Tensor | None = None

    def __post_init__(self) -> None:
        b = self.images.shape[0] if self.images.ndim == 5 else -1
        if self.images.ndim != 5 or self.images.shape[1] != len(MODALITIES):
            raise ValueError(
                f"SurvivalBatch.images must be (B, 2, D, H, W), got {tuple(self.images.shape)}"
            )
        expected = {
            "modality_mask": (self.modality_mask, 2, torch.bool),
            "clin_num": (self.clin_num, 2, torch.float32),
            "clin_cat": (self.clin_cat, 2, torch.int64),
            "time": (self.time, 1, torch.float32),
            "event": (self.event, 1, torch.bool),
            "mirrored": (self.mirrored, 1, torch.bool),
        }
        for name, (value, ndim, dtype) in expected.items():
            if value is None:
                continue
            if value.ndim != ndim or value.shape[0] != b:
                raise ValueError(
                    f"SurvivalBatch.{name} must have {ndim} dims and {b} rows (the batch size "
                    f"of images), got shape {tuple(value.shape)}"
                )
            if value.dtype != dtype:
                raise ValueError(f"SurvivalBatch.{name} must be {dtype}, got {value.dtype}")
        if self.modality_mask.shape[1] != len(MODALITIES):
            raise ValueError(f"modality_mask must be (B, 2), got {tuple(self.modality_mask.shape)}")
        if self.measure_images is not None and self.measure_images.shape != self.images.shape:
            raise ValueError(
                f"SurvivalBatch.measure_images must have the shape of images "
                f"{tuple(self.images.shape)}, got {tuple(self.measure_images.shape)}"
            )

    @property
    def measure_source(self) -> Tensor:
        """The images the region measures are computed from (``measure_images`` or ``images``)."""
        return self.images if self.measure_images is None else self.measure_images

    @property
    def batch_size(self) -> int:
        return int(self.images.shape[0])

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        d, h, w = self.images.shape[2:]
        return int(d), int(h), int(w)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SurvivalBatch:
        """A copy with every tensor on ``device``."""

        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return SurvivalBatch(
            images=self.images.to(device, non_blocking=non_blocking),
            modality_mask=self.modality_mask.to(device, non_blocking=non_blocking),
            clin_num=self.clin_num.to(device, non_blocking=non_blocking),
            clin_cat=self.clin_cat.to(device, non_blocking=non_blocking),
            time=move(self.time),
            event=move(self.event),
            measure_images=move(self.measure_images),
        )

    def select(self, index: Tensor | Sequence[int] | np.ndarray) -> SurvivalBatch:
        """The patients at ``index`` (positions along the batch axis), in that order."""
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long, device=self.images.device)
        return SurvivalBatch(
            images=self.images[idx],
            modality_mask=self.modality_mask[idx],
            clin_num=self.clin_num[idx],
            clin_cat=self.clin_cat[idx],
            time=None if self.time is None else self.time[idx],
            event=None if self.event is None else self.event[idx],
            measure_images=None if self.measure_images is None else self.measure_images[idx],
        )

    def with_images(
        self,
        images: Tensor,
        mirrored: Tensor | None = None,
        measure_images: Tensor | None = None,
    ) -> SurvivalBatch:
        """A copy with other images (e.g. augmented or mirrored), everything else shared.

        ``mirrored`` (B,) bool marks rows whose images were mirrored left-right;
        ``measure_images`` are what the region measures see (None = the new ``images``).
        """
        return replace(self, images=images, mirrored=mirrored, measure_images=measure_images)

    def with_clin_cat(self, clin_cat: Tensor) -> SurvivalBatch:
        """A copy with other categorical codes (e.g. operative side swapped by a flip)."""
        return replace(self, clin_cat=clin_cat)


def from_arrays(
    volumes: np.ndarray | Tensor,
    modality_mask: np.ndarray | Tensor,
    clin_num: np.ndarray | Tensor | None = None,
    clin_cat: np.ndarray | Tensor | None = None,
    time: np.ndarray | Tensor | None = None,
    event: np.ndarray | Tensor | None = None,
) -> SurvivalBatch:
    """Build a :class:`SurvivalBatch` from numpy arrays (or tensors), casting dtypes.

    Args:
        volumes: (B, 2, D, H, W) float; channel 0 = T1, 1 = PET.
        modality_mask: (B, 2) bool-like.
        clin_num: (B, Nn) float with NaN = missing, or None for no numeric variable.
        clin_cat: (B, Nc) int with -1 = missing, or None for no categorical variable.
        time: (B,) float or None; event: (B,) bool-like or None.
    """
    images = torch.as_tensor(np.asarray(volumes, dtype=np.float32))
    b = images.shape[0] if images.ndim == 5 else 0
    num = np.zeros((b, 0), np.float32) if clin_num is None else np.asarray(clin_num, np.float32)
    cat = np.zeros((b, 0), np.int64) if clin_cat is None else np.asarray(clin_cat, np.int64)
    return SurvivalBatch(
        images=images,
        modality_mask=torch.as_tensor(np.asarray(modality_mask, dtype=bool)),
        clin_num=torch.as_tensor(num),
        clin_cat=torch.as_tensor(cat),
        time=None if time is None else torch.as_tensor(np.asarray(time, np.float32)),
        event=None if event is None else torch.as_tensor(np.asarray(event, dtype=bool)),
    )


def collate(batches: Sequence[SurvivalBatch]) -> SurvivalBatch:
    """Concatenate batches (or single-patient batches) along the batch axis.

    Outcomes are kept only when every batch has them.
    """
    if not batches:
        raise ValueError("collate needs at least one SurvivalBatch, got an empty sequence")

    def cat_optional(values: list[Tensor | None]) -> Tensor | None:
        if any(v is None for v in values):
            return None
        return torch.cat([v for v in values if v is not None])

    return SurvivalBatch(
        images=torch.cat([b.images for b in batches]),
        modality_mask=torch.cat([b.modality_mask for b in batches]),
        clin_num=torch.cat([b.clin_num for b in batches]),
        clin_cat=torch.cat([b.clin_cat for b in batches]),
        time=cat_optional([b.time for b in batches]),
        event=cat_optional([b.event for b in batches]),
    )
