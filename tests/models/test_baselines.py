from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.models import CARDINALITIES, N_NUMERIC, make_batch, single_thread  # noqa: F401
from tle_kedro.models.baselines import LateFusion, ResNetImageOnly, clinical_vector
from tle_kedro.models.batch import SurvivalBatch
from tle_kedro.models.config import ModelConfig

pytestmark = pytest.mark.usefixtures("single_thread")

GRID = (16, 16, 16)
# without region measures: the pooled image features alone
CONFIG = ModelConfig(
    grid_shape=GRID,
    widths=(4, 4, 8, 8),
    d_model=8,
    dropout=0.0,
    region_tokens=False,
    region_linear=False,
)


def test_clinical_vector_has_missing_indicators_and_one_hot_codes() -> None:
    num = torch.tensor([[1.5, math.nan]])
    cat = torch.tensor([[1, -1]])
    vec = clinical_vector(num, cat, [2, 3])
    #                  values      indicators  cat0 one-hot  cat1 (missing)
    assert vec.tolist() == [[1.5, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="column 1 has codes outside"):
        clinical_vector(num, torch.tensor([[0, 3]]), [2, 3])


@pytest.mark.parametrize("cls", [ResNetImageOnly, LateFusion])
@pytest.mark.parametrize("train", [False, True])
def test_masked_modality_content_does_not_change_the_risk(cls: type, train: bool) -> None:
    torch.manual_seed(0)
    model = cls(CONFIG) if cls is ResNetImageOnly else cls(CONFIG, N_NUMERIC, CARDINALITIES)
    model.train(train)
    batch = make_batch(3, GRID, modality_mask=np.array([[True, True], [True, False], [True, True]]))
    images = batch.images.clone()
    images[1, 1] = 9.0
    with torch.no_grad():
        a, b = model(batch), model(batch.with_images(images))
    torch.testing.assert_close(a, b)


def test_image_only_ignores_clinical_data_and_late_fusion_uses_it() -> None:
    torch.manual_seed(0)
    image_only = ResNetImageOnly(CONFIG).eval()
    fusion = LateFusion(CONFIG, N_NUMERIC, CARDINALITIES).eval()
    batch = make_batch(2, GRID)
    other = SurvivalBatch(batch.images, batch.modality_mask, batch.clin_num + 1.0, batch.clin_cat)
    with torch.no_grad():
        torch.testing.assert_close(image_only(batch), image_only(other))
        assert not torch.allclose(fusion(batch), fusion(other))


def test_pooled_features_are_zero_with_a_zero_flag_for_an_absent_modality() -> None:
    torch.manual_seed(0)
    model = ResNetImageOnly(CONFIG).eval()
    batch = make_batch(2, GRID, modality_mask=np.array([[True, False], [True, True]]))
    with torch.no_grad():
        feats = model.features(batch)  # (B, 2 * (8 + 1)): t1 features, t1 flag, pet..., pet flag
    assert feats.shape == (2, 18)
    assert feats[0, 9:].abs().sum() == 0 and feats[1, 17] == 1 and feats[0, 8] == 1


def test_late_fusion_checks_the_clinical_columns() -> None:
    model = LateFusion(CONFIG, N_NUMERIC + 1, CARDINALITIES).eval()
    with pytest.raises(ValueError, match="built for 4 numeric"):
        model(make_batch(1, GRID))
