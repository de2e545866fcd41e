"""Region measures from other images than the network sees (``train.augment.measures_from``).

In training with ``measures_from: original`` the encoders see the augmented images while the
atlas region measures (region tokens, linear term, the baselines' pooled measures) are
computed from the un-augmented ones, mirrored like them for right-operated patients.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tests.models import CARDINALITIES, N_NUMERIC, make_batch, single_thread  # noqa: F401
from tests.models.test_transeprelap import GRID, tiny_config
from tle_kedro.models.batch import SurvivalBatch
from tle_kedro.models.factory import build_model
from tle_kedro.transforms.augment import AugmentConfig, measure_images

pytestmark = pytest.mark.usefixtures("single_thread")

SIDE = 0  # operative side = clin_cat column 0 (cardinality 2: 0 = left, 1 = right)


def _measured(model: torch.nn.Module, batch: SurvivalBatch) -> dict[str, torch.Tensor]:
    """The standardised measures each measure module returned for ``batch`` (eval mode)."""
    seen: dict[str, torch.Tensor] = {}
    core: Any = getattr(model, "model", model)
    core = getattr(core, "features", core)  # the baselines keep them in their pooled features
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, out.detach().clone())
        )
        for name, module in core.measures.items()
    ]
    try:
        with torch.no_grad():
            model.eval()(batch)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def _sided_batch() -> SurvivalBatch:
    batch = make_batch(4, GRID, seed=3)
    cat = batch.clin_cat.clone()
    cat[:, SIDE] = torch.tensor([0, 1, 1, 0])  # two right-operated patients: mirrored
    return batch.with_clin_cat(cat)


@pytest.mark.parametrize("kind", ["transeprelap", "resnet_image"])
def test_measures_come_from_measure_images_and_the_encoders_from_images(kind: str) -> None:
    torch.manual_seed(0)
    model = build_model(kind, tiny_config(), N_NUMERIC, CARDINALITIES, SIDE)
    batch = _sided_batch()
    changed = batch.images * 1.3 + 0.2  # an intensity change the measures would follow
    original = _measured(model, batch)
    assert set(original) == {"t1", "pet"}
    followed = _measured(model, batch.with_images(changed))
    kept = _measured(model, batch.with_images(changed, measure_images=batch.images))
    for m in original:
        assert not torch.allclose(followed[m], original[m])
        torch.testing.assert_close(kept[m], original[m])  # through the mirror and back
    with torch.no_grad():
        risk_kept = model(batch.with_images(changed, measure_images=batch.images))
        risk_original = model(batch)
    assert not torch.allclose(risk_kept, risk_original)  # the encoders saw the change


def test_measure_images_must_match_the_images() -> None:
    batch = make_batch(2, GRID)
    with pytest.raises(ValueError, match="measure_images must have the shape of images"):
        batch.with_images(batch.images, measure_images=batch.images[:1])
    moved = batch.with_images(batch.images * 2, measure_images=batch.images).select([1])
    torch.testing.assert_close(moved.measure_source, batch.images[1:])
    assert torch.equal(moved.to("cpu").measure_source, moved.measure_source)


def test_original_measure_images_are_flipped_with_the_flipped_patients() -> None:
    images = torch.randn(3, 2, 6, 4, 4)
    flipped = torch.tensor([False, True, False])
    config = AugmentConfig(measures_from="original")
    out = measure_images(images, flipped, config)
    assert out is not None
    assert torch.equal(out[0], images[0]) and torch.equal(out[2], images[2])
    assert torch.equal(out[1], images[1].flip(dims=[1]))  # per patient: dim 1 = RAS x
    assert measure_images(images, flipped, AugmentConfig()) is None  # default: augmented
    off = AugmentConfig(measures_from="original", enabled=False)
    assert measure_images(images, flipped, off) is None
