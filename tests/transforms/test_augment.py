from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch.nn import functional as F

from tle_kedro.transforms.augment import (
    AugmentConfig,
    affine_theta,
    augment_batch,
    build_transform,
    swap_side_codes,
)

SHAPE = (3, 2, 16, 16, 16)
SPATIAL_ONLY = {"log_gamma": 0.0, "bias_field": 0.0, "noise_std": 0.0}


def blob_batch(b: int = 3) -> torch.Tensor:
    """(B, 2, 16, 16, 16) with the same asymmetric blob in both channels."""
    vol = torch.zeros(16, 16, 16)
    vol[3:9, 5:12, 4:10] = 1.0
    vol[3:5, 5:7, 4:6] = 2.0
    return vol.expand(b, 2, 16, 16, 16).clone()


@pytest.mark.parametrize("backend", ["torchio", "torch"])
def test_spatial_draw_is_the_same_for_t1_and_pet(backend: str) -> None:
    images = blob_batch()
    config = AugmentConfig(strength=3.0, backend=backend, p_augment=1.0, **SPATIAL_ONLY)
    out, _ = augment_batch(images, torch.ones(3, 2, dtype=torch.bool), config, seed=0)
    assert not torch.allclose(out, images)  # something moved
    torch.testing.assert_close(out[:, 0], out[:, 1])  # ... and both modalities moved together
    assert not torch.allclose(out[0, 0], out[1, 0])  # each patient gets its own draw


@pytest.mark.parametrize("backend", ["torchio", "torch"])
def test_intensity_draws_differ_between_modalities(backend: str) -> None:
    images = blob_batch()
    config = AugmentConfig(
        degrees=0, scales=0, translation=0, noise_std=0.0, backend=backend, p_augment=1.0
    )
    out, _ = augment_batch(images, torch.ones(3, 2, dtype=torch.bool), config, seed=1)
    assert not torch.allclose(out[:, 0], out[:, 1])


def test_flip_mirrors_axis_0_and_the_side_code_swaps_with_it() -> None:
    images = blob_batch()
    config = AugmentConfig(strength=0.0, flip_lr=True, flip_probability=1.0)
    out, flipped = augment_batch(images, torch.ones(3, 2, dtype=torch.bool), config, seed=0)
    assert flipped.tolist() == [True, True, True]
    torch.testing.assert_close(out, images.flip(dims=[2]))  # dim 2 = volume axis 0 = RAS x
    clin_cat = torch.tensor([[0, 2], [1, 0], [-1, 1]])
    swapped = swap_side_codes(clin_cat, side_index=0, flipped=torch.tensor([True, True, False]))
    assert swapped.tolist() == [[1, 2], [0, 0], [-1, 1]]
    assert clin_cat.tolist() == [[0, 2], [1, 0], [-1, 1]]  # input untouched


def test_flip_is_on_by_default_and_off_flips_nothing() -> None:
    assert AugmentConfig().flip_lr  # the default since confirmation round 4 (docs/modeling.md)
    images = blob_batch()
    config = AugmentConfig(strength=0.0, flip_lr=False, flip_probability=1.0)
    out, flipped = augment_batch(images, torch.ones(3, 2, dtype=torch.bool), config, seed=0)
    assert not flipped.any()
    torch.testing.assert_close(out, images)


def test_swap_side_codes_rejects_a_non_binary_column() -> None:
    with pytest.raises(ValueError, match="codes 0/1"):
        swap_side_codes(torch.tensor([[2]]), 0, torch.tensor([True]))
    with pytest.raises(ValueError, match="outside clin_cat"):
        swap_side_codes(torch.tensor([[0]]), 1, torch.tensor([True]))


def test_evaluation_path_does_not_augment() -> None:
    images = torch.randn(SHAPE)
    mask = torch.ones(3, 2, dtype=torch.bool)
    config = AugmentConfig(flip_lr=True, flip_probability=1.0)
    out, flipped = augment_batch(images, mask, config, seed=0, training=False)
    assert out is images and not flipped.any()
    out, _ = augment_batch(images, mask, AugmentConfig(enabled=False), seed=0)
    assert out is images


@pytest.mark.parametrize("backend", ["torchio", "torch"])
def test_missing_modality_stays_zero_and_input_is_not_modified(backend: str) -> None:
    images = torch.randn(SHAPE)
    images[1, 1] = 0.0
    mask = torch.tensor([[True, True], [True, False], [True, True]])
    before = images.clone()
    out, _ = augment_batch(images, mask, AugmentConfig(noise_std=0.5, backend=backend), seed=0)
    assert torch.all(out[1, 1] == 0)
    assert out[1, 0].abs().sum() > 0
    torch.testing.assert_close(images, before)


@pytest.mark.parametrize("backend", ["torchio", "torch"])
def test_same_seed_same_output_and_global_rng_untouched(backend: str) -> None:
    images = torch.randn(SHAPE)
    mask = torch.ones(3, 2, dtype=torch.bool)
    config = AugmentConfig(backend=backend)
    torch.manual_seed(123)
    a, _ = augment_batch(images, mask, config, seed=5)
    after_a = torch.rand(1)
    torch.manual_seed(123)
    b, _ = augment_batch(images, mask, config, seed=5)
    assert torch.equal(a, b) and torch.equal(torch.rand(1), after_a)
    c, _ = augment_batch(images, mask, config, seed=6)
    assert not torch.equal(a, c)


