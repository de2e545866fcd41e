"""One patient's rendered T1 and PET: geometry, sites, storage variants, where disease shows."""

from __future__ import annotations

from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest

from tle_synth.anatomy import axis_codes, load_template_space
from tle_synth.checks import territory_mean_in_mni
from tle_synth.config import parse_config, tiny_params
from tle_synth.generate import draw_cohort
from tle_synth.images import (
    SubjectSpec,
    pet_uptake,
    render_subject,
    subject_mni_points,
    subject_pose,
    without_lesions,
)
from tle_synth.lesions import hs_centre_mm
from tle_synth.writer import SyntheticCohort

CFG = parse_config(tiny_params(12, seed=11))


@pytest.fixture(scope="module")
def cohort() -> SyntheticCohort:
    return draw_cohort(CFG)


def _render(spec: SubjectSpec) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    return render_subject(spec, CFG)


_healthy = without_lesions  # same patient and acquisition without any lesion


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
        assert np.linalg.norm(_world_centroid(t1) - _world_centroid(pet)) < 15
        assert np.linalg.norm(_world_centroid(t1) - brain_centre) < 20


def test_each_patient_gets_the_grids_of_their_site(cohort: SyntheticCohort) -> None:
    assert len({s.site for s in cohort.subjects}) > 1
    for spec in cohort.subjects[:4]:
        site = CFG.site(spec.site)
        t1, pet = _render(spec)
        t1_zooms = sorted(t1.header.get_zooms()[:3])
        assert np.allclose(t1_zooms, sorted(site.t1_voxel_mm), atol=1e-4)
        assert np.allclose(sorted(pet.header.get_zooms()[:3]), sorted(site.pet_voxel_mm), atol=1e-4)


def test_head_pose_moves_the_voxels_not_the_affine(cohort: SyntheticCohort) -> None:
    spec = replace(cohort.subjects[0], t1_orientation="RAS")
    moved = replace(spec, rotation_deg=(10.0, -5.0, 8.0), translation_mm=(12.0, -9.0, 6.0))
    t1, t1_moved = _render(spec)[0], _render(moved)[0]
    assert np.array_equal(t1.affine, t1_moved.affine)
    assert np.allclose(t1.affine[:3, :3], np.diag(np.diag(t1.affine[:3, :3])))  # axis-aligned
    shift = _world_centroid(t1_moved) - _world_centroid(t1)
    assert np.linalg.norm(shift) > 8  # the head moved inside the same grid


def test_pet_has_its_own_pose_relative_to_t1(cohort: SyntheticCohort) -> None:
    spec = replace(
        cohort.subjects[1], pet_rotation_deg=(0.0, 0.0, 0.0), pet_translation_mm=(0.0, 0.0, 0.0)
    )
    moved = replace(spec, pet_translation_mm=(0.0, 8.0, 0.0))
    (t1, pet), (t1_m, pet_m) = _render(spec), _render(moved)
    assert np.array_equal(t1.get_fdata(), t1_m.get_fdata())
    shift = _world_centroid(pet_m) - _world_centroid(pet)
    assert shift[1] == pytest.approx(8.0, abs=2.0)


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


def _ratio(img: nib.Nifti1Image, spec: SubjectSpec, territory: str, **kw: object) -> float:
    """Left / right mean in a territory, read through the patient's PET pose."""
    pose = subject_pose(spec, "pet")
    left = territory_mean_in_mni(img, pose, territory, "L", **kw)  # type: ignore[arg-type]
    return left / territory_mean_in_mni(img, pose, territory, "R", **kw)  # type: ignore[arg-type]


def test_left_temporal_hypometabolism_lowers_left_pet(cohort: SyntheticCohort) -> None:
    healthy = replace(_healthy(cohort.subjects[1]), pet_side="L", pet_position=0.4)
    sick = replace(healthy, pet_severity=1.0, pet_spread=0.6)
    _, pet_healthy = _render(healthy)
    _, pet_sick = _render(sick)
    assert _ratio(pet_healthy, healthy, "hippocampus") == pytest.approx(1.0, abs=0.06)
    assert (
        _ratio(pet_sick, sick, "hippocampus") < _ratio(pet_healthy, healthy, "hippocampus") - 0.08
    )
    assert _ratio(pet_sick, sick, "orbitofrontal") == pytest.approx(
        _ratio(pet_healthy, healthy, "orbitofrontal"), abs=0.04
    )


def _uptake_loss(spec: SubjectSpec) -> np.ndarray:
    """Fractional FDG loss on the template grid (healthy − sick) / healthy."""
    space = load_template_space(CFG.anatomy.template_resolution_mm)
    site = CFG.site(spec.site)
    healthy = pet_uptake(_healthy(spec), space, site, CFG)
    return (healthy - pet_uptake(spec, space, site, CFG)) / np.maximum(healthy, 1e-3)


