"""Regional imaging measures for the classical baselines, relative to the operative side.

One row per patient with the measures of :mod:`tle_kedro.models.measures` over the atlas
regions of :mod:`tle_kedro.data.atlas` (``pet_ai_<region>``, ``pet_rel_contra_<region>``,
``t1_diff_<region>``, ``t1_tissue_ai_<region>``): the same module TransEpRelap runs on its
batches, so a classical model and the Transformer measure exactly the same thing.

Features of a missing modality are NaN (imputed inside the training folds).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from tle_kedro.data.atlas import DEFAULT_ATLAS, AtlasConfig
from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.models.measures import RegionMeasures

logger = logging.getLogger(__name__)

T1, PET = 0, 1  # channels of ImageTensors.volumes
_CHUNK = 64  # patients per measure call (bounded memory on large cohorts)


def asymmetry_index(ipsi: np.ndarray, contra: np.ndarray) -> np.ndarray:
    """AI = (ipsi − contra) / ((ipsi + contra) / 2), NaN where the denominator is 0.

    An ipsilateral value reduced by a fraction r gives AI = −r / (1 − r / 2) (−0.222 for 20 %).
    """
    ipsi = np.asarray(ipsi, dtype=np.float64)
    contra = np.asarray(contra, dtype=np.float64)
    mean = (ipsi + contra) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mean != 0, (ipsi - contra) / mean, np.nan)


def operative_sides(tensors: ImageTensors, table: pd.DataFrame) -> np.ndarray:
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


def measure_volumes(module: RegionMeasures, volumes: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(N, D, H, W) volumes of one modality → (N, F) float64 measures, in chunks."""
    out = []
    with torch.no_grad():
        for start in range(0, volumes.shape[0], _CHUNK):
            x = torch.from_numpy(np.ascontiguousarray(volumes[start : start + _CHUNK]))
            r = torch.from_numpy(right[start : start + _CHUNK])
            out.append(module(x.unsqueeze(1), r).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(module.names)))


def imaging_features(
    tensors: ImageTensors, table: pd.DataFrame, atlas: AtlasConfig = DEFAULT_ATLAS
) -> pd.DataFrame:
    """Regional ipsi/contralateral measures of every patient of ``table``.

    Args:
        tensors: volumes (N, 2, D, H, W) float32 in MNI space with their index and affine.
        table: at least ``participant_id`` and ``operative_side`` (L/R), e.g.
            ``clinical_validated``.
        atlas: atlas and region set (``params:atlas``).
    Returns:
        One row per ``table`` row, in its order: ``participant_id`` and float64 measure
        columns (``measure_names('pet') + measure_names('t1')``); NaN for a missing modality,
        a patient without image tensors or one without an operative side.
    """
    sides = operative_sides(tensors, table)
    right = sides == "R"
    columns: dict[str, np.ndarray] = {}
    for modality, channel in (("pet", PET), ("t1", T1)):
        module = RegionMeasures(modality, tensors.grid_shape, tensors.affine, atlas)
        values = measure_volumes(module, tensors.volumes[:, channel], right)
        present = tensors.index[f"has_{modality}"].to_numpy(dtype=bool) & (sides != "")
        values[~present] = np.nan
        columns.update(zip(module.names, values.T, strict=True))
    frame = pd.DataFrame(columns, dtype=np.float64)
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
