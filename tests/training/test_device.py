"""Device and precision resolution."""

from __future__ import annotations

import pytest
import torch

from tle_kedro.training.device import eval_mode, resolve_device


@pytest.mark.parametrize("requested", ["cpu", "auto"])
@pytest.mark.parametrize("amp", [True, False])
def test_cpu_is_fp32_channels_last_never_bf16(
    requested: str, amp: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    setup = resolve_device(requested, amp=amp)  # type: ignore[arg-type]
    assert setup.device.type == "cpu"
    assert setup.amp_dtype is None
    assert setup.memory_format == torch.channels_last_3d
    assert not setup.needs_grad_scaler
    with setup.autocast():
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_images_are_moved_in_channels_last_3d() -> None:
    setup = resolve_device("cpu")
    x = setup.images_to_device(torch.zeros(2, 2, 4, 5, 6))
    assert x.is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.parametrize(("bf16", "dtype"), [(True, torch.bfloat16), (False, torch.float16)])
def test_cuda_uses_amp_with_the_supported_half_type(
    bf16: bool, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    setup = resolve_device("auto", amp=True)
    assert setup.device.type == "cuda"
    assert setup.amp_dtype == dtype
    assert setup.needs_grad_scaler == (dtype == torch.float16)
    assert resolve_device("cuda", amp=False).amp_dtype is None


def test_cuda_requested_without_cuda_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="must be 'auto'"):
        resolve_device("tpu")  # type: ignore[arg-type]


def test_eval_mode_restores_training_mode() -> None:
    model = torch.nn.Dropout(0.5)
    model.train()
    with eval_mode(model):
        assert not model.training
        assert not torch.is_grad_enabled()
    assert model.training
