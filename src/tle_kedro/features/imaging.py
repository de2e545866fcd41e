"""Hand-crafted imaging features for the classical baselines, relative to the operative side.

Every feature compares the ipsilateral (operated) hemisphere with the contralateral one,
using the MNI-mm regions of :mod:`tle_kedro.data.regions` rasterised on the tensors' grid
through its affine (so left/right follows the world x axis, whatever the voxel order):

- ``pet_ai_<region>``: PET asymmetry index AI = (ipsi − contra) / ((ipsi + contra) / 2) of the
  mean uptake in ``mesial_temporal``, ``lateral_temporal`` and ``extratemporal``; negative =
  ipsilateral hypometabolism (−0.22 for a 20 % ipsilateral reduction);
- ``pet_contra_temporal_rel``: mean PET of the contralateral temporal lobe (mesial ∪ lateral)
  over the mean PET of the whole crop (voxels > 0): low values flag bilateral hypometabolism
  that an asymmetry index cannot see;
- ``t1_diff_mesial_temporal``: mean T1 of the ipsilateral minus the contralateral mesial
  temporal region. T1 is z-scored within the brain, so a difference of means is scale-free and,
  unlike a ratio, stable near zero; atrophy (CSF replacing tissue) makes it negative;
- ``t1_tissue_ai_mesial_temporal``: asymmetry index of the fraction of mesial-temporal voxels
  with T1 z-score above ``t1_tissue_threshold`` (a volume proxy for hippocampal atrophy).

Features of a missing modality are NaN.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.data.regions import REGION_NAMES, region_mask

logger = logging.getLogger(__name__)

T1, PET = 0, 1  # channels of ImageTensors.volumes
TEMPORAL_REGIONS: tuple[str, ...] = ("mesial_temporal", "lateral_temporal")


class ImagingFeatureConfig(BaseModel):
    """Options of the hand-crafted imaging features (``params:imaging_features``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    t1_tissue_threshold: float = -1.0  # z-score above which a T1 voxel counts as tissue


def asymmetry_index(ipsi: np.ndarray, contra: np.ndarray) -> np.ndarray:
    """AI = (ipsi − contra) / ((ipsi + contra) / 2), NaN where the denominator is 0.

    An ipsilateral value reduced by a fraction r gives AI = −r / (1 − r / 2) (−0.222 for 20 %).
    """
    ipsi = np.asarray(ipsi, dtype=np.float64)
    contra = np.asarray(contra, dtype=np.float64)
    mean = (ipsi + contra) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mean != 0, (ipsi - contra) / mean, np.nan)


def _side_masks(affine: np.ndarray, shape: tuple[int, int, int], name: str) -> np.ndarray:
    """(V, 2) float32 masks of region ``name``: column 0 = left, 1 = right hemisphere."""
    columns = []
    for side in ("L", "R"):
        mask = region_mask(name, side, affine, shape)
        if not mask.any():
            raise ValueError(
                f"region {name!r} ({side}) has no voxel on the image grid {shape}; "
                "the crop box must cover the temporal lobes (preprocessing.crop_box_mni)"
            )
        columns.append(mask.reshape(-1))
    return np.stack(columns, axis=1).astype(np.float32)


