from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from tests.models import make_batch
from tle_kedro.models.batch import SurvivalBatch
from tle_kedro.models.ensemble import MeanEnsemble, Recalibrated


class _Const(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, batch: SurvivalBatch) -> torch.Tensor:
        return batch.images.flatten(1).mean(1) + self.value


def test_recalibrated_scales_the_log_risk_and_keeps_its_order() -> None:
    batch = make_batch(5)
    inner = MeanEnsemble([_Const(0.0), _Const(2.0)])
    model = Recalibrated(inner, 0.4)
    torch.testing.assert_close(model(batch), 0.4 * inner(batch))
    assert torch.equal(model(batch).argsort(), inner(batch).argsort())
    again = pickle.loads(pickle.dumps(model))
    torch.testing.assert_close(again(batch), model(batch))


@pytest.mark.parametrize("slope", [0.0, -1.0, float("nan")])
def test_recalibrated_needs_a_positive_slope(slope: float) -> None:
    with pytest.raises(ValueError, match="> 0"):
        Recalibrated(_Const(0.0), slope)
