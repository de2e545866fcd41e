"""3D ResNet-18 image encoders that return a grid of feature tokens.

Built on MONAI's ``ResNet`` (He et al. 2016; Hara et al. 2018, 3D ResNets). Its ``forward``
ends with global average pooling; we call its stem and four stages directly to keep the
feature map before pooling and turn it into tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from monai.networks.nets import ResNet
from torch import Tensor, nn

from tle_kedro.models.batch import MODALITIES


def _conv_out(n: int, kernel: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - kernel) // stride + 1


class ResNetEncoder(nn.Module):
    """One modality's 3D ResNet (basic blocks) returning feature tokens.

    Args:
        widths: channels of the four stages, e.g. (8, 16, 32, 64) slim, (64, 128, 256, 512) full.
        layers: basic blocks per stage; (2, 2, 2, 2) is ResNet-18.
        conv1_stride: stride of the first convolution (2 on CPU, 1 in the paper setting).
        conv1_kernel: kernel size of the first convolution.
        no_max_pool: skip the stem's max pooling (keeps a finer token grid on small crops).
        channels_last: run in ``torch.channels_last_3d`` memory format.
        asymmetry_channel: feed a second input channel, the left-right difference
            ``x - mirror(x)`` (see :func:`with_asymmetry`).
        last_stage_stride: 2 (ResNet-18) or 1: the last stage keeps the third stage's
            resolution, giving a finer token grid (3 x 2 x 2 = 12 tokens instead of 2 x 1 x 1
            on the CPU default crop) for the Transformer to attend over.
    """

    def __init__(
        self,
        widths: Sequence[int] = (8, 16, 32, 64),
        layers: Sequence[int] = (2, 2, 2, 2),
        conv1_stride: int = 2,
        conv1_kernel: int = 7,
        no_max_pool: bool = False,
        channels_last: bool = True,
        asymmetry_channel: bool = False,
        last_stage_stride: int = 2,
    ) -> None:
        super().__init__()
        if last_stage_stride not in (1, 2):
            raise ValueError(f"last_stage_stride must be 1 or 2, got {last_stage_stride}")
        if len(widths) != 4 or len(layers) != 4:
            raise ValueError(f"widths and layers need 4 stages, got {widths} and {layers}")
        self.net = ResNet(
            block="basic",
            layers=list(layers),
            block_inplanes=list(widths),
            spatial_dims=3,
            n_input_channels=2 if asymmetry_channel else 1,
            conv1_t_size=conv1_kernel,
            conv1_t_stride=conv1_stride,
            no_max_pool=no_max_pool,
            feed_forward=False,
        )
        if last_stage_stride == 1:  # the stage's first block and its shortcut stop halving
            first: Any = self.net.layer4[0]
            first.conv1.stride = (1, 1, 1)
            if first.downsample is not None:
                first.downsample[0].stride = (1, 1, 1)
        self.last_stage_stride = last_stage_stride
        self.out_channels = int(widths[-1])
        self.conv1_stride = conv1_stride
        self.conv1_kernel = conv1_kernel
        self.no_max_pool = no_max_pool
        self.channels_last = channels_last
        self.asymmetry_channel = asymmetry_channel
        if channels_last:
            self.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]

    def token_grid(self, grid_shape: Sequence[int]) -> tuple[int, int, int]:
        """Spatial shape of the feature map for an input of ``grid_shape`` (D, H, W)."""
        out = []
        for n in grid_shape:
            n = _conv_out(n, self.conv1_kernel, self.conv1_stride, self.conv1_kernel // 2)
            if not self.no_max_pool:
                n = _conv_out(n, 3, 2, 1)
            for _ in range(3 if getattr(self, "last_stage_stride", 2) == 2 else 2):
                n = _conv_out(n, 3, 2, 1)  # stages 2-4 halve the grid (3x3x3 stride-2 conv)
            out.append(n)
        return out[0], out[1], out[2]

    def feature_map(self, x: Tensor) -> Tensor:
        """x: (B, 1, D, H, W) → (B, C, d, h, w) before global pooling."""
        # getattr: encoders pickled before the option existed (registered models) have none
        if getattr(self, "asymmetry_channel", False):
            x = with_asymmetry(x)  # (B, 2, D, H, W)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        net = self.net
        x = net.act(net.bn1(net.conv1(x)))
        if not net.no_max_pool:
            x = net.maxpool(x)
        x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
        return x

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int, int]]:
        """x: (B, 1, D, H, W) → tokens (B, d*h*w, C) and the token grid (d, h, w)."""
        fmap = self.feature_map(x)  # (B, C, d, h, w)
        d, h, w = (int(s) for s in fmap.shape[2:])
        tokens = fmap.flatten(2).transpose(1, 2)  # (B, N_tokens, C), N = d*h*w in C order
        return tokens, (d, h, w)


def with_asymmetry(x: Tensor) -> Tensor:
    """(B, 1, D, H, W) → (B, 2, D, H, W): the image and its left-right difference.

    Hemispheric asymmetry is how TLE imaging is read (an FDG asymmetry index of the
    temporal lobes, hippocampal volume asymmetry); the crop is symmetric about the MNI
    midline (``crop_box_mni`` x range ±72 mm), so mirroring axis D (RAS x) maps each voxel to
    its homologue and ``x - mirror(x)`` is a voxel-wise asymmetry map. Convolutions could
    learn it only through receptive fields spanning both hemispheres, i.e. not at all in the
    early layers of a slim network on ~180 patients. Antisymmetric by construction: the
    second channel changes sign under a mirror of the input.
    """
    return torch.cat([x, x - x.flip(dims=[2])], dim=1)


class ModalityEncoders(nn.Module):
    """One :class:`ResNetEncoder` per used modality, run only on patients who have it.

    Running the encoder on the present subset keeps a missing (or dropped) modality out of
    the computation entirely, including BatchNorm's batch statistics in training, so the
    output cannot depend on what sits in a masked channel.
    """

    def __init__(self, modalities: Sequence[str], **encoder_kwargs: object) -> None:
        super().__init__()
        unknown = set(modalities) - set(MODALITIES)
        if unknown:
            raise ValueError(f"unknown modalities {sorted(unknown)}; use a subset of {MODALITIES}")
        self.modalities = tuple(m for m in MODALITIES if m in modalities)
        self.encoders = nn.ModuleDict(
            {m: ResNetEncoder(**encoder_kwargs) for m in self.modalities}  # type: ignore[arg-type]
        )

    def _first(self) -> ResNetEncoder:
        return cast(ResNetEncoder, next(iter(self.encoders.values())))

    @property
    def out_channels(self) -> int:
        return self._first().out_channels

    def token_grid(self, grid_shape: Sequence[int]) -> tuple[int, int, int]:
        return self._first().token_grid(grid_shape)

    def forward(self, images: Tensor, present: Tensor) -> dict[str, Tensor]:
        """images: (B, 2, D, H, W), present: (B, 2) bool → {modality: (B, N, C)}.

        Rows of an absent modality are zeros (and must be masked by the caller).
        """
        b = images.shape[0]
        grid = self.token_grid(images.shape[2:])
        n_tokens = grid[0] * grid[1] * grid[2]
        out: dict[str, Tensor] = {}
        for m in self.modalities:
            channel = MODALITIES.index(m)
            idx = present[:, channel].nonzero().squeeze(1)  # (B_present,)
            tokens = images.new_zeros(b, n_tokens, self.out_channels)
            if idx.numel() > 0:
                sub, got = self.encoders[m](images[idx, channel : channel + 1])
                assert got == grid, f"token grid {got} != predicted {grid}"
                tokens = tokens.index_copy(0, idx, sub.to(tokens.dtype))
            out[m] = tokens
        return out


def drop_modalities(present: Tensor, p: float, modalities: Sequence[str]) -> Tensor:
    """Modality dropout: drop one image modality per patient with probability ``p``.

    Only patients with every used modality present are eligible, and at most one modality
    is dropped, so no patient loses all its images. Uses the global torch RNG (seeded by
    the training loop).

    Args:
        present: (B, 2) bool presence after configuration switches.
        p: probability of dropping one modality for an eligible patient.
        modalities: the used modalities (dropout needs two).
    Returns:
        (B, 2) bool, a new tensor.
    """
    if p <= 0 or len(modalities) < 2:
        return present
    b = present.shape[0]
    eligible = present.all(dim=1)
    drop = (torch.rand(b, device=present.device) < p) & eligible
    which = torch.randint(0, 2, (b,), device=present.device)
    out = present.clone()
    out[drop & (which == 0), 0] = False
    out[drop & (which == 1), 1] = False
    return out
