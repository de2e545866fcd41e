"""The synthetic cohort object and its BIDS writer (images rendered lazily, one subject at a time).

Folder written (the input contract of DESIGN.md)::

    participants.tsv                          tab-separated, "n/a" for missing
    participants.json                         one entry per column
    sub-<id>/anat/sub-<id>_T1w.nii.gz
    sub-<id>/pet/sub-<id>_trc-FDG_pet.nii.gz
    derivatives/ground_truth.tsv              true log-hazard, latent factors, acquisition

A scan the cohort did not acquire (``has_t1``/``has_pet`` = 0 in the ground truth,
``acquisition.fraction_missing_*``) has no file: that is how a hospital's cohort shows it.

Images are written first and ``participants.tsv`` last, so an interrupted write never looks
like a complete cohort (the Kedro dataset's ``exists`` checks ``participants.tsv``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from tle_synth.config import DemoCohortConfig
from tle_synth.images import SubjectSpec, render_acquired, render_subject

logger = logging.getLogger(__name__)

GROUND_TRUTH_FILE = Path("derivatives") / "ground_truth.tsv"
_OWNED_FILES = ("participants.tsv", "participants.json", str(GROUND_TRUTH_FILE))


@dataclass(frozen=True)
class SyntheticCohort:
    """A generated cohort: tables in memory, images rendered on demand.

    Attributes:
        participants: contract columns of ``participants.tsv`` (NaN/None = missing).
        ground_truth: ``participant_id``, ``true_log_hazard``, latent factors, acquisition.
        sidecar: ``participants.json`` content.
        subjects: one :class:`SubjectSpec` per participant, same order.
        config: the validated configuration (sites, anatomy, lesion shapes) used to render.
    """

    participants: pd.DataFrame
    ground_truth: pd.DataFrame
    sidecar: dict[str, Any]
    subjects: tuple[SubjectSpec, ...]
    config: DemoCohortConfig

    def __post_init__(self) -> None:
        ids = list(self.participants["participant_id"])
        if [s.participant_id for s in self.subjects] != ids:
            raise ValueError("subjects must list the participants in the same order")
        if list(self.ground_truth["participant_id"]) != ids:
            raise ValueError("ground_truth must list the participants in the same order")

    def __len__(self) -> int:
        return len(self.subjects)

    def subject(self, participant_id: str) -> SubjectSpec:
        """The spec of one participant (KeyError if unknown)."""
        for spec in self.subjects:
            if spec.participant_id == participant_id:
                return spec
        raise KeyError(f"no participant {participant_id!r} in this synthetic cohort")

    def images(self, participant_id: str) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
        """Render (T1w, PET) of one participant (deterministic; nothing is cached)."""
        return render_subject(self.subject(participant_id), self.config)

    def iter_images(self) -> Iterator[tuple[str, nib.Nifti1Image, nib.Nifti1Image]]:
        """Yield (participant_id, T1w, PET) one subject at a time."""
        for spec in self.subjects:
            yield (spec.participant_id, *render_subject(spec, self.config))


def image_paths(root: Path, participant_id: str) -> tuple[Path, Path]:
    """(T1w, PET) paths of a participant inside a BIDS ``root``."""
    sub = root / participant_id
    return (
        sub / "anat" / f"{participant_id}_T1w.nii.gz",
        sub / "pet" / f"{participant_id}_trc-FDG_pet.nii.gz",
    )


def _prepare_root(root: Path, participant_ids: set[str]) -> None:
    """Create ``root``; clear what a previous synthetic cohort left there; refuse anything else."""
    if root.exists() and any(root.iterdir()):
        if not (root / GROUND_TRUTH_FILE).is_file():
            raise ValueError(
                f"{root} is not empty and holds no {GROUND_TRUTH_FILE}: refusing to write a "
                "synthetic cohort over what may be real data; choose an empty folder "
                "(cohort_dir / out_dir) or delete it first"
            )
        for name in _OWNED_FILES:
            (root / name).unlink(missing_ok=True)
        stale = [p for p in root.glob("sub-*") if p.is_dir() and p.name not in participant_ids]
        for path in stale:
            shutil.rmtree(path)
        logger.info(
            "Replacing the synthetic cohort in %s (%d stale subjects removed)", root, len(stale)
        )
    root.mkdir(parents=True, exist_ok=True)


def _write_subject(spec: SubjectSpec, config: DemoCohortConfig, root: Path) -> None:
    """Render one subject and save its acquired scans (seeded by ``spec``: any process may).

    A scan not acquired has no file; one left by a previous cohort in this folder is removed.
    """
    for image, path in zip(
        render_acquired(spec, config), image_paths(root, spec.participant_id), strict=True
    ):
        if image is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(image, path)


def _available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def write_cohort(cohort: SyntheticCohort, root: Path, workers: int | None = None) -> None:
    """Write ``cohort`` as a BIDS folder at ``root``, rendering images subject by subject.

    Args:
        workers: processes rendering subjects at once (joblib); None = one per CPU core.
            Every subject is seeded by ``(seed, index)``, so the files do not depend on it.
    Raises:
        ValueError: ``root`` is a non-empty folder that is not a previous synthetic cohort.
    """
    root = Path(root)
    ids = list(cohort.participants["participant_id"])
    _prepare_root(root, set(ids))
    start = time.perf_counter()
    n_jobs = max(1, min(workers or _available_cores(), len(cohort)))
    with tqdm(total=len(cohort), desc="demo cohort", unit="subject") as progress:
        if n_jobs == 1:
            for spec in cohort.subjects:
                _write_subject(spec, cohort.config, root)
                progress.update()
        else:
            jobs = (delayed(_write_subject)(s, cohort.config, root) for s in cohort.subjects)
            for _ in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs):
                progress.update()
    (root / GROUND_TRUTH_FILE).parent.mkdir(parents=True, exist_ok=True)
    cohort.ground_truth.to_csv(root / GROUND_TRUTH_FILE, sep="\t", index=False, na_rep="n/a")
    (root / "participants.json").write_text(json.dumps(cohort.sidecar, indent=2) + "\n")
    cohort.participants.to_csv(root / "participants.tsv", sep="\t", index=False, na_rep="n/a")
    elapsed = time.perf_counter() - start
    logger.info(
        "Wrote synthetic cohort of %d subjects to %s in %.1f s (%.2f s/subject)",
        len(cohort),
        root,
        elapsed,
        elapsed / max(len(cohort), 1),
    )
