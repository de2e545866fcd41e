"""One patient's rendered T1 and PET: geometry, storage variants, and where disease shows."""

from __future__ import annotations

from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest

from tle_kedro.data.demo.anatomy import axis_codes
from tle_kedro.data.demo.checks import region_mean_in_mni
from tle_kedro.data.demo.config import parse_config, tiny_params
from tle_kedro.data.demo.generate import generate_cohort
from tle_kedro.data.demo.images import (
    SubjectSpec,
    hs_centre_mm,
    render_subject,
    subject_mni_points,
    subject_pose,
)
from tle_kedro.data.demo.writer import SyntheticCohort

CFG = parse_config(tiny_params(12, seed=11))


@pytest.fixture(scope="module")
def cohort() -> SyntheticCohort:
    return generate_cohort(CFG)


def _render(spec: SubjectSpec) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    return render_subject(spec, CFG.anatomy, CFG.lesions)


def _healthy(spec: SubjectSpec) -> SubjectSpec:
    """Same patient and acquisition without any lesion, stored RAS as float32 3-D."""
    return replace(
        spec,
        hs_side="",
        hs_severity=0.0,
        pet_mesial_fraction=0.0,
        pet_lateral_fraction=0.0,
        contralateral_ratio=0.0,
        extratemporal_severity=0.0,
    )


def _world_centroid(img: nib.Nifti1Image) -> np.ndarray:
    data = np.asanyarray(img.dataobj, dtype=np.float32).reshape(img.shape[:3])
    ijk = np.argwhere(data > 0.3 * data.max())
    return (ijk @ img.affine[:3, :3].T + img.affine[:3, 3]).mean(axis=0)


def test_rendering_is_deterministic(cohort: SyntheticCohort) -> None:
    spec = cohort.subjects[0]
    (t1_a, pet_a), (t1_b, pet_b) = _render(spec), _render(spec)
    assert np.array_equal(t1_a.get_fdata(), t1_b.get_fdata())
    assert np.array_equal(pet_a.get_fdata(), pet_b.get_fdata())
    assert np.array_equal(pet_a.affine, pet_b.affine)


def test_t1_and_pet_of_a_patient_overlap_in_world_space(cohort: SyntheticCohort) -> None:
    for spec in cohort.subjects[:4]:
        t1, pet = _render(spec)
        brain_centre = subject_pose(spec)[:3, :3] @ [0.0, -20.0, 10.0] + spec.translation_mm
        assert np.linalg.norm(_world_centroid(t1) - _world_centroid(pet)) < 10
        assert np.linalg.norm(_world_centroid(t1) - brain_centre) < 20
        # their own grids: different voxel sizes and fields of view
        assert t1.header.get_zooms()[:3] != pet.header.get_zooms()[:3]


def test_images_are_stored_in_the_orientation_and_type_of_their_spec(
    cohort: SyntheticCohort,
) -> None:
    for spec in cohort.subjects:
        t1, pet = _render(spec)
        assert axis_codes(t1) == spec.t1_orientation
        assert axis_codes(pet) == spec.pet_orientation
        assert t1.get_data_dtype() == np.int16
        assert pet.get_data_dtype() == np.dtype(spec.pet_dtype)
        assert pet.ndim == (4 if spec.pet_frames else 3)
    assert len({s.t1_orientation for s in cohort.subjects}) > 1
    assert {s.pet_dtype for s in cohort.subjects} == {"int16", "float32"}


def test_pet_carries_its_global_scanner_scale(cohort: SyntheticCohort) -> None:
    spec = _healthy(cohort.subjects[0])
    _, pet = _render(spec)
    _, pet_doubled = _render(replace(spec, pet_scale_factor=2 * spec.pet_scale_factor))
    assert np.allclose(pet_doubled.get_fdata(), 2 * pet.get_fdata(), rtol=1e-5)


def _pet_ratio(pet: nib.Nifti1Image, spec: SubjectSpec, region: str) -> float:
    """Left / right mean PET in an MNI region, read through the patient's pose."""
    pose = subject_pose(spec)
    return region_mean_in_mni(pet, pose, region, "L") / region_mean_in_mni(pet, pose, region, "R")


def test_left_temporal_hypometabolism_lowers_left_pet(cohort: SyntheticCohort) -> None:
    healthy = replace(_healthy(cohort.subjects[1]), pet_side="L")
    sick = replace(healthy, pet_severity=1.0, pet_mesial_fraction=1.0, pet_lateral_fraction=1.0)
    _, pet_healthy = _render(healthy)
    _, pet_sick = _render(sick)
    for region in ("mesial_temporal", "lateral_temporal"):
        assert _pet_ratio(pet_healthy, healthy, region) == pytest.approx(1.0, abs=0.06), region
        assert _pet_ratio(pet_sick, sick, region) < _pet_ratio(pet_healthy, healthy, region) - 0.1
    assert _pet_ratio(pet_sick, sick, "extratemporal") == pytest.approx(
        _pet_ratio(pet_healthy, healthy, "extratemporal"), abs=0.03
    )


def test_contralateral_and_extratemporal_extent_show_where_intended(
    cohort: SyntheticCohort,
) -> None:
    base = replace(_healthy(cohort.subjects[2]), pet_side="R", pet_severity=1.0)
    one_sided = replace(base, pet_mesial_fraction=1.0)
    bilateral = replace(one_sided, contralateral_ratio=1.0)
    extra = replace(base, extratemporal_severity=1.0)
    assert _pet_ratio(_render(one_sided)[1], one_sided, "mesial_temporal") > 1.1
    assert _pet_ratio(_render(bilateral)[1], bilateral, "mesial_temporal") == pytest.approx(
        1.0, abs=0.06
    )
    assert _pet_ratio(_render(extra)[1], extra, "extratemporal") > 1.1


def test_hippocampal_sclerosis_darkens_its_side_of_t1(cohort: SyntheticCohort) -> None:
    healthy = _healthy(cohort.subjects[3])
    sclerotic = replace(healthy, hs_side="R", hs_severity=1.0)
    pose = subject_pose(healthy)

    def ratio(spec: SubjectSpec) -> float:
        t1, _ = _render(spec)
        right = region_mean_in_mni(t1, pose, "mesial_temporal", "R")
        return right / region_mean_in_mni(t1, pose, "mesial_temporal", "L")

    assert ratio(healthy) == pytest.approx(1.0, abs=0.08)
    assert ratio(sclerotic) < ratio(healthy) - 0.1


def test_hippocampal_sclerosis_shrinks_the_region_around_its_centre(
    cohort: SyntheticCohort,
) -> None:
    healthy = _healthy(cohort.subjects[4])
    sclerotic = replace(healthy, hs_side="L", hs_severity=1.0)
    affine = subject_pose(healthy) @ np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = subject_pose(healthy)[:3, :3] @ hs_centre_mm("L") + healthy.translation_mm
    affine[:3, 3] -= affine[:3, :3] @ [5, 5, 5]  # an 11³ patch centred on the left hippocampus
    before = subject_mni_points(healthy, affine, (11, 11, 11), CFG.anatomy, CFG.lesions)
    after = subject_mni_points(sclerotic, affine, (11, 11, 11), CFG.anatomy, CFG.lesions)
    centre = hs_centre_mm("L")[:, None, None, None]
    d_before = np.linalg.norm(before - centre, axis=0)
    d_after = np.linalg.norm(after - centre, axis=0)
    # each voxel images tissue farther from the centre: the structure looks smaller
    near = d_before > 2
    assert (d_after[near] > d_before[near]).all()
    assert np.median(d_after[near] / d_before[near]) > 1.05
