"""Champion modes (``registry.champion``): refit vs fold ensemble, on one processed cohort.

Accuracy: hold out a patient-level 30 % test split (stratified by the event), cross-validate
``--model`` on the other 70 % with the project's configured defaults (``conf/base``, Optuna
tuning off: both modes then use the configured hyperparameters), and score on the held-out
30 % both the fold ensemble of that cross-validation and the model refitted on the whole 70 %:
Harrell C with a patient-bootstrap 95 % interval, and the paired difference.

Cost: pickled size and inference time per patient of both modes, from the same fits.

    python benchmarks/champion_modes.py DATA_DIR --model transeprelap --seed 0
    python benchmarks/champion_modes.py DATA_DIR --model rsf_region_measures --seed 0

Cost alone, from the fold models a full run kept (no training; the refit is represented by one
member: the same network, tokenizer and baseline, fitted on 80 % of the patients):

    python benchmarks/champion_modes.py DATA_DIR --model transeprelap \
        --fold-models DATA_DIR/06_models/transeprelap/cv_fold_models.pkl/<version>/<same name>

``DATA_DIR`` is a cohort's data root after ``data_processing`` and ``feature_engineering``
(``02_intermediate/clinical_validated.parquet``, ``03_primary/image_tensors``,
``04_feature/clinical_features.pkl`` and ``clinical_tokenizer.pkl``), e.g.
``data/design/84905``. Prints both tables; ``--out PREFIX`` also writes them as CSV.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from tle_kedro.config_loader import project_parameters
from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.datasets.tensors import ImageTensorsDataset
from tle_kedro.evaluation.bootstrap import (
    harrell_c_bootstrap,
    paired_difference,
    percentile_interval,
    resample_counts,
    resample_indices,
)
from tle_kedro.evaluation.concordance import harrell_c
from tle_kedro.features.folds import make_cv_folds
from tle_kedro.features.imaging import imaging_features
from tle_kedro.training.classical import fit_final_classical
from tle_kedro.training.cv import CVData, run_cross_validation
from tle_kedro.training.final import fit_final_model
from tle_kedro.training.fold_ensemble import champion_fold_ensemble
from tle_kedro.training.parallel import resolve_executor
from tle_kedro.training.specs import build_specs, parse_modeling_params

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
MODES = ("refit", "fold_ensemble")


@dataclass(frozen=True)
class Cohort:
    clinical: pd.DataFrame
    tensors: ImageTensors
    recipe: Any  # unfitted clinical design-matrix recipe (clinical_features)
    tokenizer: Any  # unfitted clinical tokenizer


def load_cohort(data_dir: Path) -> Cohort:
    """The processed datasets of one cohort's data root (the catalog's file layout)."""
    clinical = pd.read_parquet(data_dir / "02_intermediate" / "clinical_validated.parquet")
    tensors = ImageTensorsDataset(str(data_dir / "03_primary" / "image_tensors")).load()
    feature = data_dir / "04_feature"
    recipe = pickle.loads((feature / "clinical_features.pkl").read_bytes())
    tokenizer = pickle.loads((feature / "clinical_tokenizer.pkl").read_bytes())
    return Cohort(clinical, tensors, recipe, tokenizer)


def holdout_split(
    clinical: pd.DataFrame, fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """(development ids, test ids): a patient-level split stratified by ``recurrence``."""
    ids = clinical["participant_id"].to_numpy()
    dev, test = train_test_split(
        ids, test_size=fraction, stratify=clinical["recurrence"].to_numpy(), random_state=seed
    )
    return sorted(dev), sorted(test)


def fit_both(
    cohort: Cohort, model: str, dev_ids: list[str], params: dict[str, Any], seed: int
) -> dict[str, tuple[Any, float]]:
    """``{mode: (fitted, seconds)}``: the fold ensemble of a cross-validation on ``dev_ids``
    (its cost is that cross-validation) and the refit on all of ``dev_ids``."""
    dev = cohort.clinical[cohort.clinical["participant_id"].isin(dev_ids)].reset_index(drop=True)
    cv = params["cv"]
    modeling, model_cfg, train_cfg, classical, _ = parse_modeling_params(
        params["modeling"], cohort.tensors.grid_shape, cohort.tensors.affine, params["atlas"]
    )
    spec = build_specs([model], model_cfg, train_cfg)[0]
    # the folds run where the pipeline runs them (modeling.executor: one worker per core)
    executor = resolve_executor(modeling.executor, train_cfg.device)
    data = CVData(
        clinical=dev,
        folds=make_cv_folds(dev, cv["n_splits"], cv["n_repeats"], seed),
        image_tensors=cohort.tensors,
        imaging_features=imaging_features(cohort.tensors, cohort.clinical, model_cfg.atlas),
        recipe=cohort.recipe,
        tokenizer=cohort.tokenizer,
    )
    start = time.perf_counter()
    result = run_cross_validation(
        [spec], data, classical=classical, keep_models=True, executor=executor
    )
    members = {f"{m}-r{r}-f{f}": v for (m, r, f), v in result.models.items()}
    ensemble = champion_fold_ensemble(
        model, spec.family, members, result.oof, dev, cohort.tensors, cohort.recipe, model_cfg.atlas
    )
    fitted = {"fold_ensemble": (ensemble, time.perf_counter() - start)}
    start = time.perf_counter()
    if spec.family == "neural":
        refit, _ = fit_final_model(spec, data)
    else:
        refit = fit_final_classical(
            model, spec.family, dev, cohort.tensors, cohort.recipe, classical, model_cfg.atlas
        )
    fitted["refit"] = (refit, time.perf_counter() - start)
    return fitted


def score(
    fitted: dict[str, tuple[Any, float]],
    cohort: Cohort,
    test_ids: list[str],
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
    """Harrell C on ``test_ids`` of each mode, bootstrap interval, paired Δ vs refit."""
    # every patient's inputs (a classical model measures the whole tensor set), test rows kept
    ids = list(cohort.clinical["participant_id"])
    at = [ids.index(p) for p in test_ids]
    risks = np.stack(
        [
            f.log_risk(f.arrays(ids, cohort.tensors, cohort.clinical))[at]
            for f, _ in (fitted[m] for m in MODES)
        ]
    )  # (2, n_test)
    test = cohort.clinical.set_index("participant_id").loc[test_ids]
    time_ = test["time_months"].to_numpy(float)
    event = test["recurrence"].to_numpy(int).astype(bool)
    counts = resample_counts(resample_indices(len(test_ids), n_boot, seed), len(test_ids))
    boot = harrell_c_bootstrap(time_, event, risks, counts)  # (2, B)
    c = [harrell_c(r, event, time_) for r in risks]
    rows = []
    for i, mode in enumerate(MODES):
        ci = percentile_interval(c[i], boot[i], name=mode)
        delta = paired_difference(boot[i], boot[0], c[i] - c[0])
        rows.append(
            {
                "mode": mode,
                "harrell_c": c[i],
                "c_lo": ci.lo,
                "c_hi": ci.hi,
                "delta_vs_refit": delta.estimate,
                "delta_lo": delta.lo,
                "delta_hi": delta.hi,
                "fit_seconds": fitted[mode][1],
                "n_test": len(test_ids),
                "n_test_events": int(event.sum()),
            }
        )
    return pd.DataFrame(rows)


def cost(fitted: dict[str, tuple[Any, float]], cohort: Cohort, repeats: int) -> pd.DataFrame:
    """Pickled size (MB) and median inference seconds per patient of each mode (model inputs
    and prediction; the pyfunc's image preprocessing, the same for both, is not included)."""
    ids = list(cohort.clinical["participant_id"])
    rows = []
    for mode in MODES:
        model = fitted[mode][0]
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.predict(model.arrays(ids, cohort.tensors, cohort.clinical))
            seconds.append((time.perf_counter() - start) / len(ids))
        size = len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)) / 1e6
        rows.append(
            {
                "mode": mode,
                "members": len(getattr(model, "members", [model])),
                "pickled_mb": size,
                "ms_per_patient": 1e3 * statistics.median(seconds),
            }
        )
    return pd.DataFrame(rows)


