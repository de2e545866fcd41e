"""Attention rollout of TransEpRelap: how much of the summary token's attention each input
token holds, through the intra- and inter-modality attention (Abnar & Zuidema 2020).

Each attention layer's head-averaged weights ``A`` (key-padded tokens get none) become
``0.5 A + 0.5 I`` (the residual path), rows renormalised; a stack's rollout is the product
of its layers. The summary token's row of the joint (inter) rollout is carried through each
modality's own (intra) rollout, so an image token's weight includes what reached it from the
region tokens of its modality and vice versa. Weights over the input tokens (the summary
token itself left out) sum to 1; ensembles (members, snapshots) are averaged.

Hand-written: captum and MONAI have no rollout for ``torch.nn.TransformerEncoder``, whose
fused layers do not return their weights, so each layer is replayed with
``need_weights=True`` on the inputs captured by forward pre-hooks during one forward pass.

The image tokens are mapped back to voxels (each token's weight painted on the block of the
grid it covers, nearest-neighbour); on the CPU default the token grid is coarse (2 × 1 × 1
per image), so the region and clinical tokens, which carry names, are the readable part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tle_kedro.models.batch import MODALITIES, SurvivalBatch
from tle_kedro.models.measures import measure_names
from tle_kedro.models.transeprelap import TransEpRelap

MODALITY_LABELS = {"t1": "T1", "pet": "PET"}


@dataclass(frozen=True)
class Rollout:
    """One patient's attention rollout.

    Attributes:
        names: (N,) input token names: ``T1 image 0``…, region measures (``pet_ai_insula``…),
            ``clinical`` (pooled) or ``clinical <variable index>``.
        weights: (N,) share of the summary token's rolled-out attention, sums to 1.
        voxel_map: (2, D, H, W) float32: each image token's weight on the voxels it covers
            (channel 0 T1, 1 PET; zero for a missing modality).
    """

    names: list[str]
    weights: np.ndarray
    voxel_map: np.ndarray

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` tokens with the largest weights, largest first."""
        order = np.argsort(-self.weights, kind="stable")[:k]
        return [(self.names[i], float(self.weights[i])) for i in order]


def _layer_rollout(stack: nn.TransformerEncoder, x: Tensor, padding: Tensor | None) -> Tensor:
    """(B, N, N) rollout of one encoder stack on its input ``x`` (B, N, E)."""
    b, n, _ = x.shape
    eye = torch.eye(n, dtype=x.dtype, device=x.device).expand(b, n, n)
    rollout = eye
    for layer in stack.layers:
        h = layer.norm1(x) if layer.norm_first else x
        _, weights = layer.self_attn(
            h, h, h, key_padding_mask=padding, need_weights=True, average_attn_weights=True
        )  # (B, N, N)
        weights = torch.nan_to_num(weights, nan=0.0)
        mixed = 0.5 * weights + 0.5 * eye
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        rollout = mixed @ rollout
        x = layer(x, src_key_padding_mask=padding)
    return rollout


class _Capture:
    """Forward pre-hooks on a TransEpRelap's stacks: the (tokens, padding) each one saw."""

    def __init__(self, model: TransEpRelap) -> None:
        self.inputs: dict[str, tuple[Tensor, Tensor | None]] = {}
        self.batch: SurvivalBatch | None = None  # as the network saw it (mirrored or not)
        self.handles = [model.register_forward_pre_hook(self._keep_batch)]
        stacks = {"inter": model.inter, **{k: v for k, v in model.intra.items()}}
        for name, stack in stacks.items():
            self.handles.append(stack.register_forward_pre_hook(self._hook(name), with_kwargs=True))

    def _keep_batch(self, _module, args):  # type: ignore[no-untyped-def]
        self.batch = args[0]

    def _hook(self, name: str):  # type: ignore[no-untyped-def]
        def hook(_module, args, kwargs):  # type: ignore[no-untyped-def]
            self.inputs[name] = (args[0].detach(), kwargs.get("src_key_padding_mask"))

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _token_grid(model: TransEpRelap, modality: str) -> tuple[int, int, int]:
    """(d, h, w) of a modality's image tokens."""
    return model.image_tokenizers[modality].token_grid  # type: ignore[return-value]


