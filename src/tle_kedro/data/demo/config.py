"""Typed, validated parameters of the synthetic demo cohort (``parameters_demo_cohort.yml``).

Every knob of the generator lives here with its default, so the YAML only needs what differs.
Validation happens once, in :func:`parse_config`, with an error that names the offending key.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tle_kedro.data.columns import BINARY_COLUMNS

Vec3 = tuple[float, float, float]
HISTORY_ITEMS: tuple[str, ...] = BINARY_COLUMNS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnatomyConfig(_Strict):
    """Acquisition geometry and per-patient anatomical variation."""

    template_resolution_mm: int = Field(default=2, ge=1, le=10)
    t1_voxel_mm: Vec3 = (1.75, 1.75, 2.0)
    t1_fov_mm: Vec3 = (180.0, 220.0, 190.0)
    t1_fov_offset_mm_max: float = Field(default=6.0, ge=0)
    pet_voxel_mm: Vec3 = (2.5, 2.5, 3.27)
    pet_fov_mm: Vec3 = (220.0, 230.0, 180.0)
    pet_fov_offset_mm_max: float = Field(default=10.0, ge=0)
    pet_fwhm_mm: float = Field(default=7.0, gt=0)
    scale_sd: float = Field(default=0.05, ge=0, le=0.2)
    rotation_deg_max: float = Field(default=8.0, ge=0, le=30)
    translation_mm_max: float = Field(default=15.0, ge=0)
    deformation_mm: float = Field(default=1.5, ge=0, le=6)
    bias_field_strength: float = Field(default=0.15, ge=0, lt=1)
    t1_noise_sd: float = Field(default=0.03, ge=0)
    pet_noise_sd: float = Field(default=0.04, ge=0)
    pet_scale_median: float = Field(default=8000.0, gt=0)
    pet_scale_log_sd: float = Field(default=0.3, ge=0)
    region_smoothing_mm: float = Field(default=5.0, ge=0)
    # Orientation codes a subject may be stored in (nibabel axis codes) and how often
    # each modality is stored in a non-RAS one.
    orientations: tuple[str, ...] = ("LAS", "LPS", "RPI", "PIR", "ASR")
    fraction_reoriented: float = Field(default=0.35, ge=0, le=1)
    fraction_pet_int16: float = Field(default=0.3, ge=0, le=1)
    fraction_pet_4d: float = Field(default=0.2, ge=0, le=1)

    @field_validator("t1_voxel_mm", "t1_fov_mm", "pet_voxel_mm", "pet_fov_mm")
    @classmethod
    def _positive(cls, v: Vec3) -> Vec3:
        if min(v) <= 0:
            raise ValueError(f"every component must be > 0, got {v}")
        return v

    @field_validator("orientations")
    @classmethod
    def _valid_codes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        pairs = ({"L", "R"}, {"A", "P"}, {"S", "I"})
        for code in v:
            ok = len(code) == 3 and all(sum(c in p for c in code) == 1 for p in pairs)
            if not ok:
                raise ValueError(
                    f"orientation {code!r} is not a nibabel axis code such as 'LAS' or 'PIR'"
                )
        return v


class LesionConfig(_Strict):
    """How latent disease shows in the images."""

    hs_t1_darkening: float = Field(default=0.3, ge=0, lt=1)
    hs_shrink: float = Field(default=0.15, ge=0, lt=0.5)
    hypo_mesial_max: float = Field(default=0.35, gt=0, lt=1)
    hypo_lateral_max: float = Field(default=0.25, gt=0, lt=1)
    hypo_extratemporal_max: float = Field(default=0.25, gt=0, lt=1)


class LatentConfig(_Strict):
    """Distribution of the latent imaging findings (what the images show)."""

    p_left_operated: float = Field(default=0.5, ge=0, le=1)
    p_focus_operated: float = Field(default=0.85, ge=0, le=1)
    p_hs: float = Field(default=0.55, ge=0, le=1)
    p_hs_on_focus: float = Field(default=0.92, ge=0, le=1)
    p_pet_on_focus: float = Field(default=0.92, ge=0, le=1)
    p_contralateral: float = Field(default=0.3, ge=0, le=1)
    p_extratemporal: float = Field(default=0.3, ge=0, le=1)
    hs_read_sensitivity: float = Field(default=0.85, ge=0, le=1)
    hs_false_positive: float = Field(default=0.05, ge=0, le=1)
    p_other_lesion: float = Field(default=0.12, ge=0, le=1)


class ClinicalConfig(_Strict):
    """Marginals of the clinical table (reference cohort of DESIGN.md)."""

    male_fraction: float = Field(default=0.6, ge=0, le=1)
    onset_median_months: float = Field(default=144.0, gt=0)
    duration_median_months: float = Field(default=127.0, gt=0)
    onset_log_sd: float = Field(default=0.6, gt=0)
    duration_log_sd: float = Field(default=0.5, gt=0)
    # Correlation of log onset and log duration; 0.7 puts the median age at surgery
    # (onset + duration) near the reference 276 months.
    onset_duration_log_corr: float = Field(default=0.7, ge=-0.95, le=0.95)
    seizure_frequency_median: float = Field(default=6.0, gt=0)
    seizure_frequency_log_sd: float = Field(default=0.9, gt=0)
    history_rates: dict[str, float] = {
        "febrile_seizures": 0.3,
        "secondary_generalization": 0.5,
        "early_brain_injury": 0.08,
        "family_history": 0.12,
        "hypoxia": 0.05,
        "cns_infection": 0.07,
        "head_trauma": 0.1,
        "prior_surgery": 0.03,
    }
    missing_fraction: float = Field(default=0.03, ge=0, lt=0.5)

    @field_validator("history_rates")
    @classmethod
    def _rates(cls, v: dict[str, float]) -> dict[str, float]:
        if set(v) != set(HISTORY_ITEMS):
            raise ValueError(f"history_rates must have exactly the keys {list(HISTORY_ITEMS)}")
        bad = {k: r for k, r in v.items() if not 0 <= r <= 1}
        if bad:
            raise ValueError(f"history rates must lie in [0, 1], got {bad}")
        return v


class EffectsConfig(_Strict):
    """Log-hazard coefficients of the truth model (see docs/demo_cohort.md)."""

    pet_discordant: float = 2.8
    hs_discordant: float = 2.0
    contralateral: float = 2.6
    extratemporal: float = 2.6
    concordant_hs_pet: float = -1.5
    mri_negative: float = 0.0
    secondary_generalization: float = 0.15
    log_duration: float = 0.1


class OutcomeConfig(_Strict):
    """Weibull proportional-hazards event times and administrative censoring."""

    weibull_shape: float = Field(default=0.6, gt=0, lt=1)
    target_event_rate: float = Field(default=0.35, gt=0.05, lt=0.95)
    followup_min_months: float = Field(default=12.0, gt=0)
    followup_median_months: float = Field(default=24.0, gt=0)
    followup_max_months: float = Field(default=72.0, gt=0)
    engel_recurrence_probs: tuple[float, float, float] = (0.45, 0.35, 0.2)
    effects: EffectsConfig = EffectsConfig()  # frozen: sharing the default is safe

    @model_validator(mode="after")
    def _followup_order(self) -> OutcomeConfig:
        lo, med, hi = (
            self.followup_min_months,
            self.followup_median_months,
            self.followup_max_months,
        )
        if not lo < med < hi:
            raise ValueError(
                "need followup_min_months < followup_median_months < followup_max_months, "
                f"got {lo}, {med}, {hi}"
            )
        if abs(sum(self.engel_recurrence_probs) - 1) > 1e-6:
            raise ValueError("engel_recurrence_probs (II, III, IV) must sum to 1")
        return self


class DemoCohortConfig(_Strict):
    """All parameters of the ``demo_cohort`` pipeline (key ``demo_cohort:``)."""

    n_patients: int = Field(default=220, ge=2, le=100_000)
    seed: int = Field(default=20261125, ge=0)
    anatomy: AnatomyConfig = AnatomyConfig()  # frozen: sharing the default is safe
    lesions: LesionConfig = LesionConfig()  # frozen: sharing the default is safe
    latent: LatentConfig = LatentConfig()  # frozen: sharing the default is safe
    clinical: ClinicalConfig = ClinicalConfig()  # frozen: sharing the default is safe
    outcome: OutcomeConfig = OutcomeConfig()  # frozen: sharing the default is safe


def parse_config(params: dict[str, Any] | DemoCohortConfig | None) -> DemoCohortConfig:
    """Validate the ``demo_cohort`` parameters; ValueError naming each bad key."""
    if isinstance(params, DemoCohortConfig):
        return params
    try:
        return DemoCohortConfig.model_validate(params or {})
    except ValidationError as err:
        lines = [
            f"  demo_cohort.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        ]
        raise ValueError(
            "invalid demo_cohort parameters (conf/base/parameters_demo_cohort.yml):\n"
            + "\n".join(lines)
        ) from None


def tiny_params(n_patients: int = 10, seed: int = 0) -> dict[str, Any]:
    """Parameters of a fast, coarse cohort for tests and smoke runs (4-mm anatomy, ~50³ T1).

    Same generative model as the default; only the image grids are coarser and more subjects
    are stored in unusual orientations, so a 10-patient cohort exercises every variant.
    """
    return {
        "n_patients": n_patients,
        "seed": seed,
        "anatomy": {
            "template_resolution_mm": 4,
            "t1_voxel_mm": (4.0, 4.0, 4.0),
            "pet_voxel_mm": (5.0, 5.0, 6.0),
            "pet_fwhm_mm": 8.0,
            "region_smoothing_mm": 4.0,
            "fraction_reoriented": 0.6,
            "fraction_pet_int16": 0.4,
            "fraction_pet_4d": 0.4,
        },
    }
