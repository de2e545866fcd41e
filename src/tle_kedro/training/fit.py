"""One fit loop for every neural survival model (TransEpRelap, its ablations, the baselines).

AdamW with linear warmup then cosine decay (per step), Cox partial likelihood (Efron ties),
augmentation in training only (a left-right flip swaps the operative-side code), early stopping
on an inner validation split of the training fold (Harrell C, ``evaluation.concordance``),
best-checkpoint restore, and a Breslow baseline fitted afterwards: on the whole training fold,
or with ``train.recalibrate`` on the networks' inner-validation patients together with a
calibration slope.
``train.ensemble > 1`` fits that many such networks with consecutive seeds and predicts their
mean log-risk.

A network with a discrete-time head (``model.head: discrete``, ``models.discrete``) trains on
the logistic-hazard likelihood of its hazard logits (``losses.discrete_time``), validates
that loss and the Harrell C of its risk summary, mixes ensemble and snapshot members in
survival space, and gets no Breslow baseline and no recalibration: its survival curves are
the head's own (the slope and Breslow pair rescales a Cox log-risk; a discrete head's
probabilities come from its likelihood, so ``train.recalibrate`` is skipped with a log line).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from sklearn.model_selection import train_test_split

from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.models.discrete import time_bins_of
from tle_kedro.models.ensemble import MeanEnsemble, Recalibrated
from tle_kedro.models.survival import BaselineHazard, breslow_baseline, calibration_slope
from tle_kedro.training.config import TrainConfig
from tle_kedro.training.data import (
    EventBatchSampler,
    SurvivalArrays,
    make_survival_arrays,
    outcome_arrays,
    rows_for,
)
from tle_kedro.training.device import resolve_device

# FittedNeuralModel is also imported so that models pickled before it moved to
# training.fitted (``tle_kedro.training.fit.FittedNeuralModel``) still load.
from tle_kedro.training.fitted import (
    FittedNeuralModel,
    predict_log_risk,
)
from tle_kedro.training.loop import (
    EpochCallback,
    build_loop,
    run_epochs,
    seed_everything,
    side_index_of,
)
from tle_kedro.training.warm_start import core_model as _core
from tle_kedro.training.warm_start import warm_start_from_cox

logger = logging.getLogger(__name__)

# fewer held-out events than this: no recalibration (a slope from 1-4 events is noise)
MIN_CALIBRATION_EVENTS = 5


@dataclass(frozen=True)
class FitInputs:
    """What one neural fit needs: the model to build, how to train it, and its patients.

    Attributes:
        kind, model_config: passed to ``tle_kedro.models.factory.build_model``.
        train_config: optimisation, early stopping, device, augmentation.
        train_ids: the (outer) training fold; the inner validation split is drawn from it.
        image_tensors: volumes (N_all, 2, D, H, W) of at least ``train_ids``.
        table: ``clinicalvalidated`` rows of at least ``train_ids``.
        tokenizer: UNFITTED ``ClinicalTokenizer`` prototype; a fit fits a clone of it on
            its training patients only.
    """

    kind: str
    model_config: Any
    train_config: TrainConfig
    train_ids: Sequence[str]
    image_tensors: ImageTensors
    table: pd.DataFrame
    tokenizer: Any

    def with_configs(self, model_config: Any, train_config: TrainConfig) -> FitInputs:
        """The same fit with other configurations (e.g. tuned hyperparameters)."""
        return replace(self, model_config=model_config, train_config=train_config)


def inner_split(
    train_ids: Sequence[str], event: np.ndarray, fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Stratified (by event) split of a training fold into (fit ids, validation ids)."""
    ids = list(train_ids)
    if fraction <= 0:
        return ids, []
    n_val = max(2, round(fraction * len(ids)))
    stratify = event if min(event.sum(), (~event).sum()) >= 2 else None
    fit_ids, val_ids = train_test_split(
        ids, test_size=n_val, stratify=stratify, random_state=seed, shuffle=True
    )
    return list(fit_ids), list(val_ids)


