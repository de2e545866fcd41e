"""Typed ``confirmation:`` parameters and the per-cohort run parameters derived from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tle_kedro.config_loader import deep_merge

Kind = Literal["design", "confirmation"]
# Pipelines that register, promote or apply a model: never on a design/confirmation cohort.
FORBIDDEN_PIPELINES = frozenset({"final_model", "inference", "__default__"})


class MissingScans(BaseModel):
    """Share of a cohort's patients without PET and without T1 (``confirmation.missing``);
    the generator's ``acquisition.fraction_missing_pet`` / ``_t1``, which validates them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    pet: float = Field(ge=0, lt=1)
    t1: float = Field(ge=0, lt=1)

    @model_validator(mode="after")
    def _somebody_keeps_both(self) -> MissingScans:
        if self.pet + self.t1 >= 1:
            raise ValueError(
                f"confirmation.missing: pet + t1 must be < 1 (no patient misses both scans), "
                f"got {self.pet} + {self.t1}"
            )
        return self

    def as_generator_params(self) -> dict[str, Any]:
        """The ``demo_cohort.acquisition`` override."""
        return {"acquisition": {"fraction_missing_pet": self.pet, "fraction_missing_t1": self.t1}}


class ConfirmationConfig(BaseModel):
    """``confirmation:`` in parameters_confirmation.yml (no defaults here: the YAML is the
    one source)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    design_seeds: tuple[int, ...] = Field(min_length=1)
    # design cohorts generated with the shift (former confirmation cohorts, once looked at)
    shifted_design_seeds: tuple[int, ...]
    confirmation_seeds: tuple[int, ...] = Field(min_length=1)
    n_patients: int = Field(ge=8)
    shift: bool
    # scans left out of confirmation cohorts and of the listed design cohorts (former
    # confirmation cohorts generated with them); of other design cohorts only when
    # design_missing is set
    missing: MissingScans
    missing_design_seeds: tuple[int, ...]
    design_missing: MissingScans | None
    pipelines: tuple[str, ...] = Field(min_length=1)
    generator_pipeline: str
    output_root: str
    report_dir: str
    mlflow_experiment: str
    reference_model: str
    target_ratio: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _seeds_apart_and_no_registry(self) -> ConfirmationConfig:
        shared = sorted(set(self.design_seeds) & set(self.confirmation_seeds))
        if shared:
            raise ValueError(
                f"confirmation: seeds {shared} are both design and confirmation seeds; a "
                "confirmation cohort must never have been used for design: pick fresh seeds"
            )
        for name, seeds in (
            ("design", self.design_seeds),
            ("confirmation", self.confirmation_seeds),
        ):
            if len(set(seeds)) != len(seeds):
                raise ValueError(f"confirmation: {name}_seeds repeats a seed: {list(seeds)}")
        for name, listed in (
            ("shifted_design_seeds", self.shifted_design_seeds),
            ("missing_design_seeds", self.missing_design_seeds),
        ):
            stray = sorted(set(listed) - set(self.design_seeds))
            if stray:
                raise ValueError(
                    f"confirmation: {name} {stray} are not design_seeds; list them "
                    "in design_seeds too"
                )
        bad = sorted(set(self.pipelines) & FORBIDDEN_PIPELINES)
        if bad:
            raise ValueError(
                f"confirmation.pipelines: {bad} must not run on a design/confirmation cohort "
                "(the registry never sees one); list data_processing ... evaluation only"
            )
        return self

    def is_shifted(self, cohort: Cohort) -> bool:
        """Whether ``cohort`` is generated with ``demo_cohort_shift``: every confirmation
        cohort (with ``shift: true``) and the listed shifted design cohorts."""
        if not self.shift:
            return False
        return cohort.kind == "confirmation" or cohort.seed in self.shifted_design_seeds

    def missing_scans(self, cohort: Cohort) -> MissingScans | None:
        """What ``cohort`` leaves out: ``missing`` for a confirmation cohort and a listed
        ``missing_design_seeds`` cohort, ``design_missing`` (None = nothing) for another
        design cohort."""
        if cohort.kind == "confirmation" or cohort.seed in self.missing_design_seeds:
            return self.missing
        return self.design_missing

    def seeds(self, kind: Kind) -> tuple[int, ...]:
        return self.design_seeds if kind == "design" else self.confirmation_seeds

    def check_against_demo_seed(self, demo_seed: int | None) -> None:
        """Raise ValueError if a confirmation seed is the embedded demo cohort's seed."""
        if demo_seed is not None and demo_seed in self.confirmation_seeds:
            raise ValueError(
                f"confirmation: seed {demo_seed} is demo_cohort.seed, the cohort every default "
                "was chosen on; it cannot confirm anything. Remove it from confirmation_seeds."
            )


