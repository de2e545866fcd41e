"""Parameters of the demo cohort: YAML = defaults, clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tle_synth.config import DemoCohortConfig, apply_shift, parse_config, tiny_params

PARAMS_FILE = Path(__file__).resolve().parents[2] / "conf" / "base" / "parameters_demo_cohort.yml"


def test_yaml_parameters_validate_and_equal_the_documented_defaults() -> None:
    params = yaml.safe_load(PARAMS_FILE.read_text())["demo_cohort"]
    assert parse_config(params) == DemoCohortConfig()
    assert DemoCohortConfig().n_patients == 220


def test_kedro_style_string_values_are_coerced() -> None:
    assert parse_config({"n_patients": "6"}).n_patients == 6


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"n_patients": 1}, "demo_cohort.n_patients"),
        ({"bogus": 1}, "demo_cohort.bogus"),
        ({"anatomy": {"orientations": ["XYZ"]}}, "orientation 'XYZ'"),
        ({"anatomy": {"t1_voxel_mm": [1, 0, 1]}}, "demo_cohort.anatomy.t1_voxel_mm"),
        ({"outcome": {"weibull_shape": 1.5}}, "demo_cohort.outcome.weibull_shape"),
        ({"outcome": {"followup_median_months": 80}}, "followup_min_months <"),
        ({"clinical": {"history_rates": {"hypoxia": 0.1}}}, "history_rates must have"),
        ({"pose": {"rotation_deg_max": 20}}, "demo_cohort.pose.rotation_deg_max"),
        ({"pose": {"translation_mm_max": 16}}, "demo_cohort.pose.translation_mm_max"),
        ({"sites": []}, "at least one site"),
        ({"sites": [{"name": "x"}]}, "demo_cohort.sites.0.weight"),
        ({"lesions": {"blob_sigma_mm": [9, 3]}}, "demo_cohort.lesions.blob_sigma_mm"),
        ({"outcome": {"followup_min_months": 6}}, "demo_cohort.outcome.followup_min_months"),
    ],
)
def test_bad_parameters_raise_value_error_naming_the_key(params: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match="parameters_demo_cohort.yml") as err:
        parse_config(params)
    assert fragment in str(err.value)


def test_tiny_params_are_valid_and_coarse() -> None:
    cfg = parse_config(tiny_params(5, seed=3))
    assert (cfg.n_patients, cfg.seed) == (5, 3)
    assert cfg.anatomy.template_resolution_mm > DemoCohortConfig().anatomy.template_resolution_mm


def _yaml() -> dict:
    return yaml.safe_load(PARAMS_FILE.read_text())


def test_the_shift_overrides_validate_and_change_sites_pose_lesions_and_outcome() -> None:
    params = _yaml()
    shifted = parse_config(apply_shift(params["demo_cohort"], params["demo_cohort_shift"]))
    design = parse_config(params["demo_cohort"])
    assert shifted.shifted and not design.shifted
    assert {s.name for s in shifted.sites}.isdisjoint({s.name for s in design.sites})
    assert shifted.pose.rotation_deg_max > design.pose.rotation_deg_max
    assert shifted.lesions.blob_sigma_mm != design.lesions.blob_sigma_mm
    assert shifted.outcome.effects != design.outcome.effects
    # untouched keys keep the design values; the inputs are not modified
    assert shifted.clinical == design.clinical
    assert shifted.outcome.weibull_shape == design.outcome.weibull_shape
    assert params == _yaml()


def test_shift_merges_nested_keys_and_replaces_lists() -> None:
    merged = apply_shift(
        {"seed": 1, "pose": {"rotation_deg_max": 5.0, "translation_mm_max": 3.0}},
        {"pose": {"rotation_deg_max": 11.0}, "lesions": {"blob_sigma_mm": [2.0, 3.0]}},
    )
    assert merged["pose"] == {"rotation_deg_max": 11.0, "translation_mm_max": 3.0}
    assert merged["lesions"]["blob_sigma_mm"] == [2.0, 3.0]


@pytest.mark.parametrize(
    ("shift", "fragment"),
    [
        ({"pose": {"rotaton_deg_max": 11.0}}, "demo_cohort.pose.rotaton_deg_max"),
        ({"pose": {"rotation_deg_max": 30.0}}, "demo_cohort.pose.rotation_deg_max"),
        ({"seed": 3}, "must not set seed"),
    ],
)
def test_a_bad_shift_is_a_value_error_naming_the_key(shift: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        apply_shift({}, shift)
    assert fragment in str(err.value)