def fit_neural_model(
    inputs: FitInputs,
    on_epoch_end: EpochCallback | None = None,
    desc: str | None = None,
) -> FittedNeuralModel:
    """Fit ``build_model(inputs.kind, inputs.model_config, ...)`` on ``inputs.train_ids``.

    Args:
        inputs: the model, its configurations and its patients. The tokenizer prototype is
            fitted on the inner-training patients only (on the whole fold for an ensemble,
            see below).
        on_epoch_end: ``f(epoch, val_c) -> stop?``; may raise (e.g. ``optuna.TrialPruned``);
            called for every member's epochs when ``train_config.ensemble > 1``.
        desc: progress-bar label (e.g. ``"transeprelap r0 f1"``).

    Returns:
        The fitted model with the best epoch's weights and its per-epoch ``history``
        (``epoch, train_loss, val_loss, val_c, lr, seconds``).
    """
    cfg, train_ids, table = inputs.train_config, inputs.train_ids, inputs.table
    if cfg.ensemble == 1:
        model, tok, history, best_epoch, held_out = _fit_member(inputs, on_epoch_end, desc)
        held_outs = [(model, held_out)]
    else:
        # The members share one tokenizer, fitted on the whole training fold: averaging needs
        # one clinical encoding, and the tokenizer only scales clinical values (no outcome),
        # so the members' inner validation patients lend it nothing about recurrence. Each
        # member draws its own inner split (its seed), so together they are fitted on and
        # validated on different patients of the fold: bagging without resampling.
        tok = clone(inputs.tokenizer).fit(rows_for(table, list(train_ids), "clinical table"))
        members = [
            _fit_member(
                replace(
                    inputs,
                    train_config=cfg.model_copy(update={"seed": cfg.seed + k, "ensemble": 1}),
                    tokenizer=tok,
                ),
                on_epoch_end,
                f"{desc or 'fit'} member {k + 1}/{cfg.ensemble}",
                fit_tokenizer=False,
            )
            for k in range(cfg.ensemble)
        ]
        model = MeanEnsemble([m[0] for m in members]).eval()
        history = mean_history([m[2] for m in members])
        best_epoch = int(round(float(np.median([m[3] for m in members]))))
        held_outs = [(m[0], m[4]) for m in members]
    discrete = time_bins_of(model) is not None
    if discrete and cfg.recalibrate:
        logger.info("train.recalibrate skipped: a discrete-time head's curves are its own")
    outcome = _held_out_outcome(held_outs, cfg) if cfg.recalibrate and not discrete else None
    slope = 1.0
    baseline: BaselineHazard | None = None  # a discrete head: risk and S(t) from its logits
    if outcome is not None:
        # Calibration on patients the networks did not train on: the slope and the Breslow
        # baseline both come from each member's inner-validation patients (a patient held
        # out by two members counts twice). In-sample risks of an early-stopped network
        # still spread too far; fold models recalibrated this way put their risks on one
        # scale (docs/modeling.md: pooled C and ICI, same networks, with and without).
        risk, event, time = outcome
        slope = calibration_slope(risk, event, time)
        model = Recalibrated(model, slope).eval()
        baseline = breslow_baseline(slope * risk, event, time)
    elif not discrete:
        full = make_survival_arrays(list(train_ids), inputs.image_tensors, tok, table)
        risk = predict_log_risk(model, full, resolve_device("cpu"), cfg.eval_batch_size)
        assert full.time is not None and full.event is not None
        baseline = breslow_baseline(risk, full.event.numpy(), full.time.numpy())
    return FittedNeuralModel(
        inputs.kind, inputs.model_config, cfg, model, tok, baseline, history, best_epoch, slope
    )


# (model, tokenizer, history, best epoch, its inner-validation arrays or None)
_Member = tuple[torch.nn.Module, Any, list[dict[str, float]], int, SurvivalArrays | None]