def _ipsi_contra(per_side: np.ndarray, left_operated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split (N, 2[L, R]) per-side values into ipsi and contra (N,) by operative side."""
    left, right = per_side[:, 0], per_side[:, 1]
    return np.where(left_operated, left, right), np.where(left_operated, right, left)


def _side_means(x: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(N, 2) mean of (N, V) volumes ``x`` inside each of the (V, 2) masks (one matmul)."""
    return (x @ masks) / masks.sum(axis=0)


def _operative_side(tensors: ImageTensors, table: pd.DataFrame) -> np.ndarray:
    """(N,) str operative side of each tensor row ('' when the table has no such patient)."""
    missing = {"participant_id", "operative_side"} - set(table.columns)
    if missing:
        raise ValueError(f"imaging features: clinical table lacks columns {sorted(missing)}")
    if table["participant_id"].duplicated().any():
        dup = table.loc[table["participant_id"].duplicated(), "participant_id"].tolist()
        raise ValueError(f"imaging features: duplicate participant_id in table: {dup[:10]}")
    side = table.set_index("participant_id")["operative_side"]
    sides = side.reindex(tensors.index["participant_id"]).to_numpy(dtype=object)
    bad = [s for s in sides if isinstance(s, str) and s not in ("L", "R")]
    if bad:
        raise ValueError(
            f"imaging features: operative_side must be 'L' or 'R', got {bad[:5]}; "
            "fix participants.tsv"
        )
    return np.array([s if isinstance(s, str) else "" for s in sides])


def _pet_features(
    pet: np.ndarray, masks: dict[str, np.ndarray], left: np.ndarray
) -> dict[str, np.ndarray]:
    """PET features of (N, V) volumes; ``masks`` maps region name → (V, 2) side masks."""
    features = {}
    for name in REGION_NAMES:
        ipsi, contra = _ipsi_contra(_side_means(pet, masks[name]), left)
        features[f"pet_ai_{name}"] = asymmetry_index(ipsi, contra)
    temporal = np.maximum(*(masks[name] for name in TEMPORAL_REGIONS))  # union, (V, 2)
    _, contra_temporal = _ipsi_contra(_side_means(pet, temporal), left)
    positive = pet > 0
    crop_mean = np.where(positive, pet, 0.0).sum(axis=1) / np.maximum(positive.sum(axis=1), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        features["pet_contra_temporal_rel"] = np.where(
            crop_mean > 0, contra_temporal / crop_mean, np.nan
        )
    return features


def _t1_features(
    t1: np.ndarray, masks: np.ndarray, left: np.ndarray, threshold: float
) -> dict[str, np.ndarray]:
    """T1 features of (N, V) volumes in the (V, 2) mesial-temporal side masks."""
    mean_ipsi, mean_contra = _ipsi_contra(_side_means(t1, masks), left)
    tissue = (t1 > threshold).astype(np.float32)
    tissue_ipsi, tissue_contra = _ipsi_contra(_side_means(tissue, masks), left)
    return {
        "t1_diff_mesial_temporal": mean_ipsi - mean_contra,
        "t1_tissue_ai_mesial_temporal": asymmetry_index(tissue_ipsi, tissue_contra),
    }


def imaging_features(
    tensors: ImageTensors, table: pd.DataFrame, config: ImagingFeatureConfig | None = None
) -> pd.DataFrame:
    """Hand-crafted ipsi/contralateral features of every patient of ``table``.

    Args:
        tensors: volumes (N, 2, D, H, W) float32 in MNI space with their index and affine.
        table: at least ``participant_id`` and ``operative_side`` (L/R), e.g.
            ``clinical_validated``.
        config: feature options.
    Returns:
        One row per ``table`` row, in its order: ``participant_id`` and float64 feature
        columns (see the module docstring); NaN for a missing modality or a patient without
        image tensors.
    """
    config = config or ImagingFeatureConfig()
    sides = _operative_side(tensors, table)
    left = sides == "L"
    n = tensors.volumes.shape[0]
    flat = tensors.volumes.reshape(n, 2, -1)  # (N, 2, V)
    masks = {name: _side_masks(tensors.affine, tensors.grid_shape, name) for name in REGION_NAMES}
    features = _pet_features(flat[:, PET], masks, left)
    t1 = _t1_features(flat[:, T1], masks["mesial_temporal"], left, config.t1_tissue_threshold)
    features.update(t1)

    frame = pd.DataFrame(features, dtype=np.float64)
    has_pet = tensors.index["has_pet"].to_numpy(dtype=bool)
    has_t1 = tensors.index["has_t1"].to_numpy(dtype=bool)
    frame.loc[~has_pet, [c for c in frame.columns if c.startswith("pet_")]] = np.nan
    frame.loc[~has_t1, [c for c in frame.columns if c.startswith("t1_")]] = np.nan
    frame.loc[sides == "", :] = np.nan  # tensor rows that the table does not list
    frame.insert(0, "participant_id", tensors.index["participant_id"].to_numpy())

    ids = table["participant_id"]
    absent = sorted(set(ids) - set(frame["participant_id"]))
    if absent:
        logger.warning(
            "imaging features: %d patients have no image tensors (features NaN): %s",
            len(absent),
            absent[:10],
        )
    out = frame.set_index("participant_id").reindex(ids.to_numpy()).reset_index()
    return out.rename(columns={"index": "participant_id"})
