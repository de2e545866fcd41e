"""Synthetic cohorts with known truth, shared by the evaluation tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tle_kedro.data.columns import BINARY_COLUMNS

WEIBULL_SHAPE = 0.8
WEIBULL_SCALE = 40.0  # months
SURV_TIMES = (6.0, 12.0, 18.0, 24.0, 30.0)
MODELS = ("late_fusion", "transeprelap", "cox_clinical")


def weibull_survival(t: float, log_hazard: np.ndarray) -> np.ndarray:
    """S(t | x) of the Weibull proportional-hazards model used to simulate times."""
    return np.exp(-((t / WEIBULL_SCALE) ** WEIBULL_SHAPE) * np.exp(log_hazard))


def make_cohort(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clinical_validated-like table, ground truth) with times drawn from a known S(t | x)."""
    rng = np.random.default_rng(seed)
    log_hazard = rng.normal(0.0, 1.0, n)
    u = rng.exponential(size=n)
    event_time = WEIBULL_SCALE * (u * np.exp(-log_hazard)) ** (1.0 / WEIBULL_SHAPE)
    follow_up = rng.uniform(12.0, 40.0, n)
    ids = [f"sub-{i:04d}" for i in range(n)]
    onset = rng.gamma(4.0, 36.0, n)
    binary = rng.binomial(1, 0.3, (n, 8)).astype(float)
    binary[rng.random((n, 8)) < 0.05] = np.nan
    clinical = pd.DataFrame(
        {
            "participant_id": ids,
            "sex": rng.choice(["M", "F"], n, p=[0.6, 0.4]),
            "age_at_onset_months": onset,
            "age_at_surgery_months": onset + rng.gamma(3.0, 40.0, n),
            "epilepsy_duration_months": rng.gamma(3.0, 40.0, n),
            "seizure_frequency_per_month": rng.gamma(2.0, 3.0, n),
            "operative_side": rng.choice(["L", "R"], n),
            "mri_finding": rng.choice(["normal", "hippocampal_sclerosis", "other_lesion"], n),
            "recurrence": (event_time <= follow_up).astype(int),
            "time_months": np.minimum(event_time, follow_up),
        }
    )
    for k, name in enumerate(BINARY_COLUMNS):
        clinical[name] = binary[:, k]
    clinical.loc[clinical.index[:3], "age_at_onset_months"] = np.nan
    clinical["engel_class"] = np.where(clinical["recurrence"] == 1, "II", "I")
    truth = pd.DataFrame({"participant_id": ids, "true_log_hazard": log_hazard})
    return clinical, truth


def make_oof(
    truth: pd.DataFrame,
    models: tuple[str, ...] = MODELS,
    noise: tuple[float, ...] = (0.8, 0.4, 2.0),
    repeats: int = 2,
    seed: int = 1,
    n_splits: int = 5,
) -> pd.DataFrame:
    """Long out-of-fold table: risk = true log-hazard + model noise, surv_t from the Weibull.

    Every model is tested on the same folds (``n_splits`` balanced folds per repeat), as the
    modeling pipeline does with ``cv_folds``.
    """
    rng = np.random.default_rng(seed)
    lh = truth["true_log_hazard"].to_numpy()
    folds = [rng.permutation(np.arange(lh.size) % n_splits) for _ in range(repeats)]
    frames = []
    for model, sd in zip(models, noise, strict=True):
        for r in range(repeats):
            risk = lh + rng.normal(0.0, sd, lh.size)
            frame = pd.DataFrame(
                {
                    "participant_id": truth["participant_id"],
                    "model": model,
                    "repeat": r,
                    "fold": folds[r],
                    "risk": risk,
                }
            )
            for t in SURV_TIMES:
                frame[f"surv_{t:g}"] = weibull_survival(t, risk)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)
