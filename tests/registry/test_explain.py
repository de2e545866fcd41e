"""Attribution maps, input contributions and the per-patient figure (slim TransEpRelap)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tests.conftest import one_torch_thread
from tests.registry import fit_tiny
from tests.training import tiny_cohort
from tle_kedro.models.ensemble import Recalibrated
from tle_kedro.registry.explain import (
    INPUTS,
    attribution_maps,
    explain,
    modality_contributions,
    patient_figure,
    temporal_slices,
)
from tle_kedro.training.data import SurvivalArrays

SHAPE = (16, 12, 8)


@pytest.fixture(scope="module")
def fitted_and_arrays() -> Iterator[tuple[torch.nn.Module, SurvivalArrays]]:
    with one_torch_thread():
        cohort = tiny_cohort(8, shape=SHAPE)
        cohort.images.index.loc[1, "has_pet"] = False
        cohort.images.volumes[1, 1] = 0.0
        fitted = fit_tiny(cohort.clinical, cohort.images)
        ids = list(cohort.clinical["participant_id"])
        yield fitted.model, fitted.arrays(ids, cohort.images, cohort.clinical)


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_maps_have_the_image_shape_and_are_not_constant(fitted_and_arrays, method: str) -> None:  # type: ignore[no-untyped-def]
    model, arrays = fitted_and_arrays
    maps = attribution_maps(model, arrays.batch([0]), method, n_steps=8, window=4, stride=4)  # type: ignore[arg-type]
    assert maps.shape == (2, *SHAPE)
    assert maps.dtype == np.float32
    for channel in range(2):
        assert np.isfinite(maps[channel]).all()
        assert maps[channel].std() > 0


def test_integrated_gradients_complete_to_the_risk_difference(fitted_and_arrays) -> None:  # type: ignore[no-untyped-def]
    model, arrays = fitted_and_arrays
    batch = arrays.batch([0])
    maps = attribution_maps(model, batch, n_steps=64)
    with torch.no_grad():
        risk = float(model(batch)[0])
        zero = float(model(batch.with_images(torch.zeros_like(batch.images)))[0])
    # Completeness axiom (Sundararajan et al. 2017), up to the path discretisation.
    assert maps.sum() == pytest.approx(risk - zero, abs=0.05 + 0.1 * abs(risk - zero))


def test_a_missing_modality_gets_a_zero_map_and_no_contribution(fitted_and_arrays) -> None:  # type: ignore[no-untyped-def]
    model, arrays = fitted_and_arrays
    result = explain(model, arrays.batch([1]), n_steps=8)
    assert not result.attributions[1].any()
    assert result.attributions[0].std() > 0
    assert result.contributions["PET"] == 0.0
    assert result.shares["PET"] == 0.0


def test_shares_sum_to_one_and_contributions_are_risk_changes(fitted_and_arrays) -> None:  # type: ignore[no-untyped-def]
    model, arrays = fitted_and_arrays
    batch = arrays.batch([2])
    risk, contributions, shares = modality_contributions(model, batch)
    assert set(shares) == set(INPUTS)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert all(0.0 <= s <= 1.0 for s in shares.values())
    masked = batch.with_images(batch.images.clone())
    masked.images[:, 1] = 0.0
    masked.modality_mask[:, 1] = False
    with torch.no_grad():
        without_pet = float(model(masked)[0])
    assert contributions["PET"] == pytest.approx(risk - without_pet, abs=1e-5)


def test_more_than_one_patient_is_refused(fitted_and_arrays) -> None:  # type: ignore[no-untyped-def]
    model, arrays = fitted_and_arrays
    with pytest.raises(ValueError, match="one patient"):
        attribution_maps(model, arrays.batch([0, 1]))


def test_slices_go_through_the_temporal_lobes_on_an_mni_grid() -> None:
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [-72.0, -64.0, -48.0]  # the default crop box origin
    z, y = temporal_slices(affine, (40, 32, 24))
    assert -48 + 4 * z == pytest.approx(-11, abs=4)  # left hippocampus centroid (AAL2)
    assert -64 + 4 * y == pytest.approx(-21, abs=4)
    assert temporal_slices(np.eye(4), (4, 4, 4)) == (2, 2)  # outside the grid: middle slices


def test_patient_figure_has_curve_contributions_and_four_slices(fitted_and_arrays) -> None:  # type: ignore[no-untyped-def]
    model, arrays = fitted_and_arrays
    result = explain(model, arrays.batch([1]), n_steps=4)
    times = np.linspace(0, 36, 50)
    fig = patient_figure(
        "sub-001",
        result,
        arrays.images[1].numpy(),
        np.eye(4),
        times,
        np.exp(-times / 30),
        {
            "risk_group": "high",
            "p_recurrence_12": 0.3,
            "p_recurrence_24": 0.5,
            "modalities_used": "T1+clinical",
        },
    )
    assert isinstance(fig, Figure)
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "risk group: high" in titles
    assert "T1 axial" in titles and "T1 coronal" in titles
    assert "attention: top 3 of 3 tokens" in titles  # rollout panel (T1, PET, clinical token)
    assert any(t.get_text() == "PET missing" for ax in fig.axes for t in ax.texts)


def test_without_an_explanation_the_report_shows_the_prediction_and_says_how_to_ask(
    fitted_and_arrays,
) -> None:  # type: ignore[no-untyped-def]
    _, arrays = fitted_and_arrays
    times = np.linspace(0, 36, 50)
    fig = patient_figure(
        "sub-001", None, arrays.images[1].numpy(), np.eye(4), times, np.exp(-times / 30),
        {"risk_group": "low", "p_recurrence_12": 0.3, "p_recurrence_24": 0.5,
         "modalities_used": "T1+clinical"},
    )  # fmt: skip
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "risk group: low" in titles and "T1 axial" in titles
    assert "attention" not in titles and "contribution" not in titles.lower()
    assert any("inference.explain=true" in t for t in texts)
    assert fig._suptitle.get_text() == "sub-001: predicted recurrence risk"
    # the slices show the images alone: one image layer per slice, no attribution overlay
    slices = [ax for ax in fig.axes if "axial" in ax.get_title() or "coronal" in ax.get_title()]
    assert slices and all(len(ax.images) == 2 for ax in slices)
    assert all(ax.images[1].get_array().mask.all() for ax in slices)


def test_the_12_and_24_month_labels_do_not_overlap_when_the_risks_are_equal(
    fitted_and_arrays,
) -> None:  # type: ignore[no-untyped-def]
    model, arrays = fitted_and_arrays
    result = explain(model, arrays.batch([1]), n_steps=2)
    times = np.linspace(0, 36, 50)
    flat = np.where(times < 12, np.exp(-times / 30), np.exp(-12 / 30))  # no event after 12 mo
    p = 1 - float(np.exp(-12 / 30))
    fig = patient_figure(
        "sub-001", result, arrays.images[1].numpy(), np.eye(4), times, flat,
        {"risk_group": "low", "p_recurrence_12": p, "p_recurrence_24": p,
         "modalities_used": "T1+PET+clinical"},
    )  # fmt: skip
    renderer = FigureCanvasAgg(fig).get_renderer()
    labels = [
        t.get_window_extent(renderer)
        for ax in fig.axes
        for t in ax.texts
        if t.get_text().startswith("P(recurrence by")
    ]
    assert len(labels) == 2
    assert not labels[0].overlaps(labels[1])


def test_a_recalibrated_model_explains_in_its_own_scaled_units(fitted_and_arrays) -> None:  # type: ignore[no-untyped-def]
    model, arrays = fitted_and_arrays
    batch = arrays.batch([2])
    scaled = Recalibrated(model, 0.5).eval()
    raw = explain(model, batch, "integrated_gradients", n_steps=4)
    half = explain(scaled, batch, "integrated_gradients", n_steps=4)
    assert half.risk == pytest.approx(0.5 * raw.risk, abs=1e-6)
    for name in INPUTS:
        assert half.contributions[name] == pytest.approx(0.5 * raw.contributions[name], abs=1e-6)
        assert half.shares[name] == pytest.approx(raw.shares[name], abs=1e-6)
    np.testing.assert_allclose(half.attributions, 0.5 * raw.attributions, rtol=1e-4, atol=1e-7)
