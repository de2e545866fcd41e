"""Run the comparison on design or confirmation cohorts, one ``kedro run`` process per step.

Each cohort is generated (``demo_cohort`` pipeline, seed and size from
``parameters_confirmation.yml``), then ``data_processing … evaluation`` runs on it as one
separate ``kedro run``: a fresh process per cohort keeps memory and torch state from piling
up over an hour of runs, and is exactly the command a user would type. Runtime parameters go
in a ``kedro run --config`` file written into the cohort's folder (nested dictionaries such
as the shift override do not fit ``--params``), which also records what ran.

Resumable: a cohort whose ``comparison_table.csv`` exists is skipped unless forced, and an
existing generated cohort is reused.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tle_kedro.confirmation.config import (
    Cohort,
    ConfirmationConfig,
    demo_cohort_override,
    runtime_params,
)

logger = logging.getLogger(__name__)

_ENV = {"DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg"}


@dataclass(frozen=True)
class StepTiming:
    """Wall time of one step on one cohort (``skipped`` = already done, not rerun)."""

    cohort_seed: int
    cohort_kind: str
    step: str
    seconds: float
    skipped: bool


class KedroRunError(RuntimeError):
    """A ``kedro run`` of the runner failed; the message names its log file."""


def load_parameters(project_dir: Path, env: str | None) -> dict[str, Any]:
    """The project's merged parameters (base + ``env``), as a ``kedro run`` would see them."""
    from kedro.config import OmegaConfigLoader

    from tle_kedro.settings import CONFIG_LOADER_ARGS

    args: dict[str, Any] = dict(CONFIG_LOADER_ARGS)
    if env:
        args["default_run_env"] = env
    loader = OmegaConfigLoader(conf_source=str(project_dir / "conf"), **args)
    return dict(loader["parameters"])


class CohortRunner:
    """Generates and evaluates cohorts in ``project_dir`` with ``python -m kedro run``.

    Args:
        config: the validated ``confirmation:`` parameters.
        parameters: the project's merged parameters (``demo_cohort`` and, when the generator
            has one, ``demo_cohort_shift``).
        project_dir: the Kedro project root (every relative path is relative to it).
        env: Kedro environment passed to every run (e.g. ``smoke``), or None.
        force: rerun cohorts whose comparison table exists, and regenerate cohorts.
    """

    def __init__(
        self,
        config: ConfirmationConfig,
        parameters: Mapping[str, Any],
        project_dir: Path,
        env: str | None = None,
        force: bool = False,
    ) -> None:
        self.config = config
        self.project_dir = project_dir
        self.env = env
        self.force = force
        demo = parameters.get("demo_cohort") or {}
        config.check_against_demo_seed(demo.get("seed"))
        self._has_switch = "shifted" in demo
        self._shift = dict(parameters.get("demo_cohort_shift") or {}) or None

    def run(self, cohorts: Sequence[Cohort]) -> list[StepTiming]:
        """Generate and evaluate every cohort in turn; per-step timings, skipped ones too."""
        if any(self.config.is_shifted(c) for c in cohorts) and self._shift is None:
            logger.warning(
                "confirmation.shift is true but the parameters have no `demo_cohort_shift` "
                "(the generator's override set for confirmation cohorts): shifted cohorts are "
                "generated WITHOUT a shift, from the design configuration with fresh seeds."
            )
        timings: list[StepTiming] = []
        start = time.perf_counter()
        for i, cohort in enumerate(cohorts, 1):
            logger.info(
                "[%d/%d] %s cohort %d → %s", i, len(cohorts), cohort.kind, cohort.seed, cohort.root
            )
            timings += self.run_cohort(cohort)
            total = sum(t.seconds for t in timings if t.cohort_seed == cohort.seed)
            logger.info(
                "[%d/%d] %s cohort %d done in %.1f min (elapsed %.1f min)",
                i,
                len(cohorts),
                cohort.kind,
                cohort.seed,
                total / 60,
                (time.perf_counter() - start) / 60,
            )
        return timings

    def run_cohort(self, cohort: Cohort) -> list[StepTiming]:
        """Generate ``cohort`` (unless present) and run the comparison on it (unless done)."""
        root = self.project_dir / cohort.root
        if (self.project_dir / cohort.comparison_table).exists() and not self.force:
            logger.info(
                "%s cohort %d: comparison table exists, skipped (--force reruns it)",
                cohort.kind,
                cohort.seed,
            )
            return [StepTiming(cohort.seed, cohort.kind, "all", 0.0, True)]
        demo = demo_cohort_override(cohort, self.config, self._shift, self._has_switch)
        params = runtime_params(cohort, self.config, demo)
        timings = []
        participants = self.project_dir / cohort.cohort_dir / "participants.tsv"
        if participants.exists() and not self.force:
            logger.info("%s cohort %d: reusing the generated cohort", cohort.kind, cohort.seed)
            timings.append(StepTiming(cohort.seed, cohort.kind, "generate", 0.0, True))
        else:
            seconds = self._kedro_run(root, "generate", [self.config.generator_pipeline], params)
            timings.append(StepTiming(cohort.seed, cohort.kind, "generate", seconds, False))
        seconds = self._kedro_run(root, "compare", list(self.config.pipelines), params)
        timings.append(StepTiming(cohort.seed, cohort.kind, "compare", seconds, False))
        # kept with the cohort, so the report gives every cohort's cost after a resume too
        frame = pd.DataFrame([asdict(t) for t in timings])
        frame.to_csv(self.project_dir / cohort.timings, index=False)
        return timings

    def _kedro_run(
        self, root: Path, step: str, pipelines: list[str], params: dict[str, Any]
    ) -> float:
        """One ``kedro run`` with a config file in ``root``; its output goes to a log file."""
        root.mkdir(parents=True, exist_ok=True)
        run_config = root / f"kedro_run_{step}.yml"
        run: dict[str, Any] = {"pipelines": ",".join(pipelines), "params": params}
        if self.env:
            run["env"] = self.env
        run_config.write_text(yaml.safe_dump({"run": run}, sort_keys=False))
        log = root / f"kedro_run_{step}.log"
        cmd = [sys.executable, "-m", "kedro", "run", f"--config={run_config.resolve()}"]
        logger.info("%s: %s (log: %s)", step, " ".join(cmd[1:]), log)
        start = time.perf_counter()
        with log.open("w") as out:
            proc = subprocess.run(
                cmd,
                cwd=self.project_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **_ENV},
                check=False,
            )
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
            raise KedroRunError(
                f"`{' '.join(cmd[1:])}` failed (exit {proc.returncode}) after {seconds:.0f} s; "
                f"full log: {log}\n{tail}"
            )
        logger.info("%s: %.1f s", step, seconds)
        return seconds
