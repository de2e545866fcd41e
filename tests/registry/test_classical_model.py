"""A classical baseline as the registered model: refit, pyfunc, risk groups, explanations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.cohort_factory import write_test_cohort
from tests.registry import TinyBundle, bundle_fixture, model_input
from tle_kedro.data.atlas import DEFAULT_ATLAS
from tle_kedro.features.clinical import make_clinical_recipe
from tle_kedro.pipelines.final_model.nodes import RegistryParams, choose_model
from tle_kedro.pipelines.inference.nodes import explain_patients
from tle_kedro.registry.explain import explain_measures, measure_inputs
from tle_kedro.registry.pyfunc import TLESurvivalModel, risk_groups
from tle_kedro.training.classical import FittedClassicalPipeline, fit_final_classical
from tle_kedro.training.config import ClassicalConfig

bundle = bundle_fixture("cohort")
SMALL = ClassicalConfig(cox_penalizer=1.0, rsf_n_estimators=20, rsf_min_samples_leaf=2)


def _fit(bundle: TinyBundle, family: str) -> FittedClassicalPipeline:
    return fit_final_classical(
        family,
        family,
        bundle.clinical,
        bundle.tensors,
        make_clinical_recipe(),
        SMALL,
        DEFAULT_ATLAS,
    )


def _registered(bundle: TinyBundle, family: str) -> TLESurvivalModel:
    fitted = _fit(bundle, family)
    ids = list(bundle.clinical["participant_id"])
    training = fitted.predict(fitted.arrays(ids, bundle.tensors, bundle.clinical))
    groups = risk_groups(fitted, training, None, family, "final_training")
    return TLESurvivalModel(fitted, bundle.params, groups, info={"model": family})


@pytest.mark.parametrize("family", ["rsf_region_measures", "cox_region_measures"])
def test_new_patients_are_predicted_as_the_training_matrix(bundle: TinyBundle, family: str) -> None:
    model = _registered(bundle, family)
    fitted = model.fitted
    ids = list(bundle.clinical["participant_id"])
    matrix = fitted.arrays(ids, bundle.tensors, bundle.clinical)
    # clinical columns + the atlas measures of both modalities, nothing missing here
    assert [c for c in matrix.columns if c.startswith(("pet_", "t1_"))]
    assert not matrix.isna().any().any()
    expected = fitted.predict(matrix)

    out = model.predict(None, model_input(bundle.root))
    assert list(out["participant_id"]) == ids
    np.testing.assert_allclose(out["risk"].to_numpy(float), expected.risk, rtol=1e-6)
    np.testing.assert_allclose(out["p_recurrence_12"], 1.0 - expected.surv_12, rtol=1e-6)
    assert (out["p_recurrence_12"] <= out["p_recurrence_24"] + 1e-12).all()
    assert set(out["modalities_used"]) == {"T1+PET+clinical"}
    # the cut is on P(recurrence by 12 months): the median of the training patients
    assert model.groups.scale == "p12"
    assert model.groups.threshold == pytest.approx(np.median(out["p_recurrence_12"]))
    high = out["p_recurrence_12"] >= model.groups.threshold
    assert list(out["risk_group"]) == ["high" if h else "low" for h in high]


def test_clinical_cox_reads_no_image_measures(bundle: TinyBundle) -> None:
    model = _registered(bundle, "cox_clinical")
    frame = model_input(bundle.root)
    frame.loc[0, "pet_path"] = None
    out = model.predict(None, frame)
    assert not any(c.startswith(("pet_", "t1_")) for c in model.fitted.estimator.feature_names)
    assert set(out["modalities_used"]) == {"clinical"}


def test_missing_pet_is_imputed_and_reported(bundle: TinyBundle) -> None:
    model = _registered(bundle, "rsf_region_measures")
    frame = model_input(bundle.root)
    frame.loc[0, "pet_path"] = None
    out = model.predict(None, frame).set_index("participant_id")
    first = bundle.clinical["participant_id"].iloc[0]
    assert out.loc[first, "modalities_used"] == "T1+clinical"
    assert np.isfinite(out.loc[first, "risk"])


def test_survival_curves_follow_the_estimator_and_hit_p12(bundle: TinyBundle) -> None:
    model = _registered(bundle, "cox_region_measures")
    prepared = model.prepare(model_input(bundle.root))
    out = model.predict_prepared(prepared)
    times = np.array([0.0, 6.0, 12.0, 24.0, 36.0])
    curves = model.survival_curves(model.arrays(prepared), times)
    assert curves.shape == (len(out), 5)
    assert (np.diff(curves, axis=1) <= 1e-12).all()  # non-increasing
    np.testing.assert_allclose(curves[:, 2], 1.0 - out["p_recurrence_12"], rtol=1e-6)


def test_explanation_masks_each_input_like_a_missing_scan(bundle: TinyBundle) -> None:
    fitted = _registered(bundle, "cox_region_measures").fitted
    ids = list(bundle.clinical["participant_id"])
    x = fitted.arrays(ids, bundle.tensors, bundle.clinical).iloc[[1]]
    explanation = explain_measures(fitted.estimator, x, bundle.tensors.grid_shape)
    risk = fitted.predict(x).risk[0]
    assert explanation.risk == pytest.approx(risk)
    without_pet = x.copy()
    without_pet[measure_inputs(list(x.columns))["PET"]] = np.nan
    assert explanation.contributions["PET"] == pytest.approx(
        risk - fitted.predict(without_pet).risk[0]
    )
    assert sum(explanation.shares.values()) == pytest.approx(1.0)
    assert explanation.attributions.shape == (2, *bundle.tensors.grid_shape)
    assert not explanation.attributions.any()


def test_measure_inputs_groups_columns_by_prefix() -> None:
    groups = measure_inputs(["age", "pet_rel_ipsi_hippocampus", "t1_tissue_ai_amygdala", "sex_M"])
    assert groups == {
        "T1": ["t1_tissue_ai_amygdala"],
        "PET": ["pet_rel_ipsi_hippocampus"],
        "clinical": ["age", "sex_M"],
    }


@pytest.fixture(scope="module")
def new_patients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("new")
    write_test_cohort(root, 3, seed=5)
    return root


def test_inference_reports_of_a_classical_model(bundle: TinyBundle, new_patients: Path) -> None:
    model = _registered(bundle, "rsf_region_measures")
    prepared = model.prepare(model_input(new_patients))
    predictions = model.predict_prepared(prepared)
    figures = explain_patients((model, prepared, predictions), {"explain": True})
    assert sorted(figures) == [f"{p}.png" for p in predictions["participant_id"]]
    title = next(iter(figures.values()))._suptitle.get_text()
    assert "no voxel map" in title


def _oof(clinical: pd.DataFrame, good: str, bad: str) -> pd.DataFrame:
    """Out-of-fold rows of two models: ``good`` ranks by the outcome, ``bad`` against it."""
    signal = clinical["recurrence"].to_numpy(float) / clinical["time_months"].to_numpy(float)
    rows = []
    for name, risk in ((good, signal), (bad, -signal)):
        rows.append(
            pd.DataFrame(
                {
                    "participant_id": clinical["participant_id"],
                    "model": name,
                    "repeat": 0,
                    "fold": np.arange(len(clinical)) % 2,
                    "risk": risk,
                    "surv_12": 1 / (1 + np.exp(risk)),
                    "surv_24": 0.5 / (1 + np.exp(risk)),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_auto_chooses_the_best_out_of_fold_model(bundle: TinyBundle) -> None:
    oof = _oof(bundle.clinical, good="rsf_region_measures", bad="transeprelap")
    name, values = choose_model(oof, bundle.clinical, RegistryParams(model="auto"))
    assert name == "rsf_region_measures"
    assert values["rsf_region_measures"] > values["transeprelap"]
    named, _ = choose_model(oof, bundle.clinical, RegistryParams(model="transeprelap"))
    assert named == "transeprelap"
    with pytest.raises(ValueError, match="late_fusion.*modeling.models"):
        choose_model(oof, bundle.clinical, RegistryParams(model="late_fusion"))


def test_registry_model_names_are_validated() -> None:
    with pytest.raises(ValueError, match="model"):
        RegistryParams(model="random_forest")
