"""The preprocessed image cohort: every used patient's T1 and PET on one MNI-space grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MODALITIES: tuple[str, ...] = ("t1", "pet")


@dataclass(frozen=True)
class ImageTensors:
    """Preprocessed volumes and their index.

    Attributes:
        volumes: (N, 2, D, H, W) float32; channel 0 = T1, 1 = PET; RAS voxel order
            (axis 0 runs left → right in MNI x); zeros where a modality is missing.
        index: N rows aligned with ``volumes``: ``participant_id`` (str), ``has_t1``,
            ``has_pet`` (bool).
        affine: (4, 4) voxel → MNI152 mm of the grid.
    """

    volumes: np.ndarray
    index: pd.DataFrame
    affine: np.ndarray

    def __post_init__(self) -> None:
        if self.volumes.ndim != 5 or self.volumes.shape[1] != len(MODALITIES):
            raise ValueError(f"volumes must be (N, 2, D, H, W), got {self.volumes.shape}")
        if len(self.index) != self.volumes.shape[0]:
            raise ValueError(
                f"index has {len(self.index)} rows but volumes has {self.volumes.shape[0]}"
            )
        missing = {"participant_id", "has_t1", "has_pet"} - set(self.index.columns)
        if missing:
            raise ValueError(f"index lacks columns {sorted(missing)}")

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        d, h, w = self.volumes.shape[2:]
        return int(d), int(h), int(w)

    @property
    def modality_mask(self) -> np.ndarray:
        """(N, 2) bool: True where the modality is present."""
        return self.index[["has_t1", "has_pet"]].to_numpy(dtype=bool)

    def subset(self, participant_ids: list[str] | pd.Index) -> ImageTensors:
        """Rows for ``participant_ids`` in that order (KeyError naming unknown ids)."""
        pos = pd.Index(self.index["participant_id"]).get_indexer(list(participant_ids))
        if (pos < 0).any():
            unknown = [p for p, i in zip(participant_ids, pos, strict=True) if i < 0]
            raise KeyError(f"participants without image tensors: {unknown[:10]}")
        return ImageTensors(
            volumes=self.volumes[pos],
            index=self.index.iloc[pos].reset_index(drop=True),
            affine=self.affine,
        )