def test_p_augment_zero_leaves_images_alone_and_strength_zero_builds_nothing() -> None:
    images = torch.randn(SHAPE)
    config = AugmentConfig(p_augment=0, flip_lr=False)
    out, _ = augment_batch(images, torch.ones(3, 2, dtype=torch.bool), config)
    torch.testing.assert_close(out, images)
    assert build_transform(AugmentConfig(strength=0.0)) is None


def test_affine_theta_shifts_along_the_volume_axes_in_voxels() -> None:
    x = torch.arange(7 * 5 * 4, dtype=torch.float32).reshape(1, 1, 7, 5, 4)
    theta = affine_theta(
        torch.zeros(1, 3), torch.ones(1, 3), torch.tensor([[2.0, 0, -1]]), (7, 5, 4)
    )
    out = F.grid_sample(
        x, F.affine_grid(theta, [1, 1, 7, 5, 4], align_corners=True), align_corners=True
    )
    # output at (d, h, w) samples the input at (d + 2, h, w - 1)
    torch.testing.assert_close(out[0, 0, :5, :, 1:], x[0, 0, 2:, :, :3])


def test_elastic_needs_the_torchio_backend() -> None:
    with pytest.raises(ValidationError, match="elastic"):
        AugmentConfig(elastic=True, backend="torch")


# ---- both backends draw the same families: each family alone leaves its own signature ----
NO_AFFINE = {"degrees": 0.0, "scales": 0.0, "translation": 0.0, "flip_lr": False}
NO_INTENSITY = {"log_gamma": 0.0, "bias_field": 0.0, "noise_std": 0.0}
STRENGTH = 2.0


def _positive_batch() -> torch.Tensor:
    """(3, 2, 12, 10, 8) with values in [0.5, 1.5] (gamma and bias act on positive images)."""
    gen = torch.Generator().manual_seed(0)
    return 0.5 + torch.rand(3, 2, 12, 10, 8, generator=gen)


def _only(family: dict[str, float], backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    images = _positive_batch()
    config = AugmentConfig(
        **{**NO_AFFINE, **NO_INTENSITY, **family},
        strength=STRENGTH,
        backend=backend,
        p_augment=1.0,
    )
    out, _ = augment_batch(images, torch.ones(3, 2, dtype=torch.bool), config, seed=4)
    assert not torch.allclose(out, images)
    return images.double(), out.double()


@pytest.mark.parametrize("backend", ["torchio", "torch"])
def test_gamma_alone_is_a_power_of_each_image(backend: str) -> None:
    images, out = _only({"log_gamma": 0.1}, backend)
    for p in range(3):
        for c in range(2):
            x, y = images[p, c].flatten(), out[p, c].flatten()
            keep = x.log().abs() > 0.05
            gamma = y[keep].log() / x[keep].log()  # one exponent for the whole image
            assert float(gamma.std()) < 1e-3
            assert abs(float(gamma.mean().log())) <= 0.1 * STRENGTH + 1e-6


def _monomials(shape: tuple[int, ...]) -> torch.Tensor:
    axes = [torch.linspace(-1, 1, d, dtype=torch.float64) for d in shape]
    zz, yy, xx = torch.meshgrid(*axes, indexing="ij")
    powers = [(i, j, k) for i in range(3) for j in range(3) for k in range(3) if i + j + k <= 2]
    return torch.stack([(zz**i * yy**j * xx**k).flatten() for i, j, k in powers], dim=1)


@pytest.mark.parametrize("backend", ["torchio", "torch"])
def test_bias_field_alone_is_a_smooth_second_order_field(backend: str) -> None:
    images, out = _only({"bias_field": 0.1}, backend)
    basis = _monomials(tuple(images.shape[2:]))  # (V, 10)
    for p in range(3):
        for c in range(2):
            log_field = (out[p, c] / images[p, c]).log().flatten()  # (V,)
            coef = torch.linalg.lstsq(basis, log_field[:, None]).solution
            residual = log_field - (basis @ coef).squeeze(1)
            assert float(residual.abs().max()) < 1e-4  # exp(polynomial of degree 2)
            assert float(log_field.std()) > 1e-3  # and not constant


@pytest.mark.parametrize("backend", ["torchio", "torch"])
def test_noise_alone_is_zero_mean_white_and_bounded(backend: str) -> None:
    images, out = _only({"noise_std": 0.05}, backend)
    noise = out - images
    stds = noise.flatten(2).std(dim=2)  # (3, 2): one std per patient and modality
    assert float(stds.max()) <= 0.05 * STRENGTH * 1.1
    assert float(noise.mean().abs()) < 0.01
    # white: no correlation between neighbouring voxels (a smooth field would have ~1)
    a, b = noise[..., :-1].flatten(), noise[..., 1:].flatten()
    assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 0.1
