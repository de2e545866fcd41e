"""The fold-ensemble champion: centred member risks, one out-of-fold baseline, the pyfunc;
classical fold ensembles average their members' survival curves."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import one_torch_thread
from tests.registry import TinyBundle, bundle_fixture, model_input
from tests.registry.folds import cross_validated, fold_models
from tle_kedro.data.atlas import AtlasConfig
from tle_kedro.features.clinical import make_clinical_recipe
from tle_kedro.models.survival import breslow_baseline
from tle_kedro.registry.explain import explain, explain_measures, explain_patient, has_voxel_maps
from tle_kedro.registry.pyfunc import TLESurvivalModel, risk_groups
from tle_kedro.training.data import outcome_arrays
from tle_kedro.training.fold_ensemble import (
    ClassicalFoldEnsemble,
    FoldEnsemble,
    classical_fold_ensemble,
    fold_ensemble,
)

ATLAS = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "conf" / "base" / "parameters.yml").read_text()
)["atlas"]
CLASSICAL = ["cox_region_measures", "rsf_region_measures"]

bundle = bundle_fixture("cohort")


@dataclass(frozen=True)
class Folds:
    models: dict[str, dict[str, object]]  # model → its cv_fold_models
    oof: pd.DataFrame  # the real out-of-fold rows (risk on the pooled log H(24) scale)
    ensemble: FoldEnsemble
    classical: dict[str, ClassicalFoldEnsemble]


@pytest.fixture(scope="module")
def folds(bundle: TinyBundle) -> Iterator[Folds]:
    """Two outer folds of the 6-patient cohort, every model's fold models kept."""
    result = cross_validated(bundle, ["transeprelap", *CLASSICAL], ATLAS)
    models = {m: fold_models(result, m) for m in ["transeprelap", *CLASSICAL]}
    clinical, tensors = bundle.clinical, bundle.tensors
    atlas = AtlasConfig.model_validate(ATLAS)
    with one_torch_thread():
        ensemble = fold_ensemble(
            "transeprelap", models["transeprelap"], result.oof, clinical, tensors
        )
        classical = {
            m: classical_fold_ensemble(
                m, m, models[m], result.oof, clinical, tensors, make_clinical_recipe(), atlas
            )
            for m in CLASSICAL
        }
        yield Folds(models, result.oof, ensemble, classical)


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