def compare(
    data_dir: Path,
    model: str,
    seed: int,
    *,
    fraction: float = 0.3,
    n_boot: int = 1000,
    repeats: int = 5,
    params: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accuracy table, cost table) of both modes of ``model`` on the cohort ``data_dir``."""
    params = params if params is not None else project_parameters(ROOT / "conf")
    cohort = load_cohort(data_dir)
    dev_ids, test_ids = holdout_split(cohort.clinical, fraction, seed)
    fitted = fit_both(cohort, model, dev_ids, params, seed)
    accuracy = score(fitted, cohort, test_ids, n_boot, seed).assign(model=model, seed=seed)
    return accuracy, cost(fitted, cohort, repeats).assign(model=model)


def stored_cost(data_dir: Path, model: str, fold_models: Path, repeats: int) -> pd.DataFrame:
    """:func:`cost` of the fold ensemble of a run's kept fold models (``fold_models``: a
    ``cv_fold_models.pkl``) and of one of its members (the size and speed of a refit)."""
    params = project_parameters(ROOT / "conf")
    cohort = load_cohort(data_dir)
    every = pickle.loads(fold_models.read_bytes())
    members = {k: v for k, v in every.items() if str(k).startswith(f"{model}-r")}
    del every
    _, model_cfg, train_cfg, _, _ = parse_modeling_params(
        params["modeling"], cohort.tensors.grid_shape, cohort.tensors.affine, params["atlas"]
    )
    spec = build_specs([model], model_cfg, train_cfg)[0]
    oof = pd.read_parquet(data_dir / "07_model_output" / "oof_predictions.parquet")
    ensemble = champion_fold_ensemble(
        model,
        spec.family,
        members,
        oof,
        cohort.clinical,
        cohort.tensors,
        cohort.recipe,
        model_cfg.atlas,
    )
    one = ensemble.members[0]
    return cost({"refit": (one, np.nan), "fold_ensemble": (ensemble, np.nan)}, cohort, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--model", default="transeprelap")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5, help="inference timing repeats")
    parser.add_argument("--out", type=Path, help="also write the tables (CSV, prefix)")
    parser.add_argument("--fold-models", type=Path, help="cost only, from these fold models")
    parser.add_argument(
        "--epochs",
        type=int,
        help="override modeling.train.epochs: for the cost alone (size and speed do not "
        "depend on the weights; keep it >= train.snapshots), never for the accuracy",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.fold_models is not None:
        table = stored_cost(args.data_dir, args.model, args.fold_models, args.repeats)
        print(table.to_string(index=False))  # noqa: T201
        return
    params = project_parameters(ROOT / "conf")
    if args.epochs is not None:
        train = {**params["modeling"].get("train", {}), "epochs": args.epochs}
        params = {**params, "modeling": {**params["modeling"], "train": train}}
    accuracy, costs = compare(
        args.data_dir,
        args.model,
        args.seed,
        fraction=args.test_fraction,
        n_boot=args.n_boot,
        repeats=args.repeats,
        params=params,
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(accuracy.to_string(index=False))  # noqa: T201
        print(costs.to_string(index=False))  # noqa: T201
    if args.out is not None:
        accuracy.to_csv(args.out.with_suffix(".accuracy.csv"), index=False)
        costs.to_csv(args.out.with_suffix(".cost.csv"), index=False)


if __name__ == "__main__":
    main()
