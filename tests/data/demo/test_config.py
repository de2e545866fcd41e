"""Parameters of the demo cohort: YAML = defaults, clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tle_kedro.data.demo.config import DemoCohortConfig, parse_config, tiny_params

PARAMS_FILE = Path(__file__).resolve().parents[3] / "conf" / "base" / "parameters_demo_cohort.yml"


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
