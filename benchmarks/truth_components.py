"""Which parts of the demo cohort's true log-hazard does each model capture?

    .venv/bin/python benchmarks/truth_components.py [oof_predictions.parquet]

Synthetic cohorts only (it reads ``derivatives/ground_truth.tsv``, which training never
reads). The true log-hazard is a weighted sum of terms (``tle_synth/outcome.py``), each a
``term_<name>`` column of the ground truth; this regresses each model's out-of-fold risk
(mean over repeats, standardised) on those terms by least squares and prints the weights next
to the truth's own weights in the same units. A term whose weight is near 0 is one the model
does not see. The clinical terms are left out (they are weak by design).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
COHORT = PROJECT / "data" / "01_raw" / "cohort"
CLINICAL_TERMS = ("term_secondary_generalization", "term_log_duration")


def truth_terms(cohort: Path = COHORT) -> pd.DataFrame:
    """The imaging terms of the true log-hazard, one row per patient, and the truth."""
    gt = pd.read_csv(cohort / "derivatives" / "ground_truth.tsv", sep="\t")
    columns = [c for c in gt if c.startswith("term_") and c not in CLINICAL_TERMS]
    terms = gt[columns].rename(columns=lambda c: c.removeprefix("term_"))
    terms = terms.loc[:, terms.std() > 0]  # a constant term has no weight to estimate
    return terms.assign(truth=gt["true_log_hazard"]).set_index(gt["participant_id"])


def weights(risk: pd.Series, terms: pd.DataFrame) -> tuple[np.ndarray, float]:
    """Least-squares weights of the standardised ``risk`` on ``terms`` (+ intercept), R²."""
    y = risk.reindex(terms.index).to_numpy(float)
    y = (y - y.mean()) / y.std()
    x = np.c_[terms.to_numpy(float), np.ones(len(terms))]
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    fitted = x @ beta
    r2 = 1 - ((y - fitted) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    return beta[:-1], float(r2)


def main() -> None:
    path = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else PROJECT / "data/07_model_output/oof_predictions.parquet"
    )
    oof = pd.read_parquet(path)
    terms = truth_terms()
    x = terms.drop(columns="truth")
    rows = {"(truth)": weights(terms["truth"], x)}
    for model, part in oof.groupby("model", sort=False):
        rows[str(model)] = weights(part.groupby("participant_id")["risk"].mean(), x)
    table = pd.DataFrame(
        [[*np.round(b, 2), round(r2, 2)] for b, r2 in rows.values()],
        index=list(rows),
        columns=[*x.columns, "R²"],
    )
    print(table.to_string())


if __name__ == "__main__":
    main()
