"""Per-patient explanations: voxel attribution maps, each input's share of the risk, a figure.

- Attribution maps on T1 and PET with Captum: integrated gradients (Sundararajan et al. 2017)
  from an all-zero baseline (= background after normalisation), or occlusion (Zeiler & Fergus
  2014) with a cubic window. A masked (missing) modality gets an all-zero map: the model never
  sees it.
- Each input's contribution: the change of the log-risk when that input is masked the way the
  model masks missing data (``risk(all) - risk(without it)``); its share is
  ``|change| / sum of |changes|``.
- :func:`patient_figure`: survival curve, contributions, and the maps overlaid on axial and
  coronal slices through the temporal lobes.
- A classical baseline (Cox or forest on atlas region measures) has no voxel map: its
  contributions mask a modality's columns (then imputed with the training medians, as for a
  patient without that scan), :func:`explain_measures`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from captum.attr import IntegratedGradients, Occlusion
from matplotlib.figure import Figure

from tle_kedro.data.atlas import region_centroid_mm
from tle_kedro.models.batch import SurvivalBatch
from tle_kedro.models.classical import FittedClassicalModel
from tle_kedro.registry.attention import Rollout, attention_rollout
from tle_kedro.training.classical import FittedClassicalPipeline
from tle_kedro.training.fold_ensemble import ClassicalFoldEnsemble, FoldEnsemble

Method = Literal["integrated_gradients", "occlusion"]
INPUTS: tuple[str, str, str] = ("T1", "PET", "clinical")


@dataclass(frozen=True)
class Explanation:
    """One patient's explanation.

    Attributes:
        attributions: (2, D, H, W) float32, channel 0 = T1, 1 = PET; > 0 raises the risk.
        risk: the patient's log-risk with every available input.
        contributions: input (``T1``, ``PET``, ``clinical``) → risk(all) − risk(input masked).
        shares: input → ``|contribution| / sum |contributions|`` (sums to 1, or all 0).
        rollout: TransEpRelap's attention rollout from the summary token to the input
            tokens (:mod:`tle_kedro.registry.attention`); None for other models.
    """

    attributions: np.ndarray
    risk: float
    contributions: dict[str, float]
    shares: dict[str, float]
    rollout: Rollout | None = None


def shares_of(contributions: dict[str, float]) -> dict[str, float]:
    """Each input's ``|contribution| / sum |contributions|`` (sums to 1, or all 0)."""
    total = sum(abs(v) for v in contributions.values())
    return {k: (abs(v) / total if total > 0 else 0.0) for k, v in contributions.items()}


def _forward(model: torch.nn.Module, batch: SurvivalBatch):  # type: ignore[no-untyped-def]
    """``images (n, 2, D, H, W) -> (n,)`` log-risk, other inputs of the one-patient ``batch``."""

    def forward(images: torch.Tensor) -> torch.Tensor:
        n = images.shape[0]
        expanded = SurvivalBatch(
            images=images,
            modality_mask=batch.modality_mask.expand(n, -1),
            clin_num=batch.clin_num.expand(n, -1),
            clin_cat=batch.clin_cat.expand(n, -1),
        )
        return model(expanded).reshape(-1)

    return forward


def attribution_maps(
    model: torch.nn.Module,
    batch: SurvivalBatch,
    method: Method = "integrated_gradients",
    n_steps: int = 16,
    window: int = 6,
    stride: int = 3,
) -> np.ndarray:
    """Voxel attributions of one patient's log-risk.

    Args:
        model: a neural survival model in eval mode (``forward(batch) -> (B,)``).
        batch: one patient (B = 1), images (1, 2, D, H, W).
        method: ``integrated_gradients`` (``n_steps`` path points) or ``occlusion``
            (cubic ``window`` voxels moved by ``stride``, zero baseline).
    Returns:
        (2, D, H, W) float32; zero for a masked modality.
    """
    if batch.batch_size != 1:
        raise ValueError(
            f"attribution_maps explains one patient, got a batch of {batch.batch_size}"
        )
    model.eval()
    forward = _forward(model, batch)
    images = batch.images.detach().float()
    if method == "integrated_gradients":
        attr = IntegratedGradients(forward).attribute(
            images, baselines=torch.zeros_like(images), n_steps=n_steps, internal_batch_size=n_steps
        )
    elif method == "occlusion":
        with torch.no_grad():
            attr = Occlusion(forward).attribute(
                images,
                sliding_window_shapes=(1, window, window, window),
                strides=(1, stride, stride, stride),
                baselines=0.0,
                perturbations_per_eval=32,
            )
    else:
        raise ValueError(
            f"unknown attribution method {method!r}; use integrated_gradients or occlusion"
        )
    out = attr.detach()[0].float().numpy()  # (2, D, H, W)
    out[~batch.modality_mask[0].numpy()] = 0.0
    return out.astype(np.float32)


