from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tle_kedro.confirmation.config import (
    Cohort,
    ConfirmationConfig,
    deep_merge,
    demo_cohort_override,
    plan_cohorts,
    runtime_params,
)
from tle_synth.config import parse_config

BASE = Path(__file__).parents[2] / "conf/base/parameters_confirmation.yml"
DEMO = Path(__file__).parents[2] / "conf/base/parameters_demo_cohort.yml"


def _config(**changes) -> ConfirmationConfig:
    raw = yaml.safe_load(BASE.read_text())["confirmation"]
    return ConfirmationConfig(**{**raw, **changes})


def test_the_shipped_configuration_is_valid_and_keeps_the_seed_lists_apart():
    config = _config()
    assert len(config.confirmation_seeds) >= 3
    assert not set(config.design_seeds) & set(config.confirmation_seeds)
    assert "final_model" not in config.pipelines


def test_a_seed_in_both_lists_is_rejected_by_name():
    with pytest.raises(ValueError, match=r"\[11\].*both design and confirmation"):
        _config(design_seeds=[11, 12], shifted_design_seeds=[], confirmation_seeds=[11, 13])


def test_the_demo_cohort_seed_cannot_be_a_confirmation_seed():
    config = _config(
        design_seeds=[1],
        shifted_design_seeds=[],
        missing_design_seeds=[],
        confirmation_seeds=[20261125, 5],
    )
    with pytest.raises(ValueError, match="demo_cohort.seed"):
        config.check_against_demo_seed(20261125)


@pytest.mark.parametrize("pipeline", ["final_model", "inference", "__default__"])
def test_pipelines_that_touch_the_registry_are_refused(pipeline):
    with pytest.raises(ValueError, match="registry never sees"):
        _config(pipelines=["data_processing", pipeline])


def test_unknown_keys_are_errors():
    with pytest.raises(ValueError, match="n_patient"):
        _config(n_patient=10)


def test_plan_puts_each_kind_under_its_own_folder_and_refuses_unlisted_seeds():
    config = _config(output_root="data/x")
    cohorts = plan_cohorts(config, "confirmation")
    assert [c.seed for c in cohorts] == list(config.confirmation_seeds)
    assert cohorts[0].root == Path("data/x/confirmation") / str(config.confirmation_seeds[0])
    assert cohorts[0].comparison_table == cohorts[0].root / "08_reporting/comparison_table.csv"
    with pytest.raises(ValueError, match="not design seeds"):
        plan_cohorts(config, "design", (12345,))


SHIFT = {"anatomy": {"t1_voxel_mm": [1.0, 1.0, 1.2], "rotation_deg_max": 12.0}}
# what the shipped `confirmation.missing` gives the generator
MISSING = {"acquisition": {"fraction_missing_pet": 0.15, "fraction_missing_t1": 0.10}}


def test_shift_is_merged_into_confirmation_cohorts_only():
    config = _config()
    confirm = Cohort(1, "confirmation", Path("r"))
    design = Cohort(2, "design", Path("r"))
    override = demo_cohort_override(confirm, config, SHIFT, generator_has_switch=False)
    assert override == {"seed": 1, "n_patients": config.n_patients, **SHIFT, **MISSING}
    assert demo_cohort_override(design, config, SHIFT, False) == {
        "seed": 2,
        "n_patients": config.n_patients,
    }
    unshifted = demo_cohort_override(confirm, _config(shift=False), SHIFT, False)
    assert "anatomy" not in unshifted
    # A generator with the switch applies the shift itself: only the switch is set (once).
    assert demo_cohort_override(confirm, config, SHIFT, True) == {
        "seed": 1,
        "n_patients": config.n_patients,
        "shifted": True,
        **MISSING,
    }


def test_listed_design_cohorts_are_shifted_like_confirmation_cohorts():
    config = _config(
        design_seeds=[1, 2],
        shifted_design_seeds=[2],
        missing_design_seeds=[],
        confirmation_seeds=[3],
    )
    plain, shifted = (Cohort(s, "design", Path("r")) for s in (1, 2))
    assert demo_cohort_override(plain, config, SHIFT, True) == {
        "seed": 1,
        "n_patients": config.n_patients,
    }
    assert demo_cohort_override(shifted, config, SHIFT, True)["shifted"] is True
    assert not _config(shift=False).is_shifted(Cohort(58213, "design", Path("r")))
    with pytest.raises(ValueError, match=r"shifted_design_seeds \[7\] are not design_seeds"):
        _config(design_seeds=[1], shifted_design_seeds=[7], confirmation_seeds=[3])


