"""Harrell C by image availability: each subgroup scored alone, NaN with a reason when it
cannot be, and the comparison table's C when every patient has both images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines.utils import concordance_index

from tests.evaluation import make_cohort, make_oof
from tle_kedro.evaluation.by_modality import BY_MODALITY_COLUMNS, SUBGROUPS, c_by_modality
from tle_kedro.evaluation.comparison import comparison_table
from tle_kedro.evaluation.concordance import harrell_c

SETTINGS = {"n_boot": 200, "seed": 3, "level": 0.95, "reference_model": "b"}


def _hand_made() -> tuple[pd.DataFrame, pd.DataFrame]:
    """12 patients: 0-5 both images, 6-8 without PET, 9-11 without T1 (no event among them);
    models a and b, two repeats, risks chosen so no subgroup's C is the cohort's."""
    time = np.array([2, 5, 9, 14, 20, 30, 3, 8, 16, 6, 12, 25], dtype=float)
    event = np.array([1, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0])
    ids = [f"sub-{i:02d}" for i in range(12)]
    clinical = pd.DataFrame(
        {
            "participant_id": ids,
            "time_months": time,
            "recurrence": event,
            "has_t1": [True] * 9 + [False] * 3,
            "has_pet": [True] * 6 + [False] * 3 + [True] * 3,
        }
    )
    risks = {
        ("a", 0): [3.0, 1.0, 2.5, 0.5, 0.2, 0.1, 0.4, 2.0, 1.5, 5.0, 0.3, 0.2],
        ("a", 1): [2.8, 1.2, 2.0, 0.9, 0.1, 0.3, 0.2, 2.2, 1.0, 4.0, 0.5, 0.1],
        ("b", 0): [1.0, 2.0, 3.0, 0.5, 0.4, 0.2, 2.0, 1.0, 0.5, 0.1, 0.2, 0.3],
        ("b", 1): [1.5, 2.2, 2.4, 0.3, 0.6, 0.1, 1.8, 1.4, 0.2, 0.4, 0.1, 0.2],
    }
    oof = pd.concat(
        [
            pd.DataFrame(
                {
                    "participant_id": ids,
                    "model": model,
                    "repeat": repeat,
                    "fold": np.arange(12) % 3,
                    "risk": risk,
                    "surv_12": 0.5,
                }
            )
            for (model, repeat), risk in risks.items()
        ],
        ignore_index=True,
    )
    return oof, clinical


def _risk(oof: pd.DataFrame, model: str, repeat: int) -> np.ndarray:
    return oof.loc[(oof["model"] == model) & (oof["repeat"] == repeat), "risk"].to_numpy()


def test_every_model_gets_every_subgroup_and_no_patient_id() -> None:
    table = c_by_modality(*_hand_made(), **SETTINGS)
    assert list(table.columns) == list(BY_MODALITY_COLUMNS)
    assert list(table["model"]) == ["b"] * 3 + ["a"] * 3  # the reference first
    assert list(table["subgroup"]) == list(SUBGROUPS) * 2
    assert table.set_index(["model", "subgroup"])["n_patients"].loc["a"].tolist() == [6, 3, 3]
    assert table.set_index(["model", "subgroup"])["n_events"].loc["a"].tolist() == [3, 2, 0]
    assert not table.astype(str).apply(lambda c: c.str.contains("sub-")).any().any()


@pytest.mark.parametrize(
    ("subgroup", "rows"), [("both images", slice(0, 6)), ("PET missing", slice(6, 9))]
)
def test_a_subgroup_c_is_the_c_of_that_subgroup_alone(subgroup: str, rows: slice) -> None:
    oof, clinical = _hand_made()
    table = c_by_modality(oof, clinical, **SETTINGS).set_index(["model", "subgroup"])
    time = clinical["time_months"].to_numpy()[rows]
    event = clinical["recurrence"].to_numpy()[rows]
    for model in ("a", "b"):
        per_repeat = [_risk(oof, model, r)[rows] for r in (0, 1)]
        # lifelines as the reference (it takes a survival-like score: minus the risk)
        expected = np.mean([concordance_index(time, -risk, event) for risk in per_repeat])
        row = table.loc[(model, subgroup)]
        assert row["harrell_c"] == pytest.approx(expected, abs=1e-12)
        assert row["harrell_c_lo"] <= row["harrell_c"] <= row["harrell_c_hi"]
        assert row["note"] == "" or pd.isna(row["note"])
        whole = np.mean(
            [
                harrell_c(_risk(oof, model, r), *outcome)
                for r in (0, 1)
                for outcome in [(clinical["recurrence"], clinical["time_months"])]
            ]
        )
        assert row["harrell_c"] != pytest.approx(whole)  # pairs across subgroups not counted


def test_a_subgroup_without_events_is_nan_with_its_reason() -> None:
    table = c_by_modality(*_hand_made(), **SETTINGS).set_index(["model", "subgroup"])
    row = table.loc[("a", "T1 missing")]
    assert row["n_patients"] == 3 and row["n_events"] == 0
    assert np.isnan(row[["harrell_c", "harrell_c_lo", "harrell_c_hi"]].astype(float)).all()
    assert row["note"] == "no event in this subgroup"


def test_a_subgroup_with_a_single_comparable_pair_is_nan_with_its_reason() -> None:
    oof, clinical = _hand_made()
    # PET missing = patients 6 (event at 3), 7, 8 (censored at 16); with 7 censored at 1 the
    # only comparable pair is (6, 8)
    clinical.loc[7, ["time_months", "recurrence"]] = [1.0, 0]
    table = c_by_modality(oof, clinical, **SETTINGS).set_index(["model", "subgroup"])
    assert table.loc[("a", "PET missing"), "note"] == "fewer than 2 comparable pairs"
    assert np.isnan(table.loc[("a", "PET missing"), "harrell_c"])


def test_a_cohort_with_every_scan_gives_the_comparison_c_and_marked_empty_rows() -> None:
    clinical, truth = make_cohort(60, seed=4)
    clinical = clinical.assign(has_t1=True, has_pet=True)
    oof = make_oof(truth)
    settings = {**SETTINGS, "reference_model": "transeprelap"}
    table = c_by_modality(oof, clinical, **settings).set_index(["model", "subgroup"])
    comparison = comparison_table(
        oof,
        clinical,
        n_boot=settings["n_boot"],
        n_boot_secondary=0,
        seed=settings["seed"],
        reference_model="transeprelap",
    ).set_index("model")
    for model, row in comparison.iterrows():
        both = table.loc[(model, "both images")]
        assert both["n_patients"] == 60
        for column in ("harrell_c", "harrell_c_lo", "harrell_c_hi"):
            assert both[column] == pytest.approx(row[column], abs=1e-12), (model, column)
        for subgroup in ("PET missing", "T1 missing"):
            empty = table.loc[(model, subgroup)]
            assert empty["n_patients"] == 0 and np.isnan(empty["harrell_c"])
            assert empty["note"] == "no patient in this subgroup"


def test_a_clinical_table_without_availability_is_a_clear_error() -> None:
    oof, clinical = _hand_made()
    with pytest.raises(ValueError, match=r"has_pet.*rerun it"):
        c_by_modality(oof, clinical.drop(columns="has_pet"), **SETTINGS)