def test_the_baseline_comes_from_centred_out_of_fold_log_risks(
    bundle: TinyBundle, folds: Folds
) -> None:
    # each patient's log-risk by the member that did not train on it, minus that member's
    # offset (not the oof table's risk column, which is log H(24 | x) of the member)
    ensemble = folds.ensemble
    ids = list(bundle.clinical["participant_id"])
    centred = ensemble.member_risks(ensemble.arrays(ids, bundle.tensors, bundle.clinical))
    rows = folds.oof[folds.oof["model"] == "transeprelap"]
    oof = centred[rows["fold"].to_numpy(), [ids.index(p) for p in rows["participant_id"]]]
    table = bundle.clinical.set_index("participant_id").loc[rows["participant_id"]].reset_index()
    time, event = outcome_arrays(table)
    expected = breslow_baseline(oof, event, time)
    np.testing.assert_allclose(ensemble.baseline.times, expected.times)
    np.testing.assert_allclose(
        ensemble.baseline.cumulative_hazard, expected.cumulative_hazard, rtol=1e-6
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


@pytest.mark.parametrize("model", CLASSICAL)
def test_classical_ensemble_is_the_mean_of_its_members(
    bundle: TinyBundle, folds: Folds, model: str
) -> None:
    ensemble = folds.classical[model]
    assert ensemble.keys == [f"{model}-r0-f0", f"{model}-r0-f1"]
    ids = list(bundle.clinical["participant_id"])
    data = ensemble.arrays(ids, bundle.tensors, bundle.clinical)
    parts = [m.predict(d) for m, d in zip(ensemble.members, data, strict=True)]
    prediction = ensemble.predict(data)
    for i, column in enumerate(("risk", "surv_12", "surv_24")):
        np.testing.assert_allclose(prediction[i], (parts[0][i] + parts[1][i]) / 2, err_msg=column)
    curves = ensemble.survival(data, np.array([12.0, 24.0]))
    np.testing.assert_allclose(curves, np.stack([prediction.surv_12, prediction.surv_24], 1))
    # the two members differ (different training folds), so the mean is not either of them
    assert not np.allclose(parts[0].surv_24, parts[1].surv_24)


def test_classical_members_reproduce_their_out_of_fold_predictions(
    bundle: TinyBundle, folds: Folds
) -> None:
    ensemble = folds.classical["rsf_region_measures"]
    ids = list(bundle.clinical["participant_id"])
    data = ensemble.arrays(ids, bundle.tensors, bundle.clinical)
    rows = folds.oof[folds.oof["model"] == "rsf_region_measures"]
    for k, member in enumerate(ensemble.members):
        mine = rows[rows["fold"] == k]
        at = [ids.index(p) for p in mine["participant_id"]]
        np.testing.assert_allclose(member.predict(data[k]).surv_24[at], mine["surv_24"])


def test_registered_classical_ensemble_predicts_raw_files(bundle: TinyBundle, folds: Folds) -> None:
    ensemble = folds.classical["rsf_region_measures"]
    ids = list(bundle.clinical["participant_id"])
    training = ensemble.predict(ensemble.arrays(ids, bundle.tensors, bundle.clinical))
    groups = risk_groups(ensemble, training, folds.oof, "rsf_region_measures")
    assert groups.scale == "p12"  # a forest's risk is not a log-risk: no Breslow mapping
    out = TLESurvivalModel(ensemble, bundle.params, groups).predict(None, model_input(bundle.root))
    np.testing.assert_allclose(out["risk"].to_numpy(float), training.risk, rtol=1e-9)
    np.testing.assert_allclose(out["p_recurrence_24"].to_numpy(float), 1 - training.surv_24)


def test_fold_models_of_another_run_are_refused(bundle: TinyBundle, folds: Folds) -> None:
    other = folds.oof.assign(surv_24=(folds.oof["surv_24"] + 0.3) % 1.0)
    with pytest.raises(ValueError, match="different modeling runs"):
        fold_ensemble(
            "transeprelap", folds.models["transeprelap"], other, bundle.clinical, bundle.tensors
        )
    with pytest.raises(ValueError, match="different modeling runs"):
        classical_fold_ensemble(
            "cox_region_measures",
            "cox_region_measures",
            folds.models["cox_region_measures"],
            other,
            bundle.clinical,
            bundle.tensors,
            make_clinical_recipe(),
            AtlasConfig.model_validate(ATLAS),
        )


def test_missing_or_mismatched_fold_models_are_refused(bundle: TinyBundle, folds: Folds) -> None:
    neural = folds.models["transeprelap"]
    with pytest.raises(ValueError, match="keep_fold_models: true"):
        fold_ensemble("transeprelap", {}, folds.oof, bundle.clinical, bundle.tensors)
    with pytest.raises(ValueError, match="not FittedNeuralModel"):
        fold_ensemble(
            "cox_region_measures",
            folds.models["cox_region_measures"],
            folds.oof,
            bundle.clinical,
            bundle.tensors,
        )
    with pytest.raises(ValueError, match="no rows"):
        fold_ensemble("transeprelap", neural, folds.oof.iloc[:0], bundle.clinical, bundle.tensors)


def test_classical_ensemble_explanation_is_the_mean_of_its_members(
    bundle: TinyBundle, folds: Folds
) -> None:
    ensemble = folds.classical["cox_region_measures"]
    ids = list(bundle.clinical["participant_id"])
    data = ensemble.arrays(ids, bundle.tensors, bundle.clinical)
    mean = explain_patient(ensemble, data, 1)
    grid = ensemble.model_config.grid_shape
    parts = [
        explain_measures(m.estimator, d.iloc[[1]], grid)
        for m, d in zip(ensemble.members, data, strict=True)
    ]
    for name in ("T1", "PET", "clinical"):
        assert mean.contributions[name] == pytest.approx(
            (parts[0].contributions[name] + parts[1].contributions[name]) / 2
        )
    assert mean.risk == pytest.approx(float(ensemble.log_risk(data)[1]))
    assert not has_voxel_maps(ensemble)


def test_discrete_head_members_average_their_own_curves(bundle: TinyBundle) -> None:
    """Fold models with a discrete-time head have no Breslow baseline: the ensemble's curve is
    the mean of the heads' curves and its risk log(-log S(24)) of that mean curve."""
    result = cross_validated(bundle, ["transeprelap_discrete"], ATLAS)
    models = fold_models(result, "transeprelap_discrete")
    with one_torch_thread():
        ensemble = fold_ensemble(
            "transeprelap_discrete", models, result.oof, bundle.clinical, bundle.tensors
        )
    assert ensemble.baseline is None and len(ensemble.members) == 2
    assert all(m.baseline is None for m in ensemble.members)
    ids = list(bundle.clinical["participant_id"])
    data = ensemble.arrays(ids, bundle.tensors, bundle.clinical)
    times = np.array([1.0, 3.0, 6.0, 12.0, 24.0, 30.0])
    each = [m.survival(d, times) for m, d in zip(ensemble.members, data, strict=True)]
    curves = ensemble.survival(data, times)
    np.testing.assert_allclose(curves, np.mean(each, axis=0))
    assert (np.diff(curves, axis=1) <= 1e-12).all() and ((curves >= 0) & (curves <= 1)).all()
    prediction = ensemble.predict(data)
    np.testing.assert_allclose(prediction.surv_24, curves[:, 4])
    np.testing.assert_allclose(prediction.risk, np.log(-np.log(curves[:, 4])))
    np.testing.assert_allclose(ensemble.log_risk(data), prediction.risk)
