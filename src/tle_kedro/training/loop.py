"""One network's training loop: optimiser and schedule, one epoch, inner validation, and the
epochs with early stopping and best-checkpoint restore (``training.fit`` builds members and
ensembles from it).

The loss is the Cox partial likelihood of the (B,) log-risk (Efron ties, ``losses.cox``), or
for a discrete-time head the logistic-hazard likelihood of its (B, K) logits
(``losses.discrete_time``); validation scores the same loss and the Harrell C of the risk.
"""

from __future__ import annotations

import copy
import logging
import math
import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tle_kedro.evaluation.concordance import harrell_c
from tle_kedro.losses.cox import cox_partial_likelihood
from tle_kedro.losses.discrete_time import logistic_hazard_nll
from tle_kedro.models.batch import SurvivalBatch
from tle_kedro.models.discrete import time_bins_of
from tle_kedro.models.factory import build_model
from tle_kedro.training.config import TrainConfig
from tle_kedro.training.data import EventBatchSampler, SurvivalArrays
from tle_kedro.training.device import DeviceSetup
from tle_kedro.training.fitted import predict_log_risk, predict_logits, to_device
from tle_kedro.transforms.augment import augment_batch, measure_images, swap_side_codes

logger = logging.getLogger(__name__)

EpochCallback = Callable[[int, float], bool | None]


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR multiplier: linear warmup from 1/(w+1) to 1 over ``warmup_steps``, then cosine to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy global RNGs (model init, dropout); return a seeded generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    return torch.Generator().manual_seed(seed)


@dataclass
class Loop:
    """Mutable state of one fit (kept apart so each step is a small function)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    setup: DeviceSetup
    config: TrainConfig
    side_index: int | None
    generator: torch.Generator
    ema: torch.optim.swa_utils.AveragedModel | None = None

    @property
    def time_bins(self) -> tuple[float, ...] | None:
        """The discrete-time head's edges, None for a Cox head."""
        return time_bins_of(self.model)

    @property
    def evaluated(self) -> torch.nn.Module:
        """The weights that are validated and kept: the EMA average when configured."""
        return self.ema.module if self.ema is not None else self.model


class DivergedError(RuntimeError):
    """The network's log-risk became non-finite (NaN or inf) in training or validation."""


def check_finite(log_risk: torch.Tensor | np.ndarray, where: str) -> None:
    finite = (
        bool(torch.isfinite(log_risk).all())
        if isinstance(log_risk, torch.Tensor)
        else bool(np.isfinite(log_risk).all())
    )
    if not finite:
        raise DivergedError(f"non-finite log-risk in {where}: the network diverged")


def batch_loss(loop: Loop, b: SurvivalBatch) -> torch.Tensor:
    """The training loss of one batch: Cox partial likelihood of the (B,) log-risk, or the
    logistic-hazard likelihood of a discrete head's (B, K) logits."""
    assert b.event is not None and b.time is not None, "training batches carry outcomes"
    bins = loop.time_bins
    with loop.setup.autocast():
        out = loop.model.logits(b) if bins is not None else loop.model(b)  # type: ignore[operator]
    check_finite(out.detach(), "training")
    if bins is not None:
        return logistic_hazard_nll(out.float(), b.event, b.time, bins)
    return cox_partial_likelihood(out.float().reshape(-1), b.event, b.time)


def train_epoch(loop: Loop, data: SurvivalArrays, sampler: EventBatchSampler) -> float:
    """One pass over ``data``; mean loss over batches."""
    loop.model.train()
    losses = []
    for index in sampler:
        batch = data.batch(index)
        # augment_batch takes a seed: draw it from the fit's generator (deterministic runs).
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=loop.generator))
        images, flipped = augment_batch(
            batch.images, batch.modality_mask, loop.config.augment, seed
        )
        measured = measure_images(batch.images, flipped, loop.config.augment)
        batch = batch.with_images(images, measure_images=measured)
        if loop.side_index is not None:
            batch = batch.with_clin_cat(swap_side_codes(batch.clin_cat, loop.side_index, flipped))
        b = to_device(batch, loop.setup)
        loop.optimizer.zero_grad(set_to_none=True)
        loss = batch_loss(loop, b)
        loop.scaler.scale(loss).backward()
        if loop.config.grad_clip is not None:
            loop.scaler.unscale_(loop.optimizer)
            torch.nn.utils.clip_grad_norm_(loop.model.parameters(), loop.config.grad_clip)
        loop.scaler.step(loop.optimizer)
        loop.scaler.update()
        loop.scheduler.step()
        if loop.ema is not None:
            loop.ema.update_parameters(loop.model)
        losses.append(float(loss.detach()))
    return float(np.mean(losses))


