"""Evaluation of out-of-fold survival predictions (no Kedro).

- :mod:`.concordance`: Harrell's C, the project's one implementation (also used in training).
- :mod:`.metrics`: Uno C, time-dependent AUC, integrated Brier score (sksurv), point estimates.
- :mod:`.bootstrap`: vectorised patient-level bootstrap intervals and paired differences.
- :mod:`.calibration`: calibration groups at 12 months and the integrated calibration index.
- :mod:`.comparison`: the model comparison table and its Markdown rendering.
- :mod:`.baseline_table`: seizure-free vs recurrent clinical baseline table.
- :mod:`.plots`: forest, Kaplan–Meier, calibration, AUC(t) and baseline figures.
"""

from tle_kedro.evaluation.baseline_table import clinical_baseline_table
from tle_kedro.evaluation.comparison import (
    COMPARISON_COLUMNS,
    EvaluationResult,
    comparison_table,
    evaluate_models,
    model_metrics,
    to_markdown,
)

__all__ = [
    "COMPARISON_COLUMNS",
    "EvaluationResult",
    "clinical_baseline_table",
    "comparison_table",
    "evaluate_models",
    "model_metrics",
    "to_markdown",
]
