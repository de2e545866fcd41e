"""Report figures. Each function returns a :class:`matplotlib.figure.Figure` built without
pyplot (no global figure state, nothing to close; renders with Agg), for the catalog to save.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.plotting import add_at_risk_counts
from lifelines.statistics import logrank_test
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from sksurv.metrics import cumulative_dynamic_auc
from sksurv.util import Surv

from tle_kedro.evaluation.baseline_table import (
    CATEGORICAL,
    CONTINUOUS,
    categorical_rows,
    continuous_rows,
)

logger = logging.getLogger(__name__)

TIME_LABEL = "Time since surgery (months)"
GROUP_COLORS = {"seizure-free": "tab:blue", "recurrent": "tab:red"}
UNITS = {"seizure_frequency_per_month": "seizures / month", "time_months": "months"}
TITLES = {"time_months": "follow-up time", "seizure_frequency_per_month": "seizure frequency"}


def forest_plot(comparison: pd.DataFrame, metric: str = "harrell_c") -> Figure:
    """Point and 95 % interval of ``metric`` per model; oracle C dashed when present.

    Args:
        comparison: the comparison table (``model``, ``<metric>``, ``<metric>_lo/_hi``).
    """
    n = len(comparison)
    fig = Figure(figsize=(7.5, 1.2 + 0.45 * n), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(n)[::-1]
    est = comparison[metric].to_numpy(float)
    err = np.vstack([est - comparison[f"{metric}_lo"], comparison[f"{metric}_hi"] - est])
    ax.errorbar(est, y, xerr=err, fmt="o", color="black", ecolor="0.4", capsize=3)
    for yi, e, hi in zip(y, est, comparison[f"{metric}_hi"], strict=True):
        ax.annotate(
            f"{e:.3f}", (hi, yi), xytext=(4, 0), textcoords="offset points", va="center",
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},  # readable over lines
        )  # fmt: skip
    ax.axvline(0.5, color="0.6", linestyle=":", label="chance (0.5)")
    if "oracle_c" in comparison.columns:
        oracle = float(comparison["oracle_c"].iloc[0])
        ax.axvline(oracle, color="tab:green", linestyle="--", label=f"oracle C = {oracle:.3f}")
    ax.set_yticks(y, comparison["model"].tolist())
    pretty = {"harrell_c": "Harrell's C-index", "uno_c": "Uno's C-index"}.get(metric, metric)
    ax.set_xlabel(f"{pretty} (unitless, 0.5 = chance), 95 % bootstrap CI")
    ax.set_ylabel("model")
    ax.set_title(f"{pretty} per model (out-of-fold)")
    # outside the axes: inside, it covered the lowest model's interval and value
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return fig


def km_risk_groups_plot(
    time: np.ndarray, event: np.ndarray, risk: np.ndarray, model: str = "transeprelap"
) -> Figure:
    """Kaplan–Meier of low/high predicted risk (median split of out-of-fold risk), log-rank p
    and numbers at risk under the axis (lifelines)."""
    high = risk > np.median(risk)
    fig = Figure(figsize=(7.5, 5.5), layout="constrained")
    ax = fig.add_subplot()
    fitters = []
    for label, sel, color in (("low risk", ~high, "tab:blue"), ("high risk", high, "tab:red")):
        kmf = KaplanMeierFitter(label=label).fit(time[sel], event[sel].astype(int))
        kmf.plot_survival_function(ax=ax, color=color, ci_show=True)
        fitters.append(kmf)
    test = logrank_test(time[~high], time[high], event[~high], event[high])
    ax.text(0.98, 0.95, f"log-rank p = {test.p_value:.2g}", transform=ax.transAxes, ha="right")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, None)
    ax.set_xlabel(TIME_LABEL)
    ax.set_ylabel("Seizure-free probability")
    ax.set_title(f"{model}: recurrence-free survival by predicted risk (median split)")
    add_at_risk_counts(*fitters, ax=ax, fig=fig, rows_to_show=["At risk"])
    return fig


def calibration_plot(groups: Mapping[str, pd.DataFrame], t: float = 12.0) -> Figure:
    """Predicted vs Kaplan–Meier observed P(recurrence by ``t``) per group, one panel per
    model, with 95 % KM intervals and the identity line.

    Args:
        groups: model → output of ``calibration.calibration_by_group``.
    """
    names = list(groups)
    ncols = min(3, len(names))
    nrows = int(np.ceil(len(names) / ncols))
    fig = Figure(figsize=(3.6 * ncols, 3.4 * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    for ax, name in zip(axes.ravel(), names, strict=False):
        g = groups[name]
        err = np.vstack([g["observed"] - g["observed_lo"], g["observed_hi"] - g["observed"]])
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1)
        ax.errorbar(g["predicted"], g["observed"], yerr=err, fmt="o-", capsize=3)
        ax.set_title(name, fontsize="medium")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"Predicted P(recurrence by {t:g} months)")
        ax.set_ylabel(f"Observed (KM) P(recurrence by {t:g} months)")
        ax.label_outer()
    for ax in axes.ravel()[len(names) :]:
        ax.set_visible(False)
    n_groups = len(next(iter(groups.values())))
    fig.suptitle(
        f"Calibration at {t:g} months: {n_groups} groups of predicted risk, KM observed ± 95 % CI"
    )
    return fig


def decision_curve_plot(
    curve: pd.DataFrame, t: float = 12.0, highlight: str = "transeprelap"
) -> Figure:
    """Net benefit against threshold probability for every model, treat-all and treat-none.

    Args:
        curve: long table of ``decision_curve.decision_curve`` (model, threshold, net_benefit).
    """
    fig = Figure(figsize=(8.5, 5.2), layout="constrained")
    ax = fig.add_subplot()
    styles: dict[str, dict[str, Any]] = {
        "treat_all": {"color": "black", "linestyle": "--", "linewidth": 1.2},
        "treat_none": {"color": "0.5", "linestyle": ":", "linewidth": 1.2},
    }
    for name, g in curve.groupby("model", sort=False):
        style = styles.get(str(name), {"linewidth": 2.6 if name == highlight else 1.2})
        ax.plot(g["threshold"], g["net_benefit"], label=str(name), **style)
    prevalence = curve.loc[curve["model"] == "treat_all", "net_benefit"].max()
    ax.set_ylim(-0.05, max(0.05, float(prevalence)) * 1.15)
    ax.set_xlabel(f"Threshold probability of recurrence by {t:g} months")
    ax.set_ylabel("Net benefit (true positives per patient, unitless)")
    ax.set_title(f"Decision curves at {t:g} months (Kaplan–Meier net benefit, out-of-fold)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper right", ncols=2)
    return fig


def time_dependent_auc_plot(
    time: np.ndarray,
    event: np.ndarray,
    risks: Mapping[str, np.ndarray],
    times: Sequence[float] = tuple(range(6, 31, 2)),
    highlight: str = "transeprelap",
) -> Figure:
    """Cumulative/dynamic AUC(t) of every model's risk score (sksurv), censoring estimated on
    the same patients; times outside the follow-up range are dropped."""
    grid = np.asarray(times, dtype=float)
    grid = grid[(grid >= time.min()) & (grid < time.max())]
    if grid.size == 0:
        raise ValueError(f"no AUC time within follow-up [{time.min():g}, {time.max():g}) months")
    y = Surv.from_arrays(event.astype(bool), time)
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    for name, risk in risks.items():
        auc, _ = cumulative_dynamic_auc(y, y, risk, grid)
        bold = name == highlight
        ax.plot(grid, auc, marker="o", markersize=3, linewidth=2.5 if bold else 1.2, label=name)
    ax.axhline(0.5, color="0.6", linestyle=":")
    ax.set_xlabel(TIME_LABEL)
    ax.set_ylabel("Time-dependent AUC (unitless, 0.5 = chance)")
    ax.set_title("Cumulative/dynamic AUC over time (out-of-fold risk)")
    ax.legend(fontsize="small", ncol=2, loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def _continuous_panel(ax, var: str, sf: pd.Series, rec: pd.Series) -> None:
    data = [sf.dropna().to_numpy(float), rec.dropna().to_numpy(float)]
    ax.boxplot(data, showfliers=False, widths=0.5)
    rng = np.random.default_rng(0)
    for k, (values, color) in enumerate(zip(data, GROUP_COLORS.values(), strict=True)):
        jitter = rng.uniform(-0.15, 0.15, values.size)
        ax.scatter(k + 1 + jitter, values, s=6, alpha=0.5, color=color)
    ax.set_xticks([1, 2], list(GROUP_COLORS))
    ax.set_ylabel(UNITS.get(var, "months"))


def _categorical_panel(ax, sf: pd.Series, rec: pd.Series) -> None:
    levels = sorted(pd.concat([sf, rec]).dropna().unique(), key=str)
    x = np.arange(len(levels))
    for k, (series, (name, color)) in enumerate(zip((sf, rec), GROUP_COLORS.items(), strict=True)):
        n = max(int(series.notna().sum()), 1)
        pct = [100.0 * (series == lv).sum() / n for lv in levels]
        ax.bar(x + (k - 0.5) * 0.4, pct, width=0.4, color=color, label=name)
    labels = [str(int(v)) if isinstance(v, float) else str(v) for v in levels]
    pretty = [{"0": "no", "1": "yes"}.get(s, s).replace("_", "\n") for s in labels]
    ax.set_xticks(x, pretty, fontsize="small")
    ax.set_ylabel("% of group")
    ax.set_ylim(0, 100)


def clinical_baseline_figure(
    clinical: pd.DataFrame,
    continuous: Sequence[str] = CONTINUOUS,
    categorical: Sequence[str] = CATEGORICAL,
) -> Figure:
    """Distributions per outcome group: box + strip plots for continuous variables, grouped
    bars (% of group) for categorical ones, one small panel per variable; each title carries
    the baseline table's p-value (Mann–Whitney / χ² / Fisher)."""
    variables = [v for v in (*continuous, *categorical) if v in clinical.columns]
    ncols = 4
    nrows = int(np.ceil(len(variables) / ncols))
    fig = Figure(figsize=(3.4 * ncols, 2.8 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    rec = clinical["recurrence"].astype(int) == 1
    for ax, var in zip(axes.ravel(), variables, strict=False):
        sf_values, rec_values = clinical.loc[~rec, var], clinical.loc[rec, var]
        if var in continuous:
            _continuous_panel(ax, var, sf_values, rec_values)
            p = continuous_rows(var, sf_values, rec_values)[0]["p_value"]
        else:
            _categorical_panel(ax, sf_values, rec_values)
            p = categorical_rows(var, sf_values, rec_values, binary=False)[0]["p_value"]
        name = TITLES.get(var, var.removesuffix("_months").replace("_", " "))
        ax.set_title(f"{name} (p = {p:.2g})", fontsize="medium")
        ax.set_xlabel("outcome group" if var in continuous else "level")
    for ax in axes.ravel()[len(variables) :]:
        ax.set_visible(False)
    handles = [Patch(color=color, label=name) for name, color in GROUP_COLORS.items()]
    fig.legend(handles=handles, loc="outside upper right", ncols=2)
    fig.suptitle(
        f"Clinical variables: seizure-free (n = {int((~rec).sum())}) vs recurrent "
        f"(n = {int(rec.sum())})"
    )
    return fig


def confirmation_forest_plot(
    table: pd.DataFrame, highlight: str = "transeprelap", ncols: int = 3
) -> Figure:
    """One panel per cohort: each model's Harrell C with its 95 % interval, the cohort's
    oracle C as a dashed line, ``highlight`` in red; the same model order and x range in
    every panel so panels compare at a glance.

    Args:
        table: the confirmation table (``cohort_seed, cohort_kind, model, harrell_c, lower,
            upper, oracle_c``), one row per cohort × model.
    """
    cohorts = list(dict.fromkeys(zip(table["cohort_kind"], table["cohort_seed"], strict=True)))
    if not cohorts:
        raise ValueError("confirmation table is empty: run at least one cohort first")
    models = list(dict.fromkeys(table["model"]))
    models = [highlight, *(m for m in models if m != highlight)] if highlight in models else models
    lo_x = min(0.45, float(table["lower"].min()) - 0.02)
    hi_x = max(float(table["upper"].max()), float(table["oracle_c"].max(skipna=True) or 0)) + 0.02
    ncols = min(ncols, len(cohorts))
    nrows = int(np.ceil(len(cohorts) / ncols))
    fig = Figure(
        figsize=(4.2 * ncols + 1.2, (0.32 * len(models) + 1.1) * nrows + 0.5), layout="constrained"
    )
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    y = np.arange(len(models))[::-1]
    for ax, (kind, seed) in zip(axes.ravel(), cohorts, strict=False):
        part = table[(table["cohort_kind"] == kind) & (table["cohort_seed"] == seed)]
        part = part.set_index("model").reindex(models)
        est = part["harrell_c"].to_numpy(float)
        err = np.vstack([est - part["lower"], part["upper"] - est])
        colors = ["tab:red" if m == highlight else "black" for m in models]
        for yi, e, er, c in zip(y, est, err.T, colors, strict=True):
            ax.errorbar(e, yi, xerr=er[:, None], fmt="o", color=c, ecolor=c, capsize=2, ms=4)
            if np.isfinite(e):  # in the right margin: never over an interval
                ax.text(
                    1.02,
                    yi,
                    f"{e:.3f}",
                    transform=ax.get_yaxis_transform(),
                    ha="left",
                    va="center",
                    fontsize="x-small",
                    color=c,
                    clip_on=False,
                )
        oracle = (
            float(part["oracle_c"].dropna().iloc[0]) if part["oracle_c"].notna().any() else None
        )
        if oracle is not None:
            ax.axvline(oracle, color="tab:green", linestyle="--", label="oracle C")
        ax.axvline(0.5, color="0.6", linestyle=":", label="chance")
        title = f"{kind} cohort {seed}" + (f"\noracle C = {oracle:.3f}" if oracle else "")
        ax.set_title(title, fontsize="medium")
        ax.set_xlim(lo_x, hi_x)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel("Harrell's C (95 % bootstrap CI)")
        ax.label_outer()
    axes[0, 0].set_yticks(y, models, fontsize="small")
    for ax in axes.ravel()[len(cohorts) :]:
        ax.set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize="small")
    fig.suptitle("Pooled out-of-fold Harrell's C per cohort (unitless, 0.5 = chance)")
    return fig