def validate(loop: Loop, val: SurvivalArrays | None) -> tuple[float, float]:
    """(loss, Harrell C) on the inner validation set; NaN when there is none. The loss is the
    training loss (Cox or logistic hazard); C ranks by the log-risk or the risk summary."""
    if val is None or len(val) == 0:
        return math.nan, math.nan
    chunk = loop.config.eval_batch_size
    risk = predict_log_risk(loop.evaluated, val, loop.setup, chunk)
    assert val.time is not None and val.event is not None
    bins = loop.time_bins
    if bins is not None:
        logits = torch.as_tensor(predict_logits(loop.evaluated, val, loop.setup, chunk))
        loss = logistic_hazard_nll(logits, val.event, val.time.double(), bins)
    else:
        loss = cox_partial_likelihood(torch.as_tensor(risk), val.event, val.time.double())
    c = harrell_c(risk, val.event.numpy(), val.time.numpy())
    return float(loss), c


def build_loop(
    kind: str,
    model_config: Any,
    tokenizer: Any,
    setup: DeviceSetup,
    config: TrainConfig,
    steps: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.nn.Module, Loop]:
    model = build_model(
        kind,  # type: ignore[arg-type]
        model_config,
        n_numeric=len(tokenizer.numeric_names),
        cardinalities=list(tokenizer.cardinalities),
        side_index=side_index_of(tokenizer),
    )
    model = model.to(setup.device, memory_format=setup.memory_format)  # type: ignore[call-overload]
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    warmup = config.warmup_epochs * max(1, steps // config.epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps, warmup))
    scaler = torch.amp.GradScaler(setup.device.type, enabled=setup.needs_grad_scaler)
    side = side_index_of(tokenizer)
    gen = generator if generator is not None else torch.Generator().manual_seed(config.seed)
    ema = None
    if config.ema_decay is not None:
        ema = torch.optim.swa_utils.AveragedModel(
            model,
            multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema_decay),
            use_buffers=True,  # BatchNorm statistics are averaged with the weights
        )
    return model, Loop(model, optimizer, scheduler, scaler, setup, config, side, gen, ema)


def side_index_of(tokenizer: Any) -> int | None:
    try:
        return int(tokenizer.side_index)
    except ValueError:
        return None


def run_epochs(
    loop: Loop,
    train: SurvivalArrays,
    val: SurvivalArrays | None,
    sampler: EventBatchSampler,
    on_epoch_end: EpochCallback | None,
    desc: str | None,
) -> tuple[list[dict[str, float]], int, list[dict[str, Any]]]:
    """Train, validate, keep the best states by val C (ties: lower val loss; or by val loss,
    ties: higher C, with ``early_stopping_metric="loss"``); restore the best.

    Returns the history, the best epoch and the state dicts of the best
    ``config.snapshots`` epochs, best first (empty without an inner split).
    """
    cfg = loop.config
    history: list[dict[str, float]] = []
    # (score, epoch, state), best first; score = (val C, -val loss); kept[0] is the best epoch
    kept: list[tuple[tuple[float, float], int, dict[str, Any]]] = []
    stale = 0
    by_loss = cfg.early_stopping_metric == "loss"
    bar = tqdm(range(cfg.epochs), desc=desc or "fit", leave=False, disable=not cfg.progress)
    for epoch in bar:
        start = _time.perf_counter()
        try:
            train_loss = train_epoch(loop, train, sampler)
            val_loss, val_c = validate(loop, val)
        except DivergedError as err:
            if not kept:  # nothing to fall back on
                raise DivergedError(
                    f"{desc or 'fit'}: {err} at epoch {epoch}, before any epoch was kept; "
                    "lower train.lr or raise train.grad_clip"
                ) from None
            logger.warning(
                "%s: %s at epoch %d; keeping the best epochs so far (best %d)",
                desc or "fit",
                err,
                epoch,
                kept[0][1],
            )
            break
        lr = loop.optimizer.param_groups[0]["lr"]
        history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_c": val_c,
                "lr": lr,
                "seconds": _time.perf_counter() - start,
            }
        )
        shown = {"loss": f"{train_loss:.3f}"}
        if not math.isnan(val_c):  # no inner split: nothing to show
            shown["val_c"] = f"{val_c:.3f}"
        bar.set_postfix(shown)
        if val is not None and not math.isnan(val_loss if by_loss else val_c):
            score = (-val_loss, val_c) if by_loss else (val_c, -val_loss)
            stale = 0 if not kept or score > kept[0][0] else stale + 1
            if len(kept) < cfg.snapshots or score > kept[-1][0]:
                kept.append((score, epoch, copy.deepcopy(loop.evaluated.state_dict())))
                kept.sort(key=lambda k: k[0], reverse=True)  # stable: earlier epoch wins ties
                del kept[cfg.snapshots :]
        if on_epoch_end is not None and on_epoch_end(epoch, val_c):
            logger.info("%s: stopped by callback at epoch %d", desc, epoch)
            break
        if cfg.early_stopping_patience is not None and stale >= cfg.early_stopping_patience:
            logger.info("%s: early stop at epoch %d (best %d)", desc, epoch, kept[0][1])
            break
    bar.close()
    if kept:
        loop.model.load_state_dict(kept[0][2])
        return history, kept[0][1], [state for _, _, state in kept]
    if loop.ema is not None:
        loop.model.load_state_dict(loop.ema.module.state_dict())
    return history, len(history) - 1, []
