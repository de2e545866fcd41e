"""The registered-model class: preprocessing + model + risk groups, and its MLflow round trip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.registry import TinyBundle, assert_same_predictions, bundle_fixture, model_input
from tle_kedro.models.classical import SurvivalPrediction
from tle_kedro.models.survival import BaselineHazard
from tle_kedro.registry.pyfunc import (
    PREDICTION_COLUMNS,
    RiskGroups,
    TLESurvivalModel,
    as_survival_model,
    risk_groups,
    split_input,
)

bundle = bundle_fixture("cohort")


@pytest.fixture
def mlflow_store(tmp_path: Path) -> Iterator[str]:
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(previous)


def test_predicts_from_paths_without_outcome_columns(bundle: TinyBundle) -> None:
    out = bundle.model.predict(None, model_input(bundle.root))
    assert list(out.columns) == [*PREDICTION_COLUMNS, "exclusion_reason"]
    assert len(out) == len(bundle.clinical)
    assert (out["exclusion_reason"] == "").all()
    assert (
        (out["p_recurrence_12"] >= 0) & (out["p_recurrence_12"] <= out["p_recurrence_24"])
    ).all()
    assert set(out["risk_group"]) <= {"low", "high"}
    assert set(out["modalities_used"]) == {"T1+PET+clinical"}


def test_same_risk_as_the_fitted_model_on_the_training_tensors(bundle: TinyBundle) -> None:
    fitted = bundle.model.fitted
    ids = list(bundle.clinical["participant_id"])
    expected = fitted.log_risk(fitted.arrays(ids, bundle.tensors, bundle.clinical))
    out = bundle.model.predict(None, model_input(bundle.root))
    np.testing.assert_allclose(out["risk"].to_numpy(float), expected, rtol=1e-5, atol=1e-6)


def test_missing_pet_is_reported_in_modalities_used(bundle: TinyBundle) -> None:
    frame = model_input(bundle.root)
    frame.loc[0, "pet_path"] = None
    frame.loc[1, "t1_path"] = ""
    out = bundle.model.predict(None, frame).set_index("participant_id")
    ids = list(frame["participant_id"])
    assert out.loc[ids[0], "modalities_used"] == "T1+clinical"
    assert out.loc[ids[1], "modalities_used"] == "PET+clinical"
    assert out.loc[ids[2], "modalities_used"] == "T1+PET+clinical"


def test_bad_rows_are_returned_with_their_reason_not_dropped(bundle: TinyBundle) -> None:
    frame = model_input(bundle.root)
    frame.loc[0, "operative_side"] = None
    frame.loc[1, ["t1_path", "pet_path"]] = None
    out = bundle.model.predict(None, frame).set_index("participant_id")
    ids = list(frame["participant_id"])
    assert len(out) == len(frame)
    assert out.loc[ids[0], "exclusion_reason"] == "missing_required_value"
    assert out.loc[ids[1], "exclusion_reason"] == "no_images"
    assert np.isnan(out.loc[ids[1], "risk"])


def test_cohort_dir_column_reads_the_bids_layout(bundle: TinyBundle) -> None:
    frame = model_input(bundle.root).drop(columns=["t1_path", "pet_path"])
    frame["cohort_dir"] = str(bundle.root)
    from_dir = bundle.model.predict(None, frame)
    assert_same_predictions(from_dir, bundle.model.predict(None, model_input(bundle.root)))


def test_input_without_image_locations_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="t1_path"):
        split_input(pd.DataFrame({"participant_id": ["sub-001"]}))
    with pytest.raises(ValueError, match="participant_id"):
        split_input(pd.DataFrame({"t1_path": ["x"]}))


def test_registry_round_trip_returns_the_same_predictions(
    bundle: TinyBundle, mlflow_store: str
) -> None:
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="tle_recurrence",
            python_model=bundle.model,
            registered_model_name="tle_test",
            pip_requirements=["torch==2.13.0"],
        )
    assert info.registered_model_version == 1
    loaded = mlflow.pyfunc.load_model("models:/tle_test/1")
    frame = model_input(bundle.root)
    frame.loc[2, "pet_path"] = None
    assert_same_predictions(loaded.predict(frame), bundle.model.predict(None, frame))
    assert as_survival_model(loaded).groups == bundle.model.groups


def test_grid_mismatch_between_model_and_preprocessing_is_refused(bundle: TinyBundle) -> None:
    other = bundle.params.model_copy(update={"grid_shape": (20, 12, 8)})
    with pytest.raises(ValueError, match="grid"):
        TLESurvivalModel(bundle.model.fitted, other, bundle.model.groups)


def test_as_survival_model_refuses_foreign_objects() -> None:
    with pytest.raises(ValueError, match="TLESurvivalModel"):
        as_survival_model(object())


class _Fitted:
    """Just a Breslow baseline (H0(12) = 0.5, H0(24) = 1.0)."""

    baseline = BaselineHazard(np.array([6.0, 12.0, 24.0]), np.array([0.2, 0.5, 1.0]))


def _training(risk: np.ndarray, p12: np.ndarray | None = None) -> SurvivalPrediction:
    """Training-set predictions with these risks (and P(12), default 0.5)."""
    surv_12 = 1.0 - (np.full(len(risk), 0.5) if p12 is None else p12)
    return SurvivalPrediction(np.asarray(risk, float), surv_12, surv_12 * 0.8)


def test_oof_probability_cut_maps_to_the_final_models_log_risk() -> None:
    oof = pd.DataFrame(
        {
            "model": "transeprelap",
            "participant_id": ["a", "b", "c", "a", "b", "c"],
            "surv_12": [0.9, 0.7, 0.5, 0.9, 0.7, 0.5],
        }
    )
    groups = risk_groups(_Fitted(), _training(np.zeros(3)), oof, "transeprelap")  # type: ignore[arg-type]
    assert groups.source == "oof_probability"
    assert groups.p12_threshold == pytest.approx(0.3)
    # P(12 | threshold) = 1 - exp(-0.5 * exp(threshold)) = 0.3
    assert 1 - np.exp(-0.5 * np.exp(groups.threshold)) == pytest.approx(0.3)
    assert list(groups.assign(np.array([groups.threshold - 1, groups.threshold]))) == [
        "low",
        "high",
    ]


def test_final_training_cut_is_the_median_training_risk() -> None:
    risk = np.array([-1.0, 0.0, 0.5, 2.0])
    groups = risk_groups(_Fitted(), _training(risk), None, "transeprelap", "final_training")  # type: ignore[arg-type]
    assert groups == RiskGroups(
        0.25, pytest.approx(1 - np.exp(-0.5 * np.exp(0.25))), "final_training"
    )


def test_oof_cut_without_the_model_in_oof_says_how_to_fix() -> None:
    oof = pd.DataFrame({"model": ["cox_clinical"], "participant_id": ["a"], "surv_12": [0.5]})
    with pytest.raises(ValueError, match="final_training"):
        risk_groups(_Fitted(), _training(np.zeros(1)), oof, "transeprelap")  # type: ignore[arg-type]
