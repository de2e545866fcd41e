"""Ipsilateral canonicalisation: right-operated patients are mirrored inside the model."""

from __future__ import annotations

import pytest
import torch

from tests.models import CARDINALITIES, N_NUMERIC, make_batch, single_thread  # noqa: F401
from tle_kedro.models.factory import ModelConfig, build_model
from tle_kedro.models.side import IpsilateralView, ipsilateral_images

pytestmark = pytest.mark.usefixtures("single_thread")

SIDE = 0  # the operative side is clin_cat column 0 in these tests (cardinality 2)


def _config(**overrides: object) -> ModelConfig:
    values: dict[str, object] = {
        "grid_shape": (16, 16, 16),
        "widths": (4, 4, 8, 8),
        "d_model": 8,
        "region_tokens": False,  # images only: the mirror is all a patient's side changes
        "region_linear": False,
    }
    values.update(overrides)
    return ModelConfig.model_validate(values)


def test_only_right_operated_patients_are_mirrored_along_x() -> None:
    images = torch.randn(3, 2, 4, 3, 2)
    out = ipsilateral_images(images, torch.tensor([0, 1, -1]))
    assert torch.equal(out[0], images[0])
    assert torch.equal(out[1], images[1].flip(dims=[1]))  # per patient: dim 1 = x
    assert torch.equal(out[2], images[2])  # unknown side: untouched
    assert out.data_ptr() != images.data_ptr()


def test_build_model_wraps_only_when_asked_and_side_is_known() -> None:
    assert isinstance(
        build_model("transeprelap", _config(), N_NUMERIC, CARDINALITIES, SIDE), IpsilateralView
    )
    assert not isinstance(
        build_model("transeprelap", _config(), N_NUMERIC, CARDINALITIES), IpsilateralView
    )
    off = _config(ipsilateral_view=False)
    assert not isinstance(
        build_model("resnet_image", off, N_NUMERIC, CARDINALITIES, SIDE), IpsilateralView
    )


@pytest.mark.parametrize("kind", ["transeprelap", "resnet_image"])
def test_right_patient_sees_the_mirror_of_what_a_left_patient_sees(kind: str) -> None:
    torch.manual_seed(0)
    config = _config(use_clinical=False) if kind == "transeprelap" else _config()
    model = build_model(kind, config, N_NUMERIC, CARDINALITIES, SIDE).eval()  # type: ignore[arg-type]
    batch = make_batch(b=2)
    right = batch.with_clin_cat(batch.clin_cat.clone().index_fill_(1, torch.tensor([SIDE]), 1))
    left = batch.with_clin_cat(batch.clin_cat.clone().index_fill_(1, torch.tensor([SIDE]), 0))
    mirrored_left = left.with_images(batch.images.flip(dims=[2]))
    with torch.no_grad():
        risk_right = model(right)
        risk_mirrored_left = model(mirrored_left)
        risk_left = model(left)
    torch.testing.assert_close(risk_right, risk_mirrored_left)
    assert not torch.allclose(risk_right, risk_left)  # the side really matters
