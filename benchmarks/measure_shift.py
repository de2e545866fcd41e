"""How far training augmentation moves the atlas region measures, in training standard deviations.

The models standardise each region measure by the training patients' mean and SD
(``models.measures.StandardisedMeasures``; frozen at the warm start). This script computes
the measures of every patient of a processed cohort on its images as they are and after
augmentation (the configured ``AugmentConfig`` with ``p_augment=1``, several seeds), both
standardised by the un-augmented statistics, and prints the measures with the largest
|z| after augmentation next to the largest |z| the images themselves reach. Used for
``train.augment.measures_from`` (docs/modeling.md, Training).

    python benchmarks/measure_shift.py data [--seeds 5] [--top 8]

``data`` is a data root with ``02_intermediate/clinical_validated.parquet`` and
``03_primary/image_tensors`` (e.g. ``data`` after ``make run``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tle_kedro.datasets.tensors import ImageTensorsDataset
from tle_kedro.features.imaging import measure_volumes, operative_sides
from tle_kedro.models.batch import MODALITIES
from tle_kedro.models.measures import RegionMeasures
from tle_kedro.transforms.augment import AugmentConfig, augment_batch

BATCHNORM_EPS = 1e-5  # torch.nn.BatchNorm1d's default, as StandardisedMeasures uses it


def measure_shift(root: Path, seeds: int) -> pd.DataFrame:
    """One row per measure: ``max_abs_z_images``, ``max_abs_z_augmented``, ``train_sd``."""
    tensors = ImageTensorsDataset(str(root / "03_primary/image_tensors")).load()
    clinical = pd.read_parquet(root / "02_intermediate/clinical_validated.parquet")
    right = operative_sides(tensors, clinical) == "R"
    present = tensors.modality_mask
    images = torch.as_tensor(np.asarray(tensors.volumes, dtype=np.float32))
    config = AugmentConfig(p_augment=1.0)
    augmented = [
        augment_batch(images, torch.as_tensor(present), config, seed=s)[0].numpy()
        for s in range(seeds)
    ]
    rows = []
    for channel, modality in enumerate(MODALITIES):
        module = RegionMeasures(modality, tensors.grid_shape, np.asarray(tensors.affine))
        keep = present[:, channel]
        raw = measure_volumes(module, tensors.volumes[:, channel], right)[keep]
        mean, var = raw.mean(0), np.maximum(raw.var(0, ddof=1), 1e-8)
        sd = np.sqrt(var + BATCHNORM_EPS)
        z_images = np.abs((raw - mean) / sd).max(0)
        z_aug = np.max(
            [
                np.abs((measure_volumes(module, a[:, channel], right)[keep] - mean) / sd).max(0)
                for a in augmented
            ],
            axis=0,
        )
        for name, zi, za, s in zip(module.names, z_images, z_aug, np.sqrt(var), strict=True):
            rows.append((name, float(zi), float(za), float(s)))
    columns = ["measure", "max_abs_z_images", "max_abs_z_augmented", "train_sd"]
    return pd.DataFrame(rows, columns=columns).sort_values("max_abs_z_augmented", ascending=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_root", type=Path)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = measure_shift(args.data_root, args.seeds)
    print(table.head(args.top).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(
        f"median over measures: max |z| images {table['max_abs_z_images'].median():.2f}, "
        f"augmented {table['max_abs_z_augmented'].median():.2f}"
    )


if __name__ == "__main__":
    main()
