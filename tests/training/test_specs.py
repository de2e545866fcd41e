"""Model specs from parameters_modeling.yml."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from tle_kedro.training.specs import (
    ALL_MODELS,
    DEFAULT_MODELS,
    build_specs,
    model_params,
    parse_modeling_params,
)

GRID = (40, 32, 24)


def _project_params() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_modeling.yml").read_text())[
        "modeling"
    ]


def test_project_parameters_validate_and_list_every_model() -> None:
    params, model, train, _, tuning = parse_modeling_params(_project_params(), GRID)
    ablations = {
        "transeprelap_no_pet",
        "transeprelap_no_mri",
        "transeprelap_no_clinical",
        "transeprelap_clinical_after",
        "transeprelap_no_flip",
        "transeprelap_discrete",
    }
    # every model but the ablations on request (conf/ablations), in the table's order
    assert tuple(params.models) == tuple(m for m in ALL_MODELS if m not in ablations)
    assert tuple(params.models) == DEFAULT_MODELS
    assert model.grid_shape == GRID  # taken from the image tensors, not the YAML
    assert model.region_tokens and model.grid_affine is None
    assert train.batch_size == 16 and train.inner_val_fraction > 0 and train.ensemble == 2
    assert train.recalibrate
    assert tuning.enabled


def test_the_grid_affine_comes_from_the_image_tensors() -> None:
    affine = np.diag([3.0, 2.0, 4.0, 1.0])
    affine[:3, 3] = [-70.0, -60.0, -40.0]
    _, model, _, _, _ = parse_modeling_params(_project_params(), GRID, affine)
    np.testing.assert_array_equal(np.array(model.grid_affine), affine)


def test_ablations_switch_one_modality_off_and_share_transeprelaps_study() -> None:
    _, model, train, _, _ = parse_modeling_params(_project_params(), GRID)
    specs = {s.name: s for s in build_specs(list(ALL_MODELS), model, train)}
    assert specs["transeprelap"].tune_with == "transeprelap"
    for name, off in [
        ("transeprelap_no_pet", "use_pet"),
        ("transeprelap_no_mri", "use_t1"),
        ("transeprelap_no_clinical", "use_clinical"),
    ]:
        spec = specs[name]
        assert spec.kind == "transeprelap"
        assert getattr(spec.model_config, off) is False
        assert spec.tune_with == "transeprelap"
    after = specs["transeprelap_clinical_after"]
    assert after.model_config.clinical_fusion == "after" and after.tune_with == "transeprelap"
    assert specs["transeprelap"].model_config.clinical_fusion == "attention"
    discrete = specs["transeprelap_discrete"]
    assert discrete.kind == "transeprelap" and discrete.tune_with == "transeprelap"
    base = specs["transeprelap"].model_config
    assert discrete.model_config.head == "discrete" and base.head == "cox"
    assert discrete.model_config.model_copy(update={"head": "cox"}) == base  # only the head
    no_flip = specs["transeprelap_no_flip"]
    assert no_flip.kind == "transeprelap" and no_flip.tune_with == "transeprelap"
    assert specs["transeprelap"].train_config.augment.flip_lr  # the default since round 4
    assert not no_flip.train_config.augment.flip_lr
    # only the flip differs: the rest of the training and the whole network are TransEpRelap's
    assert no_flip.model_config == specs["transeprelap"].model_config
    default_augment = specs["transeprelap"].train_config.augment
    assert (
        no_flip.train_config.model_copy(update={"augment": default_augment})
        == specs["transeprelap"].train_config
    )
    resolved = {"train": train.model_dump()}
    assert model_params("transeprelap_no_flip", resolved)["train"]["augment"]["flip_lr"] is False
    assert specs["cox_clinical"].family == "cox_clinical"
    assert specs["resnet_image"].tune_with is None


def test_ablation_without_transeprelap_is_not_tuned_and_order_is_fixed() -> None:
    _, model, train, _, _ = parse_modeling_params(_project_params(), GRID)
    specs = build_specs(["transeprelap_no_pet", "cox_clinical"], model, train)
    assert [s.name for s in specs] == ["cox_clinical", "transeprelap_no_pet"]
    assert specs[1].tune_with is None


def test_model_params_describe_each_model_as_its_spec_fits_it() -> None:
    """The parameters of a model's MLflow run (from the resolved ``modeling_config``) are
    the configuration ``build_specs`` fits it with: ablation and training switches applied."""
    _, model, train, classical, _ = parse_modeling_params(_project_params(), GRID)
    resolved = {
        "model": model.model_dump(mode="json"),
        "train": train.model_dump(mode="json"),
        "classical": classical.model_dump(mode="json"),
    }
    for spec in build_specs(list(ALL_MODELS), model, train):
        params = model_params(spec.name, resolved)
        assert params["family"] == spec.family
        if spec.family == "neural":
            assert params["kind"] == spec.kind
            assert params["model"] == spec.model_config.model_dump(mode="json")
            assert params["train"] == spec.train_config.model_dump(mode="json")
            assert "classical" not in params
        else:
            assert set(params) == {"family", "classical"}
    no_tokens = model_params("transeprelap_no_region_tokens", resolved)["model"]
    assert no_tokens["region_tokens"] is False and resolved["model"]["region_tokens"] is True
    assert set(model_params("cox_clinical", resolved)["classical"]) == {"cox_penalizer", "seed"}
    rsf = model_params("rsf_region_measures", resolved)["classical"]
    assert "cox_penalizer" not in rsf and rsf["rsf_n_estimators"] == classical.rsf_n_estimators
    assert model_params("not_a_model", resolved) == {}
    assert model_params("transeprelap", {}) == {"family": "neural", "kind": "transeprelap"}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"models": ["cnn"]}, "models"),
        ({"models": ["cox_clinical", "cox_clinical"]}, "twice"),
        ({"train": {"epochs": 0}}, "modeling.train.epochs"),
        ({"model": {"d_model": 30, "n_heads": 4}}, "divisible"),
        ({"tuning": {"n_trial": 3}}, "modeling.tuning.n_trial"),
    ],
)
def test_bad_parameters_name_the_key(patch: dict, message: str) -> None:
    raw = {**_project_params(), **patch}
    with pytest.raises(ValueError, match=message):
        parse_modeling_params(raw, GRID)


@pytest.mark.parametrize("env", ["paper", "tuning", "smoke", "ablations", "options"])
def test_every_environment_merges_into_valid_parameters(env: str) -> None:
    from kedro.config import OmegaConfigLoader

    from tle_kedro.settings import CONFIG_LOADER_ARGS
    from tle_kedro.training.tuning import base_point

    loader = OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"), env=env, **{**CONFIG_LOADER_ARGS, "default_run_env": env}
    )
    raw = loader["parameters"]["modeling"]
    params, model, train, _, tuning = parse_modeling_params(raw, (40, 32, 24))
    if env == "paper":
        # tuning must not shrink the full-size model back to the CPU search space
        assert set(tuning.search_space["model.d_model"].choices or []) == {128, 256}
        assert model.d_model == 256 and model.widths == (64, 128, 256, 512)
        assert base_point(dict(tuning.search_space), model, train) is not None
        assert train.augment.backend == "torchio" and train.inner_val_fraction > 0
    if env == "ablations":
        # the default comparison plus the three modality ablations and the clinical fusion variant
        base = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env="base",
                                 **{**CONFIG_LOADER_ARGS, "default_run_env": "base"})  # fmt: skip
        default = set(base["parameters"]["modeling"]["models"])
        names = set(params.models)
        assert default < names
        assert names - default == {
            "transeprelap_no_pet", "transeprelap_no_mri", "transeprelap_no_clinical",
            "transeprelap_clinical_after", "transeprelap_no_flip", "transeprelap_discrete",
        }  # fmt: skip
        specs = build_specs(list(params.models), model, train)
        off = {s.name: s.model_config for s in specs if s.name in names - default}
        assert not off["transeprelap_no_pet"].use_pet and off["transeprelap_no_pet"].use_t1
        assert not off["transeprelap_no_mri"].use_t1 and off["transeprelap_no_mri"].use_pet
        assert not off["transeprelap_no_clinical"].use_clinical
        assert off["transeprelap_discrete"].head == "discrete"
