"""tle_synth: the synthetic TLE cohort generator, a tool beside the tle_kedro pipeline.

It draws its own anatomy (territories in MNI mm), lesions, scanners and outcome, and imports
nothing from ``tle_kedro`` and no atlas the pipeline measures with (a test parses every module
to hold this). Entry points:

- :func:`generate_cohort` ``(config, out_dir, seed, shift=None)``: write a cohort, return its
  summary (oracle C, event rate ...);
- :func:`load_parameters` ``(path)``: ``(demo_cohort, demo_cohort_shift)`` from a YAML file;
- :func:`apply_shift` ``(config, shift)``: the validated confirmation configuration;
- :func:`draw_cohort` / :func:`write_cohort`: tables and specs, then images (what the Kedro
  ``demo_cohort`` node and dataset use).

See ``docs/demo_cohort.md``.
"""

from __future__ import annotations

from tle_synth.api import generate_cohort, load_parameters, resolve_config
from tle_synth.config import DemoCohortConfig, apply_shift, parse_config
from tle_synth.generate import draw_cohort
from tle_synth.writer import SyntheticCohort, write_cohort

__all__ = [
    "DemoCohortConfig",
    "SyntheticCohort",
    "apply_shift",
    "draw_cohort",
    "generate_cohort",
    "load_parameters",
    "parse_config",
    "resolve_config",
    "write_cohort",
]
