"""The content-keyed per-subject cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tle_kedro.transforms import cache as cache_module
from tle_kedro.transforms.cache import (
    SubjectCache,
    SubjectResult,
    cache_key,
    file_digest,
    file_signature,
)


def _files(tmp_path: Path) -> tuple[str, str]:
    t1, pet = tmp_path / "t1.nii.gz", tmp_path / "pet.nii.gz"
    t1.write_bytes(b"t1 bytes")
    pet.write_bytes(b"pet bytes")
    return str(t1), str(pet)


def _result() -> SubjectResult:
    volume = np.arange(2 * 4 * 3 * 2, dtype=np.float32).reshape(2, 4, 3, 2)
    return SubjectResult(volume, True, False, (("unreadable_image", "PET: truncated"),))


def test_key_depends_on_content_not_on_name(tmp_path: Path) -> None:
    t1, pet = _files(tmp_path)
    key = cache_key(t1, pet, {"grid": [4, 3, 2]})
    renamed = tmp_path / "other_name.nii.gz"
    Path(t1).rename(renamed)
    assert cache_key(str(renamed), pet, {"grid": [4, 3, 2]}) == key
    renamed.write_bytes(b"t1 bytes, edited")
    assert cache_key(str(renamed), pet, {"grid": [4, 3, 2]}) != key


def test_key_changes_with_parameters_code_version_and_missing_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t1, pet = _files(tmp_path)
    key = cache_key(t1, pet, {"grid": [4, 3, 2]})
    assert cache_key(t1, pet, {"grid": [4, 3, 3]}) != key
    assert cache_key(t1, None, {"grid": [4, 3, 2]}) != key
    assert cache_key(pet, t1, {"grid": [4, 3, 2]}) != key  # modality swap matters
    monkeypatch.setattr(cache_module, "CODE_VERSION", "preprocess-999")
    assert cache_key(t1, pet, {"grid": [4, 3, 2]}) != key


def test_file_digest_of_no_file_is_absent() -> None:
    assert file_digest(None) == "absent"


def test_round_trip_keeps_volume_flags_and_failure_reasons(tmp_path: Path) -> None:
    cache = SubjectCache(tmp_path / "cache")
    assert cache.get("ab12") is None
    cache.put("ab12", _result())
    loaded = cache.get("ab12")
    assert loaded is not None
    np.testing.assert_array_equal(loaded.volume, _result().volume)
    assert (loaded.has_t1, loaded.has_pet) == (True, False)
    assert loaded.problems == (("unreadable_image", "PET: truncated"),)
    assert (cache.hits, cache.misses) == (1, 1)
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_disabled_cache_stores_nothing(tmp_path: Path) -> None:
    cache = SubjectCache(None)
    cache.put("ab12", _result())
    assert cache.get("ab12") is None


def test_damaged_entry_is_ignored(tmp_path: Path) -> None:
    cache = SubjectCache(tmp_path)
    cache.put("cd34", _result())
    next(tmp_path.rglob("cd34.npz")).write_bytes(b"garbage")
    assert cache.get("cd34") is None


def test_key_changes_when_the_same_bytes_are_named_as_another_compression(
    tmp_path: Path,
) -> None:
    gz = tmp_path / "pet.nii.gz"
    gz.write_bytes(b"\x1f\x8b same bytes")
    key = cache_key(None, str(gz), {"grid": [4, 3, 2]})
    plain = gz.rename(tmp_path / "pet.nii")
    assert cache_key(None, str(plain), {"grid": [4, 3, 2]}) != key


def test_file_signature_names_the_magic_bytes_and_suffix(tmp_path: Path) -> None:
    path = tmp_path / "a.nii.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00rest")
    signature = file_signature(path)
    assert signature["magic"] == "1f8b0800" and signature["suffix"] == ".nii.gz"
    assert signature["digest"] == file_digest(path)