def _masked(batch: SurvivalBatch, name: str) -> SurvivalBatch:
    """The batch with input ``name`` masked as missing data is masked."""
    if name == "clinical":
        return SurvivalBatch(
            images=batch.images,
            modality_mask=batch.modality_mask,
            clin_num=torch.full_like(batch.clin_num, float("nan")),
            clin_cat=torch.full_like(batch.clin_cat, -1),
        )
    channel = INPUTS.index(name)
    mask = batch.modality_mask.clone()
    mask[:, channel] = False
    images = batch.images.clone()
    images[:, channel] = 0.0
    return SurvivalBatch(images, mask, batch.clin_num, batch.clin_cat)


def modality_contributions(
    model: torch.nn.Module, batch: SurvivalBatch
) -> tuple[float, dict[str, float], dict[str, float]]:
    """(risk, contributions, shares) of one patient: risk change when each input is masked."""
    model.eval()
    with torch.no_grad():
        risk = float(model(batch).reshape(-1)[0])
        contributions = {
            name: risk - float(model(_masked(batch, name)).reshape(-1)[0]) for name in INPUTS
        }
    shares = shares_of(contributions)
    return risk, contributions, shares


def explain(
    model: torch.nn.Module,
    batch: SurvivalBatch,
    method: Method = "integrated_gradients",
    n_steps: int = 16,
    window: int = 6,
    stride: int = 3,
) -> Explanation:
    """Attribution maps, input contributions and (TransEpRelap) the attention rollout of one
    patient (B = 1)."""
    maps = attribution_maps(model, batch, method, n_steps, window, stride)
    risk, contributions, shares = modality_contributions(model, batch)
    return Explanation(maps, risk, contributions, shares, attention_rollout(model, batch))


def explain_patient(
    fitted: Any,
    inputs: Any,
    i: int,
    method: Method = "integrated_gradients",
    n_steps: int = 16,
    window: int = 6,
    stride: int = 3,
) -> Explanation:
    """Patient ``i`` of a registered model's ``inputs`` (``TLESurvivalModel.arrays``):
    :func:`explain` for a neural model, :func:`explain_measures` for a classical baseline."""
    if isinstance(fitted, FittedClassicalPipeline):
        return explain_measures(fitted.estimator, inputs.iloc[[i]], fitted.model_config.grid_shape)
    if isinstance(fitted, ClassicalFoldEnsemble):  # its risk is the mean of the members'
        grid = fitted.model_config.grid_shape
        rows = [x.iloc[[i]] for x in inputs]
        parts = [
            explain_measures(m.estimator, r, grid)
            for m, r in zip(fitted.members, rows, strict=True)
        ]
        return mean_explanation(parts, float(fitted.log_risk(rows)[0]))
    if isinstance(fitted, FoldEnsemble):
        parts = [
            explain(m.model, arrays.batch([i]), method, n_steps, window, stride)
            for m, arrays in zip(fitted.members, inputs, strict=True)
        ]
        return mean_explanation(parts, float(fitted.log_risk([a.batch([i]) for a in inputs])[0]))
    return explain(fitted.model, inputs.batch([i]), method, n_steps, window, stride)


def mean_explanation(parts: list[Explanation], risk: float) -> Explanation:
    """The explanation of a mean of models: mean maps, contributions and rollout (integrated
    gradients and the masking contributions are linear in the model's output); ``risk`` is
    the ensemble's."""
    contributions = {k: float(np.mean([p.contributions[k] for p in parts])) for k in INPUTS}
    shares = shares_of(contributions)
    maps = np.mean([p.attributions for p in parts], axis=0).astype(np.float32)
    rollouts = [p.rollout for p in parts if p.rollout is not None]
    rollout = None
    if len(rollouts) == len(parts) and rollouts:
        rollout = Rollout(
            rollouts[0].names,
            np.mean([r.weights for r in rollouts], axis=0),
            np.mean([r.voxel_map for r in rollouts], axis=0).astype(np.float32),
        )
    return Explanation(maps, risk, contributions, shares, rollout)


