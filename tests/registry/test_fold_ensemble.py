"""The fold-ensemble champion: centred member risks, one out-of-fold baseline, the pyfunc."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from tests.conftest import one_torch_thread
from tests.registry import TinyBundle, bundle_fixture, fit_tiny, model_input
from tle_kedro.models.survival import breslow_baseline
from tle_kedro.registry.explain import explain, explain_patient
from tle_kedro.registry.pyfunc import TLESurvivalModel, risk_groups
from tle_kedro.training.data import outcome_arrays
from tle_kedro.training.fold_ensemble import FoldEnsemble, fold_ensemble

bundle = bundle_fixture("cohort")


@dataclass(frozen=True)
class Folds:
    models: dict[str, object]
    oof: pd.DataFrame
    ensemble: FoldEnsemble


@pytest.fixture(scope="module")
def folds(bundle: TinyBundle) -> Iterator[Folds]:
    """Two fold models of the 6-patient cohort, each scoring the half it did not see."""
    clinical, tensors = bundle.clinical, bundle.tensors
    halves = [list(range(0, 6, 2)), list(range(1, 6, 2))]
    models, rows = {}, []
    with one_torch_thread():
        for fold, test in enumerate(halves):
            train = clinical.drop(index=test).reset_index(drop=True)
            fitted = fit_tiny(train, tensors)
            models[f"transeprelap-r0-f{fold}"] = fitted
            ids = list(clinical["participant_id"].iloc[test])
            risk = fitted.log_risk(fitted.arrays(ids, tensors, clinical))
            rows.append(
                pd.DataFrame(
                    {"participant_id": ids, "model": "transeprelap", "repeat": 0, "fold": fold}
                ).assign(risk=risk, surv_12=0.5, surv_24=0.4)
            )
        oof = pd.concat(rows, ignore_index=True)
        yield Folds(models, oof, fold_ensemble("transeprelap", models, oof, clinical, tensors))


def test_members_are_centred_on_the_cohort_and_averaged(bundle: TinyBundle, folds: Folds) -> None:
    ensemble = folds.ensemble
    assert ensemble.keys == ["transeprelap-r0-f0", "transeprelap-r0-f1"]
    ids = list(bundle.clinical["participant_id"])
    data = ensemble.arrays(ids, bundle.tensors, bundle.clinical)
    centred = ensemble.member_risks(data)  # (2, 6)
    np.testing.assert_allclose(centred.mean(axis=1), 0.0, atol=1e-9)
    raw = [m.log_risk(d) for m, d in zip(ensemble.members, data, strict=True)]
    np.testing.assert_allclose(ensemble.offsets, [r.mean() for r in raw])
    np.testing.assert_allclose(ensemble.log_risk(data), centred.mean(axis=0))
    prediction = ensemble.predict(data)
    assert ((prediction.surv_24 <= prediction.surv_12) & (prediction.surv_12 <= 1)).all()


def test_the_baseline_comes_from_centred_out_of_fold_risks(
    bundle: TinyBundle, folds: Folds
) -> None:
    offsets = dict(zip([0, 1], folds.ensemble.offsets, strict=True))
    oof = folds.oof.assign(risk=folds.oof["risk"] - folds.oof["fold"].map(offsets))
    table = bundle.clinical.set_index("participant_id").loc[oof["participant_id"]].reset_index()
    time, event = outcome_arrays(table)
    expected = breslow_baseline(oof["risk"].to_numpy(), event, time)
    np.testing.assert_allclose(folds.ensemble.baseline.times, expected.times)
    np.testing.assert_allclose(
        folds.ensemble.baseline.cumulative_hazard, expected.cumulative_hazard
    )


def test_registered_fold_ensemble_predicts_raw_files_like_its_members(
    bundle: TinyBundle, folds: Folds
) -> None:
    ensemble = folds.ensemble
    ids = list(bundle.clinical["participant_id"])
    training = ensemble.predict(ensemble.arrays(ids, bundle.tensors, bundle.clinical))
    groups = risk_groups(ensemble, training, folds.oof, "transeprelap")
    model = TLESurvivalModel(ensemble, bundle.params, groups)
    out = model.predict(None, model_input(bundle.root))
    np.testing.assert_allclose(out["risk"].to_numpy(float), training.risk, rtol=1e-5, atol=1e-6)
    assert groups.scale == "log_risk" and set(out["risk_group"]) <= {"low", "high"}


def test_its_explanation_is_the_mean_of_the_members(bundle: TinyBundle, folds: Folds) -> None:
    ensemble = folds.ensemble
    ids = list(bundle.clinical["participant_id"])
    data = ensemble.arrays(ids, bundle.tensors, bundle.clinical)
    mean = explain_patient(ensemble, data, 2, n_steps=4)
    members = zip(ensemble.members, data, strict=True)
    parts = [explain(m.model, d.batch([2]), n_steps=4) for m, d in members]
    np.testing.assert_allclose(
        mean.attributions, (parts[0].attributions + parts[1].attributions) / 2, rtol=1e-5
    )
    assert mean.risk == pytest.approx(float(ensemble.log_risk(data)[2]), abs=1e-6)  # float32
    assert mean.rollout is not None and mean.rollout.weights.sum() == pytest.approx(1.0)


def test_classical_or_missing_fold_models_are_refused(bundle: TinyBundle, folds: Folds) -> None:
    with pytest.raises(ValueError, match="keep_fold_models"):
        fold_ensemble("late_fusion", folds.models, folds.oof, bundle.clinical, bundle.tensors)
    classical = {"cox_clinical-r0-f0": object()}
    with pytest.raises(ValueError, match="refit"):
        fold_ensemble("cox_clinical", classical, folds.oof, bundle.clinical, bundle.tensors)
    with pytest.raises(ValueError, match="no rows"):
        fold_ensemble(
            "transeprelap", folds.models, folds.oof.iloc[:0], bundle.clinical, bundle.tensors
        )
