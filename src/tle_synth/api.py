"""The generator's entry points for a script or the confirmation runner (no Kedro).

Example::

    from tle_synth import generate_cohort, load_parameters

    config, shift = load_parameters("conf/base/parameters_demo_cohort.yml")
    summary = generate_cohort(config, Path("data/confirm/seed_9001"), seed=9001, shift=shift)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tle_synth.checks import cohort_summary
from tle_synth.config import apply_shift, parse_config
from tle_synth.generate import draw_cohort
from tle_synth.writer import write_cohort

logger = logging.getLogger(__name__)


def load_parameters(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(demo_cohort, demo_cohort_shift)`` read from a parameters YAML file.

    Raises:
        ValueError: the file has no ``demo_cohort`` mapping.
    """
    content = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(content.get("demo_cohort"), Mapping):
        raise ValueError(f"{path}: no 'demo_cohort:' mapping (the generator's parameters)")
    return dict(content["demo_cohort"]), dict(content.get("demo_cohort_shift") or {})


def resolve_config(
    config: Mapping[str, Any], shift: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``config`` with ``shift`` applied when ``config['shifted']`` is true (Kedro's switch).

    Raises:
        ValueError: ``shifted`` is true but no shift is given, or the result is invalid.
    """
    if not parse_config(config).shifted:  # validated: a command-line "false" is False
        return dict(config)
    if not shift:
        raise ValueError(
            "demo_cohort.shifted is true but demo_cohort_shift is empty: give the override set "
            "(conf/base/parameters_demo_cohort.yml, key demo_cohort_shift)"
        )
    return apply_shift({**config, "shifted": False}, shift)


def generate_cohort(
    config: Mapping[str, Any],
    out_dir: str | Path,
    seed: int,
    shift: Mapping[str, Any] | None = None,
    n_patients: int | None = None,
) -> dict[str, Any]:
    """Generate a cohort into ``out_dir`` (BIDS, DESIGN.md's contract) and summarise it.

    Args:
        config: the ``demo_cohort`` parameters (validated; unknown keys are errors).
        out_dir: empty or absent folder, or a previous synthetic cohort (replaced).
        seed: cohort seed (overrides ``config['seed']``).
        shift: the confirmation override set (``demo_cohort_shift``); None = design config.
        n_patients: overrides ``config['n_patients']`` when given.

    Returns:
        :func:`~tle_synth.checks.cohort_summary` (oracle C, latent-term Cox C, clinical C,
        event rate, marginals) plus ``seed``, ``shifted``, ``seconds`` and ``out_dir``.
    """
    merged = apply_shift(config, shift) if shift else {**config, "shifted": False}
    merged["seed"] = int(seed)
    if n_patients is not None:
        merged["n_patients"] = int(n_patients)
    cfg = parse_config(merged)
    start = time.perf_counter()
    cohort = draw_cohort(cfg)
    write_cohort(cohort, Path(out_dir))
    summary: dict[str, Any] = dict(cohort_summary(cohort.participants, cohort.ground_truth))
    summary.update(
        seed=cfg.seed,
        shifted=cfg.shifted,
        seconds=time.perf_counter() - start,
        out_dir=str(out_dir),
    )
    logger.info("Synthetic cohort summary: %s", summary)
    return summary
