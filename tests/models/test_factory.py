from __future__ import annotations

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from tests.conftest import PROJECT_ROOT
from tests.models import CARDINALITIES, N_NUMERIC, make_batch, single_thread  # noqa: F401
from tle_kedro.models import config as config_module
from tle_kedro.models.config import ModelConfig
from tle_kedro.models.factory import MODEL_KINDS, build_model

pytestmark = pytest.mark.usefixtures("single_thread")

GRID = (16, 16, 16)
ABLATIONS = {
    "full": {},
    "no_t1": {"use_t1": False},
    "no_pet": {"use_pet": False},
    "no_clinical": {"use_clinical": False},
}


def tiny(**overrides: object) -> ModelConfig:
    values: dict[str, object] = {"grid_shape": GRID, "widths": (4, 4, 8, 8), "d_model": 8}
    values.update(overrides)
    return ModelConfig.model_validate(values)


@pytest.mark.parametrize("b", [1, 2, 3])
@pytest.mark.parametrize("ablation", list(ABLATIONS))
@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_every_model_returns_one_finite_log_risk_per_patient(
    kind: str, ablation: str, b: int
) -> None:
    torch.manual_seed(0)
    model = build_model(kind, tiny(**ABLATIONS[ablation]), N_NUMERIC, CARDINALITIES).eval()  # type: ignore[arg-type]
    mask = np.array([[True, True], [True, False], [False, True]])[:b]
    with torch.no_grad():
        out = model(make_batch(b, GRID, modality_mask=mask))
    assert out.shape == (b,) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_paper_configuration_builds_the_full_size_classes() -> None:
    from kedro.config import OmegaConfigLoader

    from tle_kedro.settings import CONFIG_LOADER_ARGS

    args = {**CONFIG_LOADER_ARGS, "default_run_env": "paper"}
    raw = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env="paper", **args)["parameters"]
    config = ModelConfig.model_validate({**raw["modeling"]["model"], "grid_shape": GRID})
    assert config.widths == (64, 128, 256, 512) and config.conv1_stride == 1
    torch.manual_seed(0)
    model = build_model("transeprelap", config, N_NUMERIC, CARDINALITIES).eval()
    assert model.encoders is not None
    assert model.encoders.encoders["t1"].net.layer4[0].conv1.out_channels == 512
    with torch.no_grad():
        out = model(make_batch(2, GRID))
    assert out.shape == (2,) and torch.isfinite(out).all()


def test_heads_must_divide_the_token_width() -> None:
    with pytest.raises(ValidationError, match="divisible by n_heads"):
        ModelConfig(d_model=30, n_heads=4)


def test_switching_everything_off_is_an_error() -> None:
    with pytest.raises(ValidationError, match="nothing to model"):
        ModelConfig(use_t1=False, use_pet=False, use_clinical=False)


def test_unknown_field_and_kind_are_rejected() -> None:
    with pytest.raises(ValidationError, match="d_modle"):
        ModelConfig.model_validate({"d_modle": 8})
    with pytest.raises(ValueError, match="unknown model kind 'cnn'"):
        build_model("cnn", tiny(), N_NUMERIC, CARDINALITIES)  # type: ignore[arg-type]


def test_image_only_model_needs_an_image_modality() -> None:
    with pytest.raises(ValueError, match="needs use_t1 or use_pet"):
        build_model("resnet_image", tiny(use_t1=False, use_pet=False), 0, [])


def test_grid_mismatch_names_the_configuration_fix() -> None:
    model = build_model("transeprelap", tiny(grid_shape=(24, 24, 24)), N_NUMERIC, CARDINALITIES)
    with pytest.raises(ValueError, match="grid_shape"):
        model.eval()(make_batch(1, GRID))


def test_model_config_imports_no_model() -> None:
    tree = ast.parse(Path(config_module.__file__ or "").read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in imported if m.startswith("tle_kedro.models")}


def test_models_pickled_before_the_config_moved_still_load() -> None:
    from tle_kedro.models import factory

    # such a pickle names tle_kedro.models.factory.ModelConfig
    new = pickle.dumps(tiny(), protocol=2)
    old = new.replace(
        b"tle_kedro.models.config\nModelConfig", b"tle_kedro.models.factory\nModelConfig"
    )
    assert old != new and pickle.loads(old) == tiny()
    assert factory.ModelConfig is ModelConfig
