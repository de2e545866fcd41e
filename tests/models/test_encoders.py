from __future__ import annotations

import pytest
import torch

from tle_kedro.models.encoders import ModalityEncoders, ResNetEncoder, drop_modalities


@pytest.mark.parametrize(
    ("grid", "stride", "no_max_pool", "expected_grid"),
    [
        ((16, 16, 16), 2, False, (1, 1, 1)),
        ((24, 16, 16), 2, True, (2, 1, 1)),
        ((40, 32, 24), 2, False, (2, 1, 1)),
        ((40, 32, 24), 2, True, (3, 2, 2)),
        ((16, 16, 16), 1, False, (1, 1, 1)),
        ((32, 24, 16), 1, False, (2, 2, 1)),
    ],
)
def test_encoder_returns_a_token_grid_of_the_predicted_shape(
    grid: tuple[int, int, int],
    stride: int,
    no_max_pool: bool,
    expected_grid: tuple[int, int, int],
) -> None:
    enc = ResNetEncoder(widths=(4, 4, 8, 8), conv1_stride=stride, no_max_pool=no_max_pool).eval()
    tokens, token_grid = enc(torch.randn(2, 1, *grid))
    n = expected_grid[0] * expected_grid[1] * expected_grid[2]
    assert token_grid == expected_grid == enc.token_grid(grid)
    assert tokens.shape == (2, n, 8)


def test_channels_last_gives_the_same_features() -> None:
    torch.manual_seed(0)
    cl = ResNetEncoder(widths=(4, 4, 8, 8), channels_last=True).eval()
    plain = ResNetEncoder(widths=(4, 4, 8, 8), channels_last=False).eval()
    plain.load_state_dict(cl.state_dict())
    x = torch.randn(2, 1, 24, 16, 16)
    assert cl.net.conv1.weight.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(cl(x)[0], plain(x)[0], rtol=1e-4, atol=1e-5)


def test_encoder_rejects_a_wrong_number_of_stages() -> None:
    with pytest.raises(ValueError, match="4 stages"):
        ResNetEncoder(widths=(4, 8, 16))


def test_absent_modality_is_zero_and_does_not_touch_batch_statistics() -> None:
    torch.manual_seed(0)
    encoders = ModalityEncoders(["t1", "pet"], widths=(4, 4, 8, 8)).train()
    images = torch.randn(3, 2, 16, 16, 16)
    present = torch.tensor([[True, True], [True, False], [False, True]])
    out = encoders(images, present)
    assert torch.all(out["pet"][1] == 0) and torch.all(out["t1"][2] == 0)
    noisy = images.clone()
    noisy[1, 1] = 100.0  # content of the absent PET of patient 1
    noisy[2, 0] = -7.0  # content of the absent T1 of patient 2
    torch.manual_seed(0)
    again = encoders(noisy, present)  # train mode: BatchNorm uses batch statistics
    torch.testing.assert_close(again["t1"], out["t1"])
    torch.testing.assert_close(again["pet"], out["pet"])


def test_only_the_used_modalities_get_an_encoder() -> None:
    encoders = ModalityEncoders(["pet"], widths=(4, 4, 8, 8))
    assert list(encoders.encoders) == ["pet"]
    out = encoders(torch.randn(2, 2, 16, 16, 16), torch.ones(2, 2, dtype=torch.bool))
    assert set(out) == {"pet"}
    with pytest.raises(ValueError, match="unknown modalities"):
        ModalityEncoders(["ct"])


def test_modality_dropout_drops_at_most_one_of_two_present_modalities() -> None:
    torch.manual_seed(0)
    present = torch.tensor([[True, True]] * 50 + [[True, False], [False, True]])
    dropped = drop_modalities(present, 1.0, ("t1", "pet"))
    assert dropped[:50].sum(dim=1).tolist() == [1] * 50
    assert 0 < int(dropped[:50, 0].sum()) < 50  # both modalities get dropped sometimes
    assert torch.equal(dropped[50:], present[50:])  # a lone modality is never dropped
    assert torch.equal(drop_modalities(present, 0.0, ("t1", "pet")), present)
    assert torch.equal(drop_modalities(present, 1.0, ("t1",)), present)


def test_the_asymmetry_channel_is_the_left_right_difference() -> None:
    from tle_kedro.models.encoders import with_asymmetry

    x = torch.randn(3, 1, 6, 5, 4)
    out = with_asymmetry(x)
    assert out.shape == (3, 2, 6, 5, 4)
    torch.testing.assert_close(out[:, :1], x)
    torch.testing.assert_close(out[:, 1:], x - x.flip(dims=[2]))
    # antisymmetric: mirroring the input negates the difference map
    torch.testing.assert_close(with_asymmetry(x.flip(dims=[2]))[:, 1:], -out[:, 1:])
    symmetric = x + x.flip(dims=[2])
    assert torch.count_nonzero(with_asymmetry(symmetric)[:, 1]) == 0


def test_an_encoder_with_the_asymmetry_channel_takes_one_image_and_sees_two_channels() -> None:
    enc = ResNetEncoder(widths=(4, 4, 8, 8), asymmetry_channel=True).eval()
    assert enc.net.conv1.in_channels == 2
    tokens, grid = enc(torch.randn(2, 1, 16, 16, 16))
    assert tokens.shape == (2, grid[0] * grid[1] * grid[2], 8)
    legacy = ResNetEncoder(widths=(4, 4, 8, 8)).eval()
    del legacy.__dict__["asymmetry_channel"]  # an encoder pickled before the option existed
    assert legacy(torch.randn(2, 1, 16, 16, 16))[0].shape[0] == 2
