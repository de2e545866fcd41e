"""Where and in which precision a model trains.

CUDA: mixed precision (bf16 when the GPU supports it, else fp16 with a gradient scaler) and
``channels_last_3d``. CPU: fp32 and ``channels_last_3d``; never bf16, which is ~30x slower on
the reference CPU (measured for issue 4).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceSetup:
    """Resolved device and precision.

    Attributes:
        device: where tensors and the model live.
        amp_dtype: autocast dtype (``torch.bfloat16``/``torch.float16``) or None for fp32.
        memory_format: layout of 5-D tensors (images, conv weights).
    """

    device: torch.device
    amp_dtype: torch.dtype | None
    memory_format: torch.memory_format = torch.channels_last_3d

    @property
    def needs_grad_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 and fp32 do not."""
        return self.amp_dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """Autocast context for the forward pass (a no-op in fp32)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def images_to_device(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, D, H, W) → device, in ``memory_format``."""
        return images.to(self.device, non_blocking=True).contiguous(
            memory_format=self.memory_format
        )


def resolve_device(
    requested: Literal["auto", "cpu", "cuda"] = "auto", amp: bool = True
) -> DeviceSetup:
    """Resolve ``auto`` to CUDA when available, else CPU, and pick the precision.

    Raises:
        ValueError: ``cuda`` requested on a machine without CUDA, or an unknown device name.
    """
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {requested!r}")
    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise ValueError("device 'cuda' requested but CUDA is not available: use 'auto' or 'cpu'")
    if requested == "cpu" or not has_cuda:
        setup = DeviceSetup(torch.device("cpu"), amp_dtype=None)
    else:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        setup = DeviceSetup(torch.device("cuda"), amp_dtype=dtype if amp else None)
    assert not (setup.device.type == "cpu" and setup.amp_dtype is not None), "no AMP on CPU"
    logger.info("training on %s, amp=%s", setup.device, setup.amp_dtype)
    return setup


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Temporarily put ``model`` in eval mode with gradients off, restoring its mode after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)