def has_voxel_maps(fitted: Any) -> bool:
    """Whether :func:`explain_patient` gives voxel attributions for this fitted model."""
    return not isinstance(fitted, FittedClassicalPipeline | ClassicalFoldEnsemble)


def measure_inputs(columns: list[str]) -> dict[str, list[str]]:
    """Design-matrix columns of each input: ``t1_*`` → T1, ``pet_*`` → PET, the rest clinical."""
    groups: dict[str, list[str]] = {name: [] for name in INPUTS}
    for c in columns:
        groups[
            "T1" if c.startswith("t1_") else "PET" if c.startswith("pet_") else "clinical"
        ].append(c)
    return groups


def explain_measures(
    estimator: FittedClassicalModel, x: pd.DataFrame, grid_shape: tuple[int, int, int]
) -> Explanation:
    """A classical baseline's explanation of one patient (``x``: its 1-row design matrix).

    Contributions: risk(all) − risk(that input's columns NaN, i.e. imputed with the training
    medians); an input without columns contributes 0. The attributions are all zero: the model
    reads regional means, not voxels.
    """
    risk = float(estimator.predict(x).risk[0])
    contributions: dict[str, float] = {}
    for name, cols in measure_inputs(estimator.feature_names).items():
        masked = x.copy()
        masked[cols] = np.nan
        contributions[name] = risk - float(estimator.predict(masked).risk[0]) if cols else 0.0
    shares = shares_of(contributions)
    maps = np.zeros((2, *grid_shape), dtype=np.float32)
    return Explanation(maps, risk, contributions, shares)


def temporal_slices(affine: np.ndarray, shape: tuple[int, int, int]) -> tuple[int, int]:
    """(axial z index, coronal y index) through the centroid of the left hippocampus (atlas).

    Falls back to the middle slice when that point lies outside the grid.
    """
    point = np.append(region_centroid_mm("hippocampus", "L"), 1.0)
    ijk = np.linalg.inv(affine) @ point
    y, z = int(round(ijk[1])), int(round(ijk[2]))
    y = y if 0 <= y < shape[1] else shape[1] // 2
    z = z if 0 <= z < shape[2] else shape[2] // 2
    return z, y


