from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from tests.evaluation import make_cohort, make_oof
from tle_kedro.evaluation import plots
from tle_kedro.evaluation.comparison import evaluate_models
from tle_kedro.evaluation.decision_curve import model_decision_curve


@pytest.fixture(scope="module")
def result():
    clinical, truth = make_cohort(120, seed=5)
    res = evaluate_models(make_oof(truth), clinical, truth, n_boot=50, n_boot_secondary=0)
    return res, clinical


def _check(fig: Figure, tmp_path, xunit: str, yunit: str) -> None:
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert xunit in ax.get_xlabel() and yunit in ax.get_ylabel()
    assert ax.get_title() or fig.get_suptitle()
    out = tmp_path / "plot.png"
    fig.savefig(out, dpi=60)
    assert out.stat().st_size > 1000


def test_forest_plot_draws_oracle_line(result, tmp_path):
    res, _ = result
    fig = plots.forest_plot(res.comparison)
    _check(fig, tmp_path, "C-index", "model")
    assert "unitless" in fig.axes[0].get_xlabel()
    assert any("oracle" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
    no_oracle = res.comparison.drop(columns=["oracle_c", "gap_to_oracle"])
    legend = plots.forest_plot(no_oracle).axes[0].get_legend().get_texts()
    assert not any("oracle" in t.get_text() for t in legend)


def test_km_plot_has_two_groups_and_logrank_p(result, tmp_path):
    res, _ = result
    d = res.data
    fig = plots.km_risk_groups_plot(d.time, d.event, d.risk[0], d.models[0])
    _check(fig, tmp_path, "months", "probability")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(t.startswith("log-rank p") for t in texts)
    assert len(fig.axes) == 2  # survival axes + at-risk counts axis


def test_calibration_plot_has_one_panel_per_model(result, tmp_path):
    res, _ = result
    fig = plots.calibration_plot(res.calibration, t=12.0)
    _check(fig, tmp_path, "12 months", "12 months")
    assert sum(ax.get_visible() for ax in fig.axes) == 3


def test_decision_curve_plot_has_every_model_treat_all_and_treat_none(result, tmp_path):
    res, _ = result
    curve = model_decision_curve(res.data, 12.0, [0.1, 0.2, 0.3])
    fig = plots.decision_curve_plot(curve, t=12.0)
    _check(fig, tmp_path, "12 months", "Net benefit")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == [*res.data.models, "treat_all", "treat_none"]


def test_time_dependent_auc_plot_has_one_line_per_model(result, tmp_path):
    res, _ = result
    d = res.data
    risks = dict(zip(d.models, d.risk, strict=True))
    fig = plots.time_dependent_auc_plot(d.time, d.event, risks)
    _check(fig, tmp_path, "months", "AUC")
    assert len(fig.axes[0].get_lines()) == 3 + 1  # models + chance line
    with pytest.raises(ValueError, match="follow-up"):
        plots.time_dependent_auc_plot(d.time, d.event, risks, times=(500.0,))


def test_clinical_baseline_figure_has_a_panel_per_variable(result, tmp_path):
    _, clinical = result
    fig = plots.clinical_baseline_figure(clinical)
    _check(fig, tmp_path, "outcome group", "months")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 16
    units = {ax.get_title().split(" (p = ")[0]: ax.get_ylabel() for ax in visible}
    assert units["seizure frequency"] == "seizures / month"
    assert units["sex"] == "% of group"
    assert all(" (p = " in ax.get_title() for ax in visible)
    assert np.isclose(sum(p.get_height() for p in visible[5].patches[::1]), 200.0)


def test_confirmation_forest_has_one_panel_per_cohort_with_oracle_lines(tmp_path):
    rows = []
    for kind, seed, oracle in (
        ("design", 1, 0.8),
        ("confirmation", 2, 0.85),
        ("confirmation", 3, 0.9),
    ):
        for model, c in (
            ("cox_clinical", 0.6),
            ("transeprelap", 0.75),
            ("cox_region_measures", 0.7),
        ):
            rows.append(
                dict(
                    cohort_seed=seed,
                    cohort_kind=kind,
                    model=model,
                    harrell_c=c,
                    lower=c - 0.05,
                    upper=c + 0.05,
                    oracle_c=oracle,
                )
            )
    fig = plots.confirmation_forest_plot(pd.DataFrame(rows))
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3
    assert [ax.get_title().splitlines()[0] for ax in visible] == [
        "design cohort 1",
        "confirmation cohort 2",
        "confirmation cohort 3",
    ]
    ticks = {t.get_position()[1]: t.get_text() for t in visible[0].get_yticklabels()}
    assert ticks[max(ticks)] == "transeprelap"  # the highlighted model on top of every panel
    oracle_lines = [ln for ln in visible[2].get_lines() if ln.get_linestyle() == "--"]
    assert oracle_lines and oracle_lines[0].get_xdata()[0] == pytest.approx(0.9)
    _check(fig, tmp_path, "Harrell", "")
