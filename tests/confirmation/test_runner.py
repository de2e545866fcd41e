from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.confirmation.test_config import MISSING, _config
from tle_kedro.confirmation import runner as runner_module
from tle_kedro.confirmation.config import Cohort
from tle_kedro.confirmation.runner import CohortRunner, KedroRunError, load_parameters

SHIFT = {"anatomy": {"rotation_deg_max": 12.0}}


class FakeKedro:
    """Stands in for `python -m kedro run --config=...`: records the run config and writes
    what the real run would (participants.tsv, comparison_table.csv)."""

    def __init__(self, fail: bool = False) -> None:
        self.runs: list[dict] = []
        self.fail = fail

    def __call__(self, cmd, cwd, **kwargs):
        config = yaml.safe_load(Path(cmd[-1].removeprefix("--config=")).read_text())["run"]
        self.runs.append(config)
        params = config["params"]
        if config["pipelines"] == "demo_cohort":
            out = Path(cwd) / params["cohort_dir"] / "participants.tsv"
        else:
            out = Path(cwd) / params["data_root"] / "08_reporting/comparison_table.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("x\n")
        kwargs["stdout"].write("kedro says: boom\n" if self.fail else "ok\n")
        return subprocess.CompletedProcess(cmd, 1 if self.fail else 0)


@pytest.fixture
def fake(monkeypatch) -> FakeKedro:
    fake = FakeKedro()
    monkeypatch.setattr(runner_module.subprocess, "run", fake)
    return fake


def _runner(tmp_path, parameters=None, **kwargs) -> CohortRunner:
    params = {"demo_cohort": {"seed": 1}, "demo_cohort_shift": SHIFT}
    return CohortRunner(_config(), parameters or params, tmp_path, **kwargs)


def test_a_cohort_is_generated_then_compared_with_its_own_root(tmp_path, fake):
    cohort = Cohort(5, "confirmation", Path("data/confirmation/5"))
    timings = _runner(tmp_path, env="smoke").run([cohort])
    assert [r["pipelines"] for r in fake.runs] == [
        "demo_cohort",
        "data_processing,feature_engineering,modeling,evaluation",
    ]
    params = fake.runs[1]["params"]
    assert params["data_root"] == "data/confirmation/5"
    assert params["mlflow_experiment"] == "tle_kedro_confirmation"
    assert params["demo_cohort"] == {"seed": 5, "n_patients": 180, **SHIFT, **MISSING}
    assert fake.runs[0]["env"] == "smoke"
    assert [(t.step, t.skipped) for t in timings] == [("generate", False), ("compare", False)]
    recorded = (tmp_path / cohort.timings).read_text().splitlines()
    assert recorded[0] == "cohort_seed,cohort_kind,step,seconds,skipped" and len(recorded) == 3


def test_a_done_cohort_is_skipped_and_force_reruns_it(tmp_path, fake):
    cohort = Cohort(5, "design", Path("data/design/5"))
    _runner(tmp_path).run([cohort])
    assert len(fake.runs) == 2
    timings = _runner(tmp_path).run([cohort])
    assert len(fake.runs) == 2 and timings[0].skipped
    _runner(tmp_path, force=True).run([cohort])
    assert len(fake.runs) == 4


def test_a_generated_cohort_is_reused_when_its_comparison_is_missing(tmp_path, fake):
    cohort = Cohort(5, "design", Path("data/design/5"))
    _runner(tmp_path).run([cohort])
    (tmp_path / cohort.comparison_table).unlink()
    timings = _runner(tmp_path).run([cohort])
    assert [r["pipelines"] for r in fake.runs][2:] == [
        "data_processing,feature_engineering,modeling,evaluation"
    ]
    assert timings[0].step == "generate" and timings[0].skipped


def test_design_cohorts_are_never_shifted(tmp_path, fake):
    _runner(tmp_path).run([Cohort(5, "design", Path("d/5"))])
    assert fake.runs[0]["params"]["demo_cohort"] == {"seed": 5, "n_patients": 180}
    assert fake.runs[0]["params"]["mlflow_experiment"] == "tle_kedro_design"


def test_no_shift_in_the_parameters_is_said_and_the_cohort_is_unshifted(tmp_path, fake, caplog):
    runner = _runner(tmp_path, parameters={"demo_cohort": {"seed": 1}})
    with caplog.at_level(logging.WARNING):
        runner.run([Cohort(4, "design", Path("d/4"))])
    assert "WITHOUT a shift" not in caplog.text  # design cohorts are never shifted anyway
    with caplog.at_level(logging.WARNING):
        runner.run([Cohort(5, "confirmation", Path("c/5"))])
    assert "WITHOUT a shift" in caplog.text
    assert fake.runs[2]["params"]["demo_cohort"] == {"seed": 5, "n_patients": 180, **MISSING}


def test_a_generator_with_a_shifted_switch_gets_it_set(tmp_path, fake):
    parameters = {"demo_cohort": {"seed": 1, "shifted": False}, "demo_cohort_shift": SHIFT}
    _runner(tmp_path, parameters=parameters).run([Cohort(5, "confirmation", Path("c/5"))])
    assert fake.runs[0]["params"]["demo_cohort"]["shifted"] is True


def test_a_failed_run_raises_with_its_log_and_the_tail(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_module.subprocess, "run", FakeKedro(fail=True))
    with pytest.raises(KedroRunError, match=r"(?s)kedro_run_generate\.log.*boom"):
        _runner(tmp_path).run([Cohort(5, "design", Path("d/5"))])


def test_the_demo_cohort_seed_is_refused_as_a_confirmation_seed(tmp_path):
    seed = load_parameters(Path(__file__).parents[2], None)["confirmation"]["confirmation_seeds"][0]
    with pytest.raises(ValueError, match="demo_cohort.seed"):
        _runner(tmp_path, parameters={"demo_cohort": {"seed": seed}})


def test_parameters_load_with_the_environment_like_a_kedro_run():
    project = Path(__file__).parents[2]
    base = load_parameters(project, None)["confirmation"]
    smoke = load_parameters(project, "smoke")["confirmation"]
    assert base["n_patients"] == 180 and smoke["n_patients"] == 16
    assert smoke["confirmation_seeds"] == base["confirmation_seeds"]