def _overlay(ax, image: np.ndarray, attr: np.ndarray, vmax: float, title: str, aspect: float):  # type: ignore[no-untyped-def]
    """Grey image with signed attributions (red raises risk, blue lowers it); 2-D (x, y|z).

    ``aspect``: voxel height / width in mm, so anisotropic grids keep their true geometry.
    """
    ax.imshow(image.T, cmap="gray", origin="lower", interpolation="nearest", aspect=aspect)
    shown = np.ma.masked_where(np.abs(attr) < 0.15 * vmax, attr)
    handle = ax.imshow(
        shown.T,
        cmap="bwr",
        vmin=-vmax,
        vmax=vmax,
        alpha=0.7,
        origin="lower",
        interpolation="nearest",
        aspect=aspect,
    )
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("L  ←  x  →  R", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return handle


NOT_EXPLAINED = (
    "Explanations not computed (inference.explain: false).\n"
    "Rerun with --params=inference.explain=true for the input contributions,\n"
    "the attention tokens and the attribution maps (a few seconds per patient)."
)


def patient_figure(
    participant_id: str,
    explanation: Explanation | None,
    volume: np.ndarray,
    affine: np.ndarray,
    times: np.ndarray,
    survival: np.ndarray,
    summary: dict[str, object],
    voxel_maps: bool = True,
) -> Figure:
    """One patient's report: survival curve, input contributions, maps on temporal slices.

    Args:
        volume: (2, D, H, W) the patient's preprocessed T1 and PET (RAS grid, MNI space).
        affine: (4, 4) voxel → MNI mm of the grid.
        times, survival: (T,) months and S(t | x).
        summary: ``risk_group``, ``p_recurrence_12``, ``p_recurrence_24``, ``modalities_used``.
        voxel_maps: False for a model without voxel attributions (the slices show the
            images only, and the title says why).
        explanation: None when explanations were not asked for (``inference.explain``): the
            report shows the prediction and the images, and says how to get the explanation.
    """
    fig = Figure(figsize=(13, 7), constrained_layout=True)
    grid = fig.add_gridspec(2, 4)
    _survival_panel(fig.add_subplot(grid[0, :2]), times, survival, summary)
    if explanation is None:
        ax = fig.add_subplot(grid[0, 2:])
        ax.text(0.5, 0.5, NOT_EXPLAINED, ha="center", va="center", fontsize=9, wrap=True)
        ax.set_axis_off()
    elif explanation.rollout is None:
        _contribution_panel(fig.add_subplot(grid[0, 2:]), explanation)
    else:
        _contribution_panel(fig.add_subplot(grid[0, 2]), explanation)
        _rollout_panel(fig.add_subplot(grid[0, 3]), explanation.rollout)
    z, y = temporal_slices(affine, volume.shape[1:])
    dx, dy, dz = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)  # voxel sizes (mm)
    attr = np.zeros_like(volume) if explanation is None else explanation.attributions
    vmax = float(np.percentile(np.abs(attr), 99.5)) or 1.0
    handle = None
    for m, name in enumerate(("T1", "PET")):
        for k, (plane, img, a, aspect) in enumerate(
            (
                (f"axial z={z}", volume[m][:, :, z], attr[m][:, :, z], dy / dx),
                (f"coronal y={y}", volume[m][:, y, :], attr[m][:, y, :], dz / dx),
            )
        ):
            ax = fig.add_subplot(grid[1, 2 * m + k])
            if not np.any(volume[m]):
                ax.text(0.5, 0.5, f"{name} missing", ha="center", va="center")
                ax.set_axis_off()
                continue
            handle = _overlay(ax, img, a, vmax, f"{name} {plane}", aspect)
    title = f"{participant_id}: predicted recurrence risk and its explanation"
    if explanation is None:
        title = f"{participant_id}: predicted recurrence risk"
    elif not voxel_maps:
        title += " (no voxel map: this model reads atlas region measures)"
    elif handle is not None:
        fig.colorbar(handle, ax=fig.axes[2:], shrink=0.6, label="attribution (→ higher risk)")
    fig.suptitle(title)
    return fig


def _survival_panel(ax, times: np.ndarray, survival: np.ndarray, s: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    """S(t | x) = probability of remaining seizure-free, with P(recurrence) at 12 and 24 months."""
    ax.step(times, survival, where="post", color="tab:blue", label="S(t): seizure-free")
    # 12 months labelled above its point, 24 below: S(24) <= S(12), so the labels cannot
    # overlap even when the two probabilities are equal (a flat curve between them).
    for t, key, offset in ((12, "p_recurrence_12", (6, 6)), (24, "p_recurrence_24", (6, -12))):
        p = float(s[key])  # type: ignore[arg-type]
        ax.plot([t], [1.0 - p], "o", color="black")
        ax.annotate(
            f"P(recurrence by {t} mo) = {p:.0%}",
            (t, 1.0 - p),
            textcoords="offset points",
            xytext=offset,
            fontsize=8,
        )
    ax.set_xlabel("months after surgery")
    ax.set_ylabel("probability of remaining seizure-free")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"risk group: {s['risk_group']} (inputs: {s['modalities_used']})", fontsize=10)
    ax.grid(alpha=0.3)


def _contribution_panel(ax, explanation: Explanation) -> None:  # type: ignore[no-untyped-def]
    names = list(explanation.contributions)
    values = [explanation.contributions[n] for n in names]
    colors = ["tab:red" if v > 0 else "tab:blue" for v in values]
    ax.barh(names, values, color=colors)
    for i, n in enumerate(names):
        ax.annotate(
            f"{explanation.shares[n]:.0%}",
            (values[i], i),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
        )
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("change in risk score when the input is masked (share in %)")
    ax.set_title(f"each input's contribution (risk score {explanation.risk:+.2f})", fontsize=10)


def _rollout_panel(ax, rollout: Rollout, k: int = 10) -> None:  # type: ignore[no-untyped-def]
    """The ``k`` input tokens holding most of the summary token's rolled-out attention."""
    top = rollout.top(k)[::-1]  # largest at the top of the bars
    ax.barh([n for n, _ in top], [w for _, w in top], color="tab:purple")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("share of the summary token's attention (rollout)")
    ax.set_title(f"attention: top {len(top)} of {len(rollout.names)} tokens", fontsize=10)
