"""``python -m tle_kedro.confirmation {design,confirmation,report}`` (docs/confirmation.md)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd

from tle_kedro.confirmation.config import ConfirmationConfig, plan_cohorts
from tle_kedro.confirmation.report import (
    by_modality_markdown,
    collect,
    collect_by_modality,
    collect_timings,
    summarise,
    to_report_markdown,
)
from tle_kedro.confirmation.runner import CohortRunner, load_parameters
from tle_kedro.evaluation.plots import confirmation_forest_plot

logger = logging.getLogger("tle_kedro.confirmation")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tle_kedro.confirmation",
        description="Run the model comparison on design or confirmation cohorts and report.",
    )
    parser.add_argument(
        "what",
        choices=["design", "confirmation", "report"],
        help="which cohorts to run (then report), or only rewrite the report",
    )
    parser.add_argument("--env", default=None, help="Kedro environment, e.g. smoke")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="a subset of the configured seeds of that kind",
    )
    parser.add_argument(
        "--force", action="store_true", help="regenerate and rerun cohorts that are already done"
    )
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    return parser.parse_args(argv)


def write_report(config: ConfirmationConfig, project_dir: Path) -> pd.DataFrame:
    """Collect every configured cohort that has a comparison table and write the reports."""
    cohorts = plan_cohorts(config, "design") + plan_cohorts(config, "confirmation")
    table = collect(cohorts, project_dir)
    out = project_dir / config.report_dir
    out.mkdir(parents=True, exist_ok=True)
    collect_timings(cohorts, project_dir).to_csv(out / "confirmation_timings.csv", index=False)
    if table.empty:
        logger.warning("no cohort has a comparison table yet: nothing to report")
        return table
    summary = summarise(table)
    table.to_csv(out / "confirmation.csv", index=False)
    summary.to_csv(out / "confirmation_summary.csv", index=False)
    md = to_report_markdown(table, summary, config.reference_model, config.target_ratio)
    (out / "confirmation_summary.md").write_text(md)
    fig = confirmation_forest_plot(table, highlight=config.reference_model)
    fig.savefig(out / "confirmation_forest.png", dpi=120)
    logger.info("wrote %s/confirmation{.csv,_summary.csv,_summary.md,_forest.png}", out)
    by_modality = collect_by_modality(cohorts, project_dir)
    if len(by_modality):
        by_modality.to_csv(out / "confirmation_by_modality.csv", index=False)
        (out / "confirmation_by_modality.md").write_text(by_modality_markdown(by_modality))
        logger.info("wrote %s/confirmation_by_modality{.csv,.md}", out)
    return table


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    project_dir = args.project_dir.resolve()
    parameters = load_parameters(project_dir, args.env)
    if "confirmation" not in parameters:
        raise SystemExit("no `confirmation:` parameters (conf/base/parameters_confirmation.yml)")
    config = ConfirmationConfig(**parameters["confirmation"])
    if args.what != "report":
        cohorts = plan_cohorts(config, args.what, tuple(args.seeds) if args.seeds else None)
        runner = CohortRunner(config, parameters, project_dir, env=args.env, force=args.force)
        start = time.perf_counter()
        runner.run(cohorts)
        logger.info(
            "%d %s cohort(s) in %.1f min",
            len(cohorts),
            args.what,
            (time.perf_counter() - start) / 60,
        )
    write_report(config, project_dir)


if __name__ == "__main__":
    main()
