"""Tests of tle_kedro.features, with synthetic builders shared by the pipeline test."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tle_kedro.data.columns import BINARY_COLUMNS
from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.data.regions import DEFAULT_CROP_BOX_MNI, crop_grid_affine

HISTORY = list(BINARY_COLUMNS)
GRID = (24, 16, 12)


def synthetic_clinical(n: int = 12, seed: int = 0) -> pd.DataFrame:
    """A ``clinical_validated``-like table of ``n`` patients with a few missing values."""
    rng = np.random.default_rng(seed)
    onset = rng.uniform(12, 300, n)
    surgery = onset + rng.uniform(12, 200, n)
    recurrence = np.array([1, 0, 0] * (n // 3) + [0] * (n % 3))
    frame = pd.DataFrame(
        {
            "participant_id": [f"sub-{i:03d}" for i in range(n)],
            "sex": rng.choice(["M", "F"], n),
            "age_at_onset_months": onset,
            "age_at_surgery_months": surgery,
            "epilepsy_duration_months": surgery - onset,
            "seizure_frequency_per_month": rng.gamma(1.0, 10.0, n),
            "operative_side": ["L", "R"] * (n // 2) + ["L"] * (n % 2),
            **{item: rng.integers(0, 2, n).astype(float) for item in HISTORY},
            "mri_finding": rng.choice(["normal", "hippocampal_sclerosis", "other_lesion"], n),
            "engel_class": np.where(recurrence == 1, "II", "I"),
            "recurrence": recurrence,
            "time_months": rng.uniform(12, 48, n),
            "has_t1": True,
            "has_pet": True,
        }
    )
    frame["mri_finding"] = frame["mri_finding"].astype(object)
    frame.loc[1, "seizure_frequency_per_month"] = np.nan
    frame.loc[2, "febrile_seizures"] = np.nan
    frame.loc[3, "mri_finding"] = None
    return frame


def synthetic_tensors(
    ids: list[str], affine: np.ndarray | None = None, shape: tuple[int, int, int] = GRID
) -> ImageTensors:
    """Flat images (T1 z = 0, PET = 1) of ``ids`` on a grid over the default crop box."""
    n = len(ids)
    volumes = np.zeros((n, 2, *shape), dtype=np.float32)
    volumes[:, 1] = 1.0
    index = pd.DataFrame({"participant_id": ids, "has_t1": True, "has_pet": True})
    if affine is None:
        affine = crop_grid_affine(DEFAULT_CROP_BOX_MNI, shape)
    return ImageTensors(volumes=volumes, index=index, affine=affine)


def touching(region: str, side: str, affine: np.ndarray, shape: tuple[int, int, int] = GRID):
    """(D, H, W) bool: grid voxels that the atlas region ``region`` on ``side`` touches."""
    from tle_kedro.data.atlas import DEFAULT_ATLAS, region_masks

    masks = region_masks(DEFAULT_ATLAS, affine, shape)
    return masks.masks[masks.names.index(region), ("L", "R").index(side)] > 0