def _loss_centroid_y(spec: SubjectSpec) -> float:
    space = load_template_space(CFG.anatomy.template_resolution_mm)
    loss = np.clip(_uptake_loss(spec), 0, None)
    ijk = np.argwhere(loss > 0.5 * loss.max())
    return float((ijk @ space.affine[:3, :3].T + space.affine[:3, 3])[:, 1].mean())


def test_posterior_lesions_sit_behind_anterior_ones(cohort: SyntheticCohort) -> None:
    base = replace(_healthy(cohort.subjects[2]), pet_side="R", pet_severity=1.0, pet_spread=0.1)
    anterior = [_loss_centroid_y(replace(base, pet_position=0.05, seed=(s, 0))) for s in range(4)]
    posterior = [_loss_centroid_y(replace(base, pet_position=0.95, seed=(s, 0))) for s in range(4)]
    assert np.mean(anterior) > np.mean(posterior) + 12  # y grows anteriorly (MNI)


def test_lesion_shape_is_random_and_diffuse_lesions_cover_more(cohort: SyntheticCohort) -> None:
    base = replace(_healthy(cohort.subjects[2]), pet_side="L", pet_severity=1.0)
    one, other = (_uptake_loss(replace(base, seed=(s, 0))) for s in (1, 2))
    assert np.abs(one - other).max() > 0.1  # same latent properties, another shape
    focal = [
        (_uptake_loss(replace(base, pet_spread=0.0, seed=(s, 0))) > 0.05).sum() for s in range(4)
    ]
    diffuse = [
        (_uptake_loss(replace(base, pet_spread=1.0, seed=(s, 0))) > 0.05).sum() for s in range(4)
    ]
    assert np.mean(diffuse) > 2 * np.mean(focal)


def test_contralateral_and_extratemporal_extent_show_where_intended(
    cohort: SyntheticCohort,
) -> None:
    base = replace(_healthy(cohort.subjects[2]), pet_side="R", pet_severity=1.0, pet_spread=0.5)
    one_sided = base
    bilateral = replace(one_sided, contralateral_ratio=1.0)
    extra = replace(base, pet_severity=0.0, extratemporal_severity=1.0)
    temporal = ("hippocampus", "lateral_temporal", "temporal_pole")
    one = np.mean([_ratio(_render(one_sided)[1], one_sided, t) for t in temporal])
    both = np.mean([_ratio(_render(bilateral)[1], bilateral, t) for t in temporal])
    assert one > 1.04
    assert both < one - 0.02
    loss = _uptake_loss(extra)
    assert loss.max() > 0.08
    space = load_template_space(CFG.anatomy.template_resolution_mm)
    x = np.argwhere(loss > 0.5 * loss.max()) @ space.affine[0, :3] + space.affine[0, 3]
    assert (x > 0).mean() > 0.9  # on the PET side (right)


def test_hippocampal_sclerosis_darkens_its_side_of_t1(cohort: SyntheticCohort) -> None:
    healthy = _healthy(cohort.subjects[3])
    sclerotic = replace(healthy, hs_side="R", hs_severity=1.0, hs_position=0.5, hs_extent=1.0)
    pose = subject_pose(healthy)

    def ratio(spec: SubjectSpec) -> float:
        t1, _ = _render(spec)
        right = territory_mean_in_mni(t1, pose, "hippocampus", "R")
        return right / territory_mean_in_mni(t1, pose, "hippocampus", "L")

    assert ratio(healthy) == pytest.approx(1.0, abs=0.08)
    assert ratio(sclerotic) < ratio(healthy) - 0.04


def test_hippocampal_sclerosis_shrinks_the_region_around_its_centre(
    cohort: SyntheticCohort,
) -> None:
    healthy = _healthy(cohort.subjects[4])
    sclerotic = replace(healthy, hs_side="L", hs_severity=1.0, hs_position=0.3, hs_extent=0.5)
    centre_mm = hs_centre_mm("L", 0.3)
    affine = subject_pose(healthy) @ np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = subject_pose(healthy)[:3, :3] @ centre_mm + healthy.translation_mm
    affine[:3, 3] -= affine[:3, :3] @ [5, 5, 5]  # an 11³ patch centred on the HS centre
    before = subject_mni_points(healthy, affine, (11, 11, 11), CFG)
    after = subject_mni_points(sclerotic, affine, (11, 11, 11), CFG)
    centre = centre_mm[:, None, None, None]
    d_before = np.linalg.norm(before - centre, axis=0)
    d_after = np.linalg.norm(after - centre, axis=0)
    # each voxel images tissue farther from the centre: the structure looks smaller
    near = d_before > 2
    assert (d_after[near] > d_before[near]).all()
    assert np.median(d_after[near] / d_before[near]) > 1.05