def _held_out_outcome(
    held_outs: Sequence[tuple[torch.nn.Module, SurvivalArrays | None]], cfg: TrainConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(log-risk, event, time) of every member on its own inner-validation patients.

    None when there is nothing to calibrate on: no inner split, or fewer than
    ``MIN_CALIBRATION_EVENTS`` events in it (the fit then keeps the in-sample Breslow).
    """
    parts = []
    for member, val in held_outs:
        if val is None or len(val) == 0:
            continue
        assert val.time is not None and val.event is not None
        risk = predict_log_risk(member, val, resolve_device("cpu"), cfg.eval_batch_size)
        parts.append((risk, val.event.numpy(), val.time.numpy().astype(np.float64)))
    if not parts:
        return None
    risk, event, time = (np.concatenate(p) for p in zip(*parts, strict=True))
    if event.sum() < MIN_CALIBRATION_EVENTS:
        logger.warning(
            "recalibration skipped: %d events among %d held-out patients (< %d); "
            "the Breslow baseline is fitted in-sample",
            int(event.sum()),
            len(event),
            MIN_CALIBRATION_EVENTS,
        )
        return None
    return risk, event, time


def _fit_member(
    inputs: FitInputs,
    on_epoch_end: EpochCallback | None,
    desc: str | None,
    fit_tokenizer: bool = True,
) -> _Member:
    """One network: (model on CPU in eval mode, fitted tokenizer, history, best epoch, its
    inner-validation arrays or None).

    With ``fit_tokenizer`` the tokenizer is a clone of the ``inputs.tokenizer`` prototype
    fitted on the inner-training patients; otherwise that tokenizer is used as it is (already
    fitted).
    """
    cfg, train_ids, table = inputs.train_config, inputs.train_ids, inputs.table
    generator = seed_everything(cfg.seed)
    _, event = outcome_arrays(rows_for(table, list(train_ids), "clinical table"))
    fit_ids, val_ids = inner_split(train_ids, event, cfg.inner_val_fraction, cfg.seed)
    tok = inputs.tokenizer
    if fit_tokenizer:
        tok = clone(tok).fit(rows_for(table, fit_ids, "clinical table"))
    train = make_survival_arrays(fit_ids, inputs.image_tensors, tok, table)
    val = make_survival_arrays(val_ids, inputs.image_tensors, tok, table) if val_ids else None
    assert train.event is not None
    sampler = EventBatchSampler(train.event.numpy(), cfg.batch_size, generator)
    setup = resolve_device(cfg.device, cfg.amp)
    steps = cfg.epochs * len(sampler)
    model, loop = build_loop(inputs.kind, inputs.model_config, tok, setup, cfg, steps, generator)
    if cfg.warm_start == "cox" and len(getattr(_core(model), "region_linear", {})):
        rows = train
        if cfg.warm_start_rows == "training_fold" and val is not None:
            rows = make_survival_arrays(list(train_ids), inputs.image_tensors, tok, table)
        warm_start_from_cox(model, rows, side_index_of(tok), cfg.warm_start_penalizers, cfg.seed)
    history, best_epoch, states = run_epochs(loop, train, val, sampler, on_epoch_end, desc)
    model.to("cpu").eval()
    if len(states) > 1:
        model = snapshot_ensemble(model, states)
    return model, tok, history, best_epoch, val


def snapshot_ensemble(model: torch.nn.Module, states: Sequence[dict[str, Any]]) -> MeanEnsemble:
    """A ``MeanEnsemble`` of copies of ``model`` (on CPU) holding each of ``states``."""
    copies = []
    for state in states:
        member = copy.deepcopy(model)
        member.load_state_dict(state)
        copies.append(member.to("cpu").eval())
    return MeanEnsemble(copies).eval()


def mean_history(histories: Sequence[Sequence[dict[str, float]]]) -> list[dict[str, float]]:
    """Per-epoch mean of the members' histories (over the members that ran that epoch).

    Members stop early at different epochs; epoch ``e`` of the result averages each numeric
    key over the members whose history reaches ``e`` (NaN values are skipped).
    """
    longest = max((len(h) for h in histories), default=0)
    out: list[dict[str, float]] = []
    for epoch in range(longest):
        rows = [h[epoch] for h in histories if len(h) > epoch]
        keys = [k for k in rows[0] if k != "epoch"]
        entry: dict[str, float] = {"epoch": epoch}
        for key in keys:
            values = [float(r[key]) for r in rows if not math.isnan(float(r[key]))]
            entry[key] = float(np.mean(values)) if values else math.nan
        out.append(entry)
    return out