def test_a_missing_shift_leaves_the_confirmation_cohort_unshifted():
    override = demo_cohort_override(Cohort(1, "confirmation", Path("r")), _config(), None, False)
    assert set(override) == {"seed", "n_patients", "acquisition"}


def test_a_shift_that_sets_the_seed_is_refused():
    with pytest.raises(ValueError, match="must not set seed"):
        demo_cohort_override(Cohort(1, "confirmation", Path("r")), _config(), {"seed": 3}, False)


def test_confirmation_cohorts_leave_out_scans_and_design_cohorts_only_when_asked():
    config = _config()
    confirm, design = Cohort(1, "confirmation", Path("r")), Cohort(2, "design", Path("r"))
    assert (
        demo_cohort_override(confirm, config, None, True)["acquisition"] == (MISSING["acquisition"])
    )
    assert "acquisition" not in demo_cohort_override(design, config, None, True)
    # a former confirmation cohort is regenerated as it was: with the confirmation's missing scans
    former = _config(design_seeds=[2, 5], missing_design_seeds=[2], shifted_design_seeds=[])
    assert (
        demo_cohort_override(design, former, None, True)["acquisition"] == (MISSING["acquisition"])
    )
    with pytest.raises(ValueError, match=r"missing_design_seeds \[7\] are not design_seeds"):
        _config(design_seeds=[1], missing_design_seeds=[7], shifted_design_seeds=[])
    asked = _config(design_missing={"pet": 0.2, "t1": 0.0})
    assert demo_cohort_override(design, asked, SHIFT, True)["acquisition"] == {
        "fraction_missing_pet": 0.2,
        "fraction_missing_t1": 0.0,
    }


@pytest.mark.parametrize(
    ("missing", "fragment"),
    [
        ({"pet": 0.6, "t1": 0.5}, "pet + t1 must be < 1"),
        ({"pet": 1.2, "t1": 0.0}, "missing.pet"),
        ({"pet": 0.1}, "missing.t1"),
        ({"pet": 0.1, "t1": 0.1, "mri": 0.1}, "missing.mri"),
    ],
)
def test_bad_missing_fractions_are_refused_by_name(missing, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        _config(missing=missing)


def test_the_missing_fractions_reach_the_generator_and_pass_its_validation():
    config = _config()
    override = demo_cohort_override(Cohort(1, "confirmation", Path("r")), config, None, True)
    generator = parse_config(deep_merge(yaml.safe_load(DEMO.read_text())["demo_cohort"], override))
    assert generator.acquisition.fraction_missing_pet == config.missing.pet == 0.15
    assert generator.acquisition.fraction_missing_t1 == config.missing.t1 == 0.10


def test_a_shift_that_sets_missing_scans_is_refused():
    with pytest.raises(ValueError, match="acquisition"):
        demo_cohort_override(
            Cohort(1, "confirmation", Path("r")), _config(), {"acquisition": {}}, True
        )


def test_deep_merge_replaces_lists_whole_and_leaves_inputs_alone():
    base = {"a": {"b": [1, 2, 3], "c": 1}, "d": 2}
    merged = deep_merge(base, {"a": {"b": [9]}})
    assert merged == {"a": {"b": [9], "c": 1}, "d": 2}
    assert base["a"]["b"] == [1, 2, 3]


def test_every_artefact_of_a_cohort_run_lives_under_its_root():
    config = _config()
    cohort = Cohort(7, "design", Path("data/design/7"))
    params = runtime_params(cohort, config, {"seed": 7})
    assert params["data_root"] == "data/design/7"
    assert params["cohort_dir"] == "data/design/7/01_raw/cohort"
    assert "preprocessing" not in params and "modeling" not in params  # catalog: data_root
    assert params["mlflow_experiment"] == "tle_kedro_design" != "tle_kedro"


def test_every_catalog_file_lives_under_the_data_root() -> None:
    """A path outside ``data_root`` would be shared (and overwritten) by every cohort: data
    files, the preprocessing cache and the Optuna storage alike."""
    conf = Path(__file__).resolve().parents[2] / "conf" / "base"
    outside = []
    for catalog in sorted(conf.glob("catalog*.yml")):
        for name, entry in yaml.safe_load(catalog.read_text()).items():
            if not isinstance(entry, dict):
                continue
            inner = entry.get("dataset", entry)
            path = inner.get("filepath", inner.get("path")) if isinstance(inner, dict) else None
            if path is None:
                continue
            if not str(path).startswith(("${runtime_params:data_root,data}/", "${runtime_params:")):
                outside.append(f"{catalog.name}:{name}={path}")
    assert not outside, outside