def _token_layout(model: TransEpRelap, clinical_tokens: int) -> list[tuple[str, list[str]]]:
    """The joint attention's token groups after the summary token: (group, token names)."""
    groups: list[tuple[str, list[str]]] = []
    for m in model.config.modalities:
        d, h, w = _token_grid(model, m)
        names = [f"{MODALITY_LABELS[m]} image {i}" for i in range(d * h * w)]
        if m in model.measures:
            names += list(measure_names(m, model.config.atlas))
        groups.append((m, names))
    if clinical_tokens and not model.clinical_after:
        pooled = clinical_tokens == 1
        names = ["clinical"] if pooled else [f"clinical {i}" for i in range(clinical_tokens)]
        groups.append(("clinical", names))
    return groups


def _rollout_one(model: TransEpRelap, capture: _Capture) -> tuple[list[str], Tensor, Tensor]:
    """(names, (N,) weights, (N,) image-token mask) of one TransEpRelap (batch of one)."""
    tokens, padding = capture.inputs["inter"]
    total = tokens.shape[1] - 1
    layout = _token_layout(model, 0)
    image_and_measures = sum(len(n) for _, n in layout)
    clinical_tokens = total - image_and_measures
    layout = _token_layout(model, clinical_tokens)
    summary_row = _layer_rollout(model.inter, tokens, padding)[0, 0, 1:]  # (N,)
    weights = summary_row.clone()
    start = 0
    is_image = torch.zeros(total, dtype=torch.bool)
    for group, names in layout:
        stop = start + len(names)
        if group in capture.inputs and group in model.intra:
            x, pad = capture.inputs[group]
            if x.shape[0] == 1 and x.shape[1] == len(names):
                stack: nn.TransformerEncoder = model.intra[group]  # type: ignore[assignment]
                intra = _layer_rollout(stack, x, pad)[0]  # (n, n)
                weights[start:stop] = summary_row[start:stop] @ intra
        if group in model.image_tokenizers:
            d, h, w = _token_grid(model, group)
            is_image[start : start + d * h * w] = True
        start = stop
    names = [n for _, group_names in layout for n in group_names]
    weights = weights / weights.sum().clamp(min=1e-12)
    return names, weights, is_image


def attention_rollout(model: nn.Module, batch: SurvivalBatch) -> Rollout | None:
    """Rollout of the one patient of ``batch`` through every TransEpRelap inside ``model``
    (an ensemble's members averaged); None when ``model`` holds no TransEpRelap."""
    if batch.batch_size != 1:
        raise ValueError(f"attention_rollout explains one patient, got {batch.batch_size}")
    networks = [m for m in model.modules() if isinstance(m, TransEpRelap)]
    if not networks:
        return None
    captures = [_Capture(net) for net in networks]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(batch)
            parts = [_rollout_one(net, cap) for net, cap in zip(networks, captures, strict=True)]
    finally:
        for capture in captures:
            capture.remove()
        model.train(was_training)
    names, _, is_image = parts[0]
    weights = torch.stack([w for _, w, _ in parts]).mean(dim=0).double().numpy()
    seen = captures[0].batch
    mirrored = seen is not None and seen.mirrored is not None and bool(seen.mirrored[0])
    return Rollout(names, weights, _voxel_map(networks[0], weights, is_image, batch, mirrored))


def _voxel_map(
    model: TransEpRelap,
    weights: np.ndarray,
    is_image: Tensor,
    batch: SurvivalBatch,
    mirrored: bool,
) -> np.ndarray:
    """(2, D, H, W): each image token's weight on its block of voxels, in the image's own
    orientation (a right-operated patient's map is mirrored back)."""
    grid = tuple(batch.images.shape[2:])
    out = np.zeros((2, *grid), dtype=np.float32)
    image_weights = weights[is_image.numpy()]
    start = 0
    for m in model.config.modalities:
        d, h, w = _token_grid(model, m)
        block = torch.as_tensor(image_weights[start : start + d * h * w], dtype=torch.float32)
        start += d * h * w
        if not bool(batch.modality_mask[0, MODALITIES.index(m)]):
            continue
        painted = F.interpolate(block.view(1, 1, d, h, w), size=grid, mode="nearest")[0, 0]
        out[MODALITIES.index(m)] = painted.numpy()
    if mirrored:  # the network saw the image mirrored left-right (ipsilateral view)
        out = out[:, ::-1].copy()
    return out
