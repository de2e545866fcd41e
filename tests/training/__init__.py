"""Tests of tle_kedro.training; ``tiny_cohort`` builds the synthetic data they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from tle_kedro.data.columns import BINARY_COLUMNS
from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.models.batch import SurvivalBatch

HISTORY = list(BINARY_COLUMNS)
# One network with one checkpoint, the whole fold per step, no warm start or recalibration:
# the fit loop the tests below exercise (conf/base adds ensembles, snapshots and the rest).
ONE_NETWORK: dict[str, Any] = {
    "batch_size": None,
    "early_stopping_patience": 10,
    "ensemble": 1,
    "snapshots": 1,
    "recalibrate": False,
    "warm_start": "none",
}


@dataclass(frozen=True)
class TinyCohort:
    clinical: pd.DataFrame
    images: ImageTensors
    log_hazard: np.ndarray


def tiny_cohort(
    n: int = 16, shape: tuple[int, int, int] = (16, 16, 16), seed: int = 0, exact: bool = False
) -> TinyCohort:
    """``n`` patients whose log-hazard is carried by the PET mean (a strong, learnable signal).

    ``exact``: the PET mean is −log(time) itself, so a perfect ranking (C = 1) is learnable.
    """
    rng = np.random.default_rng(seed)
    ids = [f"sub-{i:03d}" for i in range(n)]
    log_hazard = np.linspace(-1.5, 1.5, n)[rng.permutation(n)]
    time = np.clip(rng.exponential(20.0 * np.exp(-log_hazard)), 1.0, None)
    event = time < 30.0
    time = np.minimum(time, 30.0)
    event[:2] = True  # enough events even for tiny n
    if exact:
        log_hazard = -np.log(time)
        log_hazard = (log_hazard - log_hazard.mean()) / log_hazard.std()
    clinical = pd.DataFrame(
        {
            "participant_id": ids,
            "sex": rng.choice(["M", "F"], n),
            "age_at_onset_months": rng.normal(144, 30, n),
            "age_at_surgery_months": rng.normal(276, 40, n),
            "epilepsy_duration_months": rng.normal(127, 30, n),
            "seizure_frequency_per_month": rng.gamma(2.0, 3.0, n),
            "operative_side": rng.choice(["L", "R"], n),
            **{h: rng.integers(0, 2, n).astype(float) for h in HISTORY},
            "mri_finding": rng.choice(["normal", "hippocampal_sclerosis"], n),
            "engel_class": np.where(event, "II", "I"),
            "recurrence": event.astype(int),
            "time_months": time,
            "has_t1": True,
            "has_pet": True,
        }
    )
    clinical.loc[0, "age_at_onset_months"] = np.nan
    volumes = rng.normal(0.0, 0.3, (n, 2, *shape)).astype(np.float32)
    volumes[:, 1] += log_hazard[:, None, None, None].astype(np.float32)
    index = clinical[["participant_id", "has_t1", "has_pet"]].copy()
    return TinyCohort(clinical, ImageTensors(volumes, index, np.eye(4)), log_hazard)


class TinyModel(nn.Module):
    """Follows the neural-model contract: ``forward(batch) -> (B,)`` log-risk."""

    def __init__(self, n_numeric: int, seed_dim: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, seed_dim, kernel_size=3, padding=1)
        self.head = nn.Linear(seed_dim + n_numeric, 1)

    def forward(self, batch: SurvivalBatch) -> torch.Tensor:
        x = torch.relu(self.conv(batch.images)).mean(dim=(2, 3, 4))  # (B, seed_dim)
        num = torch.nan_to_num(batch.clin_num)  # (B, Nn)
        return self.head(torch.cat([x, num], dim=1)).squeeze(1)


def tiny_build_model(
    kind: str,
    config: object,
    n_numeric: int,
    cardinalities: list[int],
    side_index: int | None = None,
) -> nn.Module:
    """Stand-in for ``models.factory.build_model`` (fast; same signature)."""
    return TinyModel(n_numeric)


def no_augment(images: torch.Tensor, mask: torch.Tensor, config: object, seed: int) -> Any:
    """Stand-in for ``transforms.augment.augment_batch``: images unchanged, nothing flipped."""
    return images, torch.zeros(images.shape[0], dtype=torch.bool)


def use_tiny_fit_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the training loop build :class:`TinyModel` and skip augmentation (fast tests)."""
    from tle_kedro.training import loop

    monkeypatch.setattr(loop, "build_model", tiny_build_model)
    monkeypatch.setattr(loop, "augment_batch", no_augment)
