from __future__ import annotations

import numpy as np
import pytest
import torch
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.util import Surv

from tests.models import CARDINALITIES, N_NUMERIC
from tests.models.test_transeprelap import GRID
from tests.models.test_transeprelap import tiny_config as _config
from tle_kedro.models.factory import build_model
from tle_kedro.training.data import SurvivalArrays
from tle_kedro.training.warm_start import core_model, warm_start_from_cox


def _arrays(n: int = 60, seed: int = 0) -> SurvivalArrays:
    """PET whose left-right contrast drives the hazard; side code in clin_cat column 0."""
    rng = np.random.default_rng(seed)
    images = rng.normal(1.0, 0.05, size=(n, 2, *GRID)).astype(np.float32)
    signal = rng.normal(size=n)
    images[:, 1, : GRID[0] // 2] *= (1 + 0.1 * signal)[:, None, None, None]  # one hemisphere
    mask = np.ones((n, 2), dtype=bool)
    mask[:5, 1] = False  # five patients without PET
    images[:5, 1] = 0.0
    time = rng.exponential(np.exp(-signal)) * 12 + 0.5
    event = rng.random(n) < 0.7
    cat = np.stack([rng.integers(0, 2, n), rng.integers(0, 3, n)], axis=1)
    return SurvivalArrays(
        participant_ids=tuple(f"sub-{i:03d}" for i in range(n)),
        images=torch.from_numpy(images),
        modality_mask=torch.from_numpy(mask),
        clin_num=torch.from_numpy(rng.normal(size=(n, N_NUMERIC)).astype(np.float32)),
        clin_cat=torch.from_numpy(cat.astype(np.int64)),
        time=torch.from_numpy(time.astype(np.float32)),
        event=torch.from_numpy(event),
    )


@pytest.mark.parametrize("basis", ["linear", "hinge"])
def test_warm_started_model_starts_exactly_at_the_ridge_cox_fit(basis: str) -> None:
    torch.manual_seed(0)
    config = _config(region_linear_basis=basis)
    model = build_model("transeprelap", config, N_NUMERIC, CARDINALITIES, side_index=0)
    arrays = _arrays()
    alpha = warm_start_from_cox(model, arrays, side_index=0, penalizers=[1.0], seed=0)
    assert alpha == 1.0
    core = core_model(model)
    # the same ridge Cox, fitted here from the model's own standardised measures
    right = arrays.clin_cat[:, 0] == 1
    blocks = []
    for m, channel in (("t1", 0), ("pet", 1)):
        block = core.measures[m]
        raw = block.measures(arrays.images[:, channel : channel + 1], right)
        present = arrays.modality_mask[:, channel].unsqueeze(1)
        z_m = (block.standardise(raw) * present).double().detach().numpy()
        if basis == "hinge":  # written out here, not by the code under test
            z_m = np.concatenate([np.maximum(z_m, 0), np.maximum(-z_m, 0)], axis=1)
        blocks.append(z_m)
    z = np.concatenate(blocks, axis=1)
    n_measures = sum(len(core.measures[m].names) for m in ("t1", "pet"))
    assert z.shape[1] == (2 if basis == "hinge" else 1) * n_measures
    y = Surv.from_arrays(arrays.event.numpy(), arrays.time.numpy())
    expected = CoxPHSurvivalAnalysis(alpha=1.0, ties="efron", n_iter=200).fit(z, y).predict(z)
    model.eval()
    with torch.no_grad():
        got = model(arrays.batch()).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
    # frozen: the linear term gets no gradient, the statistics do not move in training
    assert all(not lin.weight.requires_grad for lin in core.region_linear.values())
    before = core.measures["pet"].norm.running_mean.clone()
    model.train()
    model(arrays.batch(np.arange(16))).sum().backward()
    torch.testing.assert_close(core.measures["pet"].norm.running_mean, before)
    assert core.head[-1].weight.grad is not None  # the residual path learns


def test_penalty_is_chosen_by_inner_cross_validation_among_the_candidates() -> None:
    torch.manual_seed(0)
    model = build_model("transeprelap", _config(), N_NUMERIC, CARDINALITIES, side_index=0)
    alpha = warm_start_from_cox(model, _arrays(80), 0, penalizers=[0.01, 1.0, 1e4], seed=0)
    assert alpha in (0.01, 1.0, 1e4)
    strong = build_model("transeprelap", _config(), N_NUMERIC, CARDINALITIES, side_index=0)
    warm_start_from_cox(strong, _arrays(80), 0, penalizers=[1e6], seed=0)
    weights = torch.cat([w.weight.flatten() for w in core_model(strong).region_linear.values()])
    assert float(weights.abs().max()) < 1e-2  # a huge ridge penalty shrinks w to ~0


def test_a_model_without_a_linear_term_is_an_error() -> None:
    model = build_model(
        "transeprelap",
        _config(region_linear=False),
        N_NUMERIC,
        CARDINALITIES,
        side_index=0,
    )
    with pytest.raises(ValueError, match="region_linear: true"):
        warm_start_from_cox(model, _arrays(), 0, [1.0], 0)