@dataclass(frozen=True)
class Cohort:
    """One design or confirmation cohort and where its artefacts live."""

    seed: int
    kind: Kind
    root: Path  # data_root of its runs; the cohort itself in root / 01_raw / cohort

    @property
    def cohort_dir(self) -> Path:
        return self.root / "01_raw" / "cohort"

    @property
    def comparison_table(self) -> Path:
        return self.root / "08_reporting" / "comparison_table.csv"

    @property
    def c_by_modality(self) -> Path:
        return self.root / "08_reporting" / "c_by_modality.csv"

    @property
    def timings(self) -> Path:
        return self.root / "timings.csv"


def plan_cohorts(
    config: ConfirmationConfig, kind: Kind, seeds: tuple[int, ...] | None = None
) -> list[Cohort]:
    """The cohorts of ``kind`` (all configured seeds, or the given subset of them)."""
    configured = config.seeds(kind)
    chosen = configured if seeds is None else seeds
    unknown = sorted(set(chosen) - set(configured))
    if unknown:
        raise ValueError(
            f"seeds {unknown} are not {kind} seeds in parameters_confirmation.yml "
            f"({list(configured)}); add them there first, so every cohort is on record"
        )
    root = Path(config.output_root) / kind
    return [Cohort(seed, kind, root / str(seed)) for seed in chosen]


def demo_cohort_override(
    cohort: Cohort,
    config: ConfirmationConfig,
    shift: Mapping[str, Any] | None,
    generator_has_switch: bool,
) -> dict[str, Any]:
    """The ``demo_cohort`` runtime parameters of ``cohort``: seed, size, the scans it leaves
    out (:meth:`ConfirmationConfig.missing_scans`) and, for a shifted cohort
    (:meth:`ConfirmationConfig.is_shifted`), the shift.

    Args:
        shift: ``demo_cohort_shift`` from the parameters (None or empty = not provided).
        generator_has_switch: the generator declares ``demo_cohort.shifted``: the override
            only sets that switch and the generator applies ``demo_cohort_shift`` itself
            (once). A generator without the switch gets the shift merged in here.
    Raises:
        ValueError: the shift sets ``seed``, ``n_patients`` or ``acquisition`` (the runner
            chooses those: the generator would apply the shift over them).
    """
    override: dict[str, Any] = {"seed": cohort.seed, "n_patients": config.n_patients}
    missing = config.missing_scans(cohort)
    if missing is not None:
        override |= missing.as_generator_params()
    if not config.is_shifted(cohort) or not shift:
        return override
    if "seed" in shift or "n_patients" in shift or "acquisition" in shift:
        raise ValueError(
            "demo_cohort_shift must not set seed, n_patients or acquisition (missing scans): "
            "the confirmation runner chooses them (parameters_confirmation.yml)"
        )
    if generator_has_switch:
        return {**override, "shifted": True}
    return deep_merge(shift, override)


def runtime_params(
    cohort: Cohort, config: ConfirmationConfig, demo_cohort: Mapping[str, Any]
) -> dict[str, Any]:
    """Everything a ``kedro run`` on ``cohort`` overrides, so that none of its artefacts (data
    layers, preprocessing cache and Optuna studies, which the catalog keeps under
    ``data_root``; MLflow experiment) touches the main run's."""
    root = cohort.root.as_posix()
    return {
        "cohort_dir": cohort.cohort_dir.as_posix(),
        "data_root": root,
        "mlflow_experiment": config.mlflow_experiment.format(kind=cohort.kind),
        "demo_cohort": dict(demo_cohort),
    }
