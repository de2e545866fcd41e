"""Cross-validation units in worker processes give exactly the inline result."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import one_torch_thread
from tests.training import tiny_cohort
from tle_kedro.features.clinical import ClinicalTokenizer, make_clinical_recipe
from tle_kedro.models.config import ModelConfig
from tle_kedro.training import parallel
from tle_kedro.training.config import ClassicalConfig, ParamRange, TrainConfig, TuningConfig
from tle_kedro.training.cv import CVData, FoldReport, run_cross_validation
from tle_kedro.training.specs import ModelSpec
from tle_kedro.training.tuning import TuningResult

COHORT = tiny_cohort(18, shape=(8, 8, 8))
IDS = list(COHORT.clinical["participant_id"])
MODEL = ModelConfig(grid_shape=(8, 8, 8), widths=(2, 2, 4, 4), d_model=8, n_heads=2)
TRAIN = TrainConfig(
    epochs=2,
    warmup_epochs=0,
    batch_size=9,
    device="cpu",
    progress=False,
    augment={"p_augment": 1.0},
)


def _data() -> CVData:
    folds = pd.DataFrame({"participant_id": IDS, "repeat": 0, "fold": np.arange(18) % 2})
    features = pd.DataFrame({"participant_id": IDS, "pet_asym": COHORT.log_hazard})
    return CVData(
        COHORT.clinical, folds, COHORT.images, features, make_clinical_recipe(), ClinicalTokenizer()
    )


SPECS = [
    ModelSpec("cox_region_measures", "cox_region_measures"),
    ModelSpec("transeprelap", "neural", "transeprelap", MODEL, TRAIN, tune_with="transeprelap"),
    ModelSpec(
        "transeprelap_no_pet",
        "neural",
        "transeprelap",
        MODEL.model_copy(update={"use_pet": False}),
        TRAIN,
        tune_with="transeprelap",
    ),
    ModelSpec("resnet_image", "neural", "resnet_image", MODEL, TRAIN),
]


def _tuning(tmp_path: object, name: str) -> TuningConfig:
    return TuningConfig(
        storage=f"sqlite:///{tmp_path}/{name}.db",
        n_trials=2,
        epochs=2,
        search_space={"train.lr": ParamRange(low=1e-4, high=1e-2, log=True)},
    )


@pytest.mark.slow
def test_two_workers_give_the_inline_result_and_report_every_unit(tmp_path: object) -> None:
    # workers run one torch thread each; the inline run must too for bit-identical sums
    with one_torch_thread():
        _compare_workers(tmp_path)


def _compare_workers(tmp_path: object) -> None:
    results, reports, studies = {}, {}, {}
    for workers in (1, 2):
        reports[workers], studies[workers] = [], []
        results[workers] = run_cross_validation(
            SPECS,
            _data(),
            ClassicalConfig(),
            _tuning(tmp_path, f"w{workers}"),
            on_fold_end=reports[workers].append,
            workers=workers,
            on_study_end=studies[workers].append,
        )
    pd.testing.assert_frame_equal(results[1].oof, results[2].oof)
    assert results[1].tuned_params == results[2].tuned_params
    assert len(results[2].oof) == len(SPECS) * len(IDS)
    for workers in (1, 2):
        got = sorted((r.model, r.fold) for r in reports[workers])
        assert got == sorted((s.name, f) for s in SPECS for f in (0, 1))
        assert all(isinstance(r, FoldReport) for r in reports[workers])
        assert sorted(s.study_name.rsplit("-", 1)[0] for s in studies[workers]) == [
            "transeprelap-r0-f0",
            "transeprelap-r0-f1",
        ]
        assert all(isinstance(s, TuningResult) and len(s.trials) == 2 for s in studies[workers])
    # the ablation uses its fold's study, like TransEpRelap
    for f in (0, 1):
        tuned = results[2].tuned_params
        assert tuned[("transeprelap_no_pet", 0, f)] == tuned[("transeprelap", 0, f)] != {}
        assert tuned[("resnet_image", 0, f)] == {}


def test_a_failing_unit_stops_the_run_with_its_error() -> None:
    bad = ModelSpec("transeprelap", "neural", "transeprelap", MODEL, TRAIN)
    data = _data()
    broken = CVData(
        data.clinical.assign(time_months=-1.0),
        data.folds,
        data.image_tensors,
        data.imaging_features,
        data.recipe,
        data.tokenizer,
    )
    with pytest.raises(ValueError):
        run_cross_validation([bad], broken, workers=1)


def test_workers_auto_is_one_per_core_on_cpu_and_one_on_a_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parallel, "available_cores", lambda: 2)
    monkeypatch.setattr(parallel.torch.cuda, "is_available", lambda: False)
    assert parallel.resolve_workers("auto", "auto") == 2
    assert parallel.resolve_workers("auto", "cuda") == 1
    monkeypatch.setattr(parallel, "available_cores", lambda: 64)
    assert parallel.resolve_workers("auto", "cpu") == parallel.MAX_AUTO_WORKERS
    assert parallel.resolve_workers(3, "cuda") == 3
    with pytest.raises(ValueError, match="workers must be"):
        parallel.resolve_workers(0, "cpu")


def test_a_task_cannot_read_what_was_not_shared() -> None:
    parallel.make_executor(1, {"a": 1})
    assert parallel.shared("a") == 1
    with pytest.raises(RuntimeError, match="not shared"):
        parallel.shared("b")


def _many_tensors(n: int) -> list:
    import torch

    return [torch.full((3,), float(i)) for i in range(n)]


def _fails() -> None:
    raise KeyError("task error")


def test_worker_results_with_thousands_of_tensors_arrive_whole() -> None:
    # the pool's own pickler sent one file descriptor per tensor and broke on ensembles of
    # snapshot networks ("received 0 items of ancdata"); results now travel as plain pickles
    pool = parallel.make_executor(2, {})
    try:
        assert isinstance(pool, parallel.BytesProcessPool)
        out = pool.submit(_many_tensors, 25_000).result(timeout=120)  # > ulimit -n here
        assert len(out) == 25_000 and float(out[4321][0]) == 4321.0
        with pytest.raises(KeyError, match="task error"):
            pool.submit(_fails).result(timeout=120)
    finally:
        pool.shutdown(wait=True)
