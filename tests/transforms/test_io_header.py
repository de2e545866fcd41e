"""Header checks before any voxel is read: size claims, voxel limit, compression, orientation."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tle_kedro.transforms.io import UnusableImageError, load_volume
from tle_kedro.transforms.params import HeaderChecks

AFFINE = np.diag([3.0, 3.0, 4.0, 1.0])
GIB = 1 << 30


def _volume(shape: tuple[int, ...] = (12, 14, 10)) -> np.ndarray:
    return np.random.default_rng(0).uniform(1, 100, shape).astype(np.float32)


def _reason(path: Path, checks: HeaderChecks | None = None) -> tuple[str, str]:
    with pytest.raises(UnusableImageError) as err:
        load_volume(path, 0.5, checks)
    return str(err.value.reason), err.value.detail


def write_claiming(path: Path, shape: tuple[int, ...], n_bytes: int = 2 << 20) -> Path:
    """A NIfTI whose header claims ``shape`` float32 voxels but that holds ``n_bytes`` of data.

    ``.nii.gz``: the gzip stream is cut as well (a truncated download).
    """
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.float32)
    header.set_sform(AFFINE, code=1)
    header.set_data_offset(352)  # single-file NIfTI: header (348) + extension flag (4)
    blob = header.binaryblock + b"\0" * 4 + np.ones(n_bytes // 4, np.float32).tobytes()
    if path.name.endswith(".gz"):
        blob = gzip.compress(blob)[: n_bytes // 2]
    path.write_bytes(blob)
    return path


@pytest.mark.parametrize("name", ["a.nii", "a.nii.gz"])
def test_a_header_claiming_too_many_voxels_is_refused_quickly(tmp_path: Path, name: str) -> None:
    path = write_claiming(tmp_path / name, (2048, 2048, 2048))
    start = time.perf_counter()
    reason, detail = _reason(path)
    assert time.perf_counter() - start < 1.0
    assert reason == "image_too_large"
    assert "(2048, 2048, 2048)" in detail and "max_voxels" in detail


@pytest.mark.parametrize("name", ["a.nii", "a.nii.gz"])
def test_a_file_shorter_than_its_header_claims_is_truncated_even_below_the_limit(
    tmp_path: Path, name: str
) -> None:
    path = write_claiming(tmp_path / name, (1024, 1024, 1024))
    start = time.perf_counter()
    reason, detail = _reason(path, HeaderChecks(max_voxels=2**40))
    assert time.perf_counter() - start < 2.0
    assert reason == "unreadable_image"
    assert "truncated" in detail and "4,294,967,648 bytes" in detail


# VmHWM is this process image's own peak (ru_maxrss would carry the parent's over exec).
_PEAK_SCRIPT = """
import json, re, sys
from pathlib import Path
from tle_kedro.transforms.io import UnusableImageError, load_volume
from tle_kedro.transforms.params import HeaderChecks
reasons = []
for path, limit in json.loads(sys.argv[1]):
    try:
        load_volume(path, 0.5, HeaderChecks(max_voxels=limit))
    except UnusableImageError as err:
        reasons.append(str(err.reason))
peak_kib = int(re.search(r"VmHWM:\\s*(\\d+) kB", Path("/proc/self/status").read_text())[1])
print(json.dumps({"reasons": reasons, "peak_bytes": peak_kib * 1024}))
"""


def test_peak_memory_on_files_claiming_2048_cubed_stays_far_below_2_gib(tmp_path: Path) -> None:
    """In a fresh process (ru_maxrss is per process): the default limit, and no limit at all."""
    files = [
        write_claiming(tmp_path / "a.nii", (2048, 2048, 2048)),
        write_claiming(tmp_path / "b.nii.gz", (2048, 2048, 2048)),
    ]
    cases = [(str(f), limit) for f in files for limit in (HeaderChecks().max_voxels, 2**40)]
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, json.dumps(cases)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["reasons"] == ["image_too_large", "unreadable_image"] * 2
    assert result["peak_bytes"] < 2 * GIB
    assert result["peak_bytes"] < GIB / 2  # measured ~0.3 GiB: the imports, not the file


def test_gzip_content_named_nii_is_refused_with_the_fix(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(_volume(), AFFINE), tmp_path / "a.nii.gz")
    (tmp_path / "a.nii.gz").rename(tmp_path / "a.nii")
    reason, detail = _reason(tmp_path / "a.nii")
    assert reason == "unreadable_image" and "rename it to a.nii.gz" in detail


def test_uncompressed_content_named_nii_gz_is_refused(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(_volume(), AFFINE), tmp_path / "a.nii")
    (tmp_path / "a.nii").rename(tmp_path / "a.nii.gz")
    reason, detail = _reason(tmp_path / "a.nii.gz")
    assert reason == "unreadable_image" and "not gzip-compressed" in detail


def _with_codes(path: Path, sform_code: int, qform_code: int, qform_shift_mm: float = 0.0) -> Path:
    image = nib.Nifti1Image(_volume(), AFFINE)
    shifted = AFFINE.copy()
    shifted[0, 3] += qform_shift_mm
    image.set_sform(AFFINE, code=sform_code)
    image.set_qform(shifted, code=qform_code)
    nib.save(image, path)
    return path


def test_an_image_without_orientation_is_refused(tmp_path: Path) -> None:
    reason, detail = _reason(_with_codes(tmp_path / "a.nii.gz", 0, 0))
    assert reason == "no_orientation"
    assert "sform_code and qform_code are both 0" in detail


@pytest.mark.parametrize(("sform_code", "qform_code"), [(1, 0), (0, 1), (2, 1)])
def test_one_orientation_code_is_enough(tmp_path: Path, sform_code: int, qform_code: int) -> None:
    data, affine = load_volume(_with_codes(tmp_path / "a.nii.gz", sform_code, qform_code))
    assert data.shape == (12, 14, 10)
    np.testing.assert_allclose(affine, AFFINE)


def test_qform_and_sform_that_disagree_beyond_the_tolerance_conflict(tmp_path: Path) -> None:
    path = _with_codes(tmp_path / "a.nii.gz", 1, 1, qform_shift_mm=5.0)
    reason, detail = _reason(path)
    assert reason == "orientation_conflict" and "5.0 mm" in detail
    _, affine = load_volume(path, 0.5, HeaderChecks(orientation_tolerance_mm=6.0))
    np.testing.assert_allclose(affine, AFFINE)  # the sform wins when both are trusted


def test_a_left_right_mirrored_qform_conflicts_with_the_sform(tmp_path: Path) -> None:
    image = nib.Nifti1Image(_volume(), AFFINE)
    mirrored = np.diag([-3.0, 3.0, 4.0, 1.0])
    mirrored[0, 3] = 3.0 * 11
    image.set_qform(mirrored, code=1)
    nib.save(image, tmp_path / "a.nii.gz")
    assert _reason(tmp_path / "a.nii.gz")[0] == "orientation_conflict"
