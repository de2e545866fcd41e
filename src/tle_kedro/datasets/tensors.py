"""Kedro dataset for :class:`~tle_kedro.data.image_tensors.ImageTensors`.

A folder with ``volumes.npy`` (N, 2, D, H, W) float32, ``index.parquet`` (participant_id,
has_t1, has_pet) and ``meta.json`` (affine, grid shape, modalities). Plain ``.npy`` loads at
disk speed (220 patients on the default grid ≈ 54 MB in well under a second).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from tle_kedro.data.image_tensors import MODALITIES, ImageTensors

FORMAT_VERSION = 1
_FILES = ("volumes.npy", "index.parquet", "meta.json")


class ImageTensorsDataset(AbstractDataset[ImageTensors, ImageTensors]):
    """Save/load preprocessed image tensors as ``volumes.npy`` + ``index.parquet`` + ``meta.json``.

    Args:
        path: the folder.
        mmap_mode: passed to ``np.load`` (e.g. ``"r"`` to memory-map the volumes).
    """

    def __init__(
        self,
        path: str,
        mmap_mode: Literal["r", "r+", "c"] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._path = Path(path)
        self._mmap_mode = mmap_mode
        self.metadata = metadata

    def load(self) -> ImageTensors:
        missing = [name for name in _FILES if not (self._path / name).is_file()]
        if missing:
            raise DatasetError(
                f"{self._path} lacks {', '.join(missing)}; run `kedro run --pipelines="
                "data_processing` to create the image tensors"
            )
        meta = json.loads((self._path / "meta.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise DatasetError(
                f"{self._path}/meta.json has format_version {meta.get('format_version')}, "
                f"expected {FORMAT_VERSION}; re-run the data_processing pipeline"
            )
        volumes = np.load(self._path / "volumes.npy", mmap_mode=self._mmap_mode)
        index = pd.read_parquet(self._path / "index.parquet")
        index = index.astype({"participant_id": str, "has_t1": bool, "has_pet": bool})
        return ImageTensors(volumes=volumes, index=index, affine=np.asarray(meta["affine"]))

    def save(self, data: ImageTensors) -> None:
        self._path.mkdir(parents=True, exist_ok=True)
        _atomic(self._path / "volumes.npy", lambda f: np.save(f, np.asarray(data.volumes)))
        _atomic(self._path / "index.parquet", lambda f: data.index.to_parquet(f, index=False))
        meta = {
            "format_version": FORMAT_VERSION,
            "affine": np.asarray(data.affine, dtype=float).tolist(),
            "grid_shape": list(data.grid_shape),
            "modalities": list(MODALITIES),
            "n_patients": int(data.volumes.shape[0]),
        }
        _atomic(self._path / "meta.json", lambda f: f.write(json.dumps(meta, indent=2).encode()))

    def _exists(self) -> bool:
        return all((self._path / name).is_file() for name in _FILES)

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "mmap_mode": self._mmap_mode}


def _atomic(target: Path, write: Any) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "wb") as handle:
        write(handle)
    os.replace(tmp, target)
