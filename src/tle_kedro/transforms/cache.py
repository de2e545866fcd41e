"""Content-keyed cache of per-subject preprocessing results (successes and failures).

The key covers everything that decides a subject's outcome: each image file's bytes (BLAKE2b),
its magic bytes and the compression its name announces (``.nii`` or ``.nii.gz``: a gzip file
named ``.nii`` is refused, so renaming it must change the key), the preprocessing parameters
that change the result (header limits and quality thresholds included) and
:data:`CODE_VERSION`. Renaming a subject or a folder keeps the key; any other change makes a
new one, so a cold and a warm run give the same exclusion report. Entries are single ``.npz``
files written atomically, so an interrupted run leaves no half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Bump when preprocessing code changes its output: every cached entry becomes stale.
CODE_VERSION = "preprocess-2"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class SubjectResult:
    """One subject's preprocessed tensors and what went wrong.

    Attributes:
        volume: (2, D, H, W) float32, channel 0 = T1, 1 = PET, zeros where unusable.
        has_t1, has_pet: whether each channel holds a usable image.
        problems: ``(reason, detail)`` pairs for modality-level problems.
        t1_ncc, pet_ncc: registration quality (correlation with the MNI template inside the
            brain mask); NaN when the modality was not registered.
    """

    volume: np.ndarray
    has_t1: bool
    has_pet: bool
    problems: tuple[tuple[str, str], ...] = ()
    t1_ncc: float = float("nan")
    pet_ncc: float = float("nan")


def file_digest(path: str | Path | None) -> str:
    """BLAKE2b of a file's bytes (``"absent"`` for no file)."""
    if path is None:
        return "absent"
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_signature(path: str | Path | None) -> dict[str, str]:
    """What of a file decides how it is read: its bytes, magic bytes and name suffix."""
    if path is None:
        return {"digest": "absent"}
    with open(path, "rb") as handle:
        magic = handle.read(4)
    suffix = ".nii.gz" if str(path).endswith(".gz") else Path(path).suffix
    return {"digest": file_digest(path), "magic": magic.hex(), "suffix": suffix}


def cache_key(t1_path: str | None, pet_path: str | None, fingerprint: dict[str, Any]) -> str:
    """Key of one subject: image files (:func:`file_signature`) + parameters + code version."""
    payload = json.dumps(
        {
            "t1": file_signature(t1_path),
            "pet": file_signature(pet_path),
            "params": fingerprint,
            "code": CODE_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.blake2b(payload.encode(), digest_size=20).hexdigest()


class SubjectCache:
    """A folder of ``<key>.npz`` entries; ``None`` as folder disables caching."""

    def __init__(self, folder: str | Path | None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / key[:2] / f"{key}.npz"

    def get(self, key: str) -> SubjectResult | None:
        """The cached result, or None (missing or unreadable entry: recomputed)."""
        if self.folder is None or not self._path(key).is_file():
            self.misses += 1
            return None
        try:
            with np.load(self._path(key), allow_pickle=False) as entry:
                meta = json.loads(str(entry["meta"]))
                result = SubjectResult(
                    volume=entry["volume"].astype(np.float32, copy=False),
                    has_t1=bool(meta["has_t1"]),
                    has_pet=bool(meta["has_pet"]),
                    problems=tuple((str(r), str(d)) for r, d in meta["problems"]),
                    t1_ncc=float(meta["t1_ncc"]),
                    pet_ncc=float(meta["pet_ncc"]),
                )
        except (OSError, ValueError, KeyError) as err:
            logger.warning("ignoring damaged cache entry %s (%s)", self._path(key), err)
            self.misses += 1
            return None
        self.hits += 1
        return result

    def put(self, key: str, result: SubjectResult) -> None:
        """Store ``result`` under ``key`` (atomic rename; no-op when caching is off)."""
        if self.folder is None:
            return
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "has_t1": result.has_t1,
            "has_pet": result.has_pet,
            "problems": [list(p) for p in result.problems],
            "t1_ncc": result.t1_ncc,  # NaN is written as the JSON literal NaN (json reads it)
            "pet_ncc": result.pet_ncc,
            "code": CODE_VERSION,
        }
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, volume=result.volume, meta=np.array(json.dumps(meta)))
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
