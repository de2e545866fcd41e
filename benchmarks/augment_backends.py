"""Seconds per training batch of the two augmentation backends (``train.augment.backend``).

Both draw the same transform families (tests/transforms/test_augment.py holds them to it);
this measures what each costs on the configured grid: one batch of ``--batch`` patients of a
processed cohort, every patient augmented (``p_augment: 1``, the worst case; the default
0.25 costs about a quarter), one torch thread (as a training worker runs), median of
``--repeats`` after one warm-up. ``make bench`` writes the same numbers into
docs/benchmarks.md.

    python benchmarks/augment_backends.py data [--batch 16] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from tle_kedro.datasets.tensors import ImageTensorsDataset
from tle_kedro.transforms.augment import AugmentConfig, augment_batch


def backend_seconds(volumes: np.ndarray, present: np.ndarray, repeats: int = 7) -> dict[str, float]:
    """Median seconds to augment ``volumes`` (B, 2, D, H, W) with each backend."""
    images = torch.as_tensor(np.asarray(volumes, dtype=np.float32))
    mask = torch.as_tensor(present)
    out: dict[str, float] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for backend in ("torch", "torchio"):
            config = AugmentConfig(p_augment=1.0, backend=backend)
            augment_batch(images, mask, config, seed=0)  # warm-up
            times = []
            for seed in range(1, repeats + 1):
                start = time.perf_counter()
                augment_batch(images, mask, config, seed=seed)
                times.append(time.perf_counter() - start)
            out[backend] = statistics.median(times)
    finally:
        torch.set_num_threads(threads)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path, help="data root with 03_primary/image_tensors")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    tensors = ImageTensorsDataset(str(args.root / "03_primary/image_tensors")).load()
    b = min(args.batch, len(tensors.index))
    seconds = backend_seconds(tensors.volumes[:b], tensors.modality_mask[:b], args.repeats)
    grid = "x".join(str(n) for n in tensors.grid_shape)
    for backend, s in seconds.items():
        print(f"{backend:8s} {s:.3f} s per batch of {b} on {grid} ({1000 * s / b:.1f} ms/patient)")
    print(f"torchio / torch = {seconds['torchio'] / seconds['torch']:.1f}x")


if __name__ == "__main__":
    main()
