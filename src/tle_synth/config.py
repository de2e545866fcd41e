"""Typed, validated parameters of the synthetic cohort (``parameters_demo_cohort.yml``).

Every knob of the generator lives here with its default (a test holds the YAML equal to
them), so a YAML override only needs what differs. Validation happens once, in
:func:`parse_config`, with an error that names the offending key. :func:`apply_shift` deep-merges
the confirmation override set (``demo_cohort_shift:``) into a configuration and validates it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Vec3 = tuple[float, float, float]
Range = tuple[float, float]
# History items of participants.tsv (0/1). Restated here on purpose: the generator is a tool
# beside the pipeline and imports nothing from it (tests/synth/test_independence.py).
HISTORY_ITEMS: tuple[str, ...] = (
    "febrile_seizures",
    "secondary_generalization",
    "early_brain_injury",
    "family_history",
    "hypoxia",
    "cns_infection",
    "head_trauma",
    "prior_surgery",
)
MAX_ROTATION_DEG = 12.0  # an affine registration recovers poses up to here
MAX_TRANSLATION_MM = 15.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ordered(v: Range) -> Range:
    if not 0 <= v[0] <= v[1]:
        raise ValueError(f"need 0 <= low <= high, got {v}")
    return v


class SiteConfig(_Strict):
    """One scanner site: voxel sizes, PET resolution, noise and intensity scale."""

    name: str
    weight: float = Field(gt=0)  # relative share of the cohort's patients
    t1_voxel_mm: Vec3
    pet_voxel_mm: Vec3
    pet_fwhm_mm: float = Field(gt=0)
    t1_noise_sd: float = Field(ge=0)  # fraction of the T1 full scale
    pet_noise_sd: float = Field(ge=0)
    t1_full_scale: float = Field(gt=0, le=30000)  # int16 value of the brightest tissue
    pet_scale_median: float = Field(gt=0)  # global scanner scale factor (log-normal)
    pet_scale_log_sd: float = Field(ge=0)
    bias_field_strength: float = Field(ge=0, lt=1)

    @field_validator("t1_voxel_mm", "pet_voxel_mm")
    @classmethod
    def _positive(cls, v: Vec3) -> Vec3:
        if min(v) <= 0:
            raise ValueError(f"every component must be > 0, got {v}")
        return v


_DEFAULT_SITES: tuple[SiteConfig, ...] = (
    SiteConfig(
        name="site_a",
        weight=0.45,
        t1_voxel_mm=(1.75, 1.75, 2.0),
        pet_voxel_mm=(2.5, 2.5, 3.27),
        pet_fwhm_mm=7.0,
        t1_noise_sd=0.03,
        pet_noise_sd=0.04,
        t1_full_scale=1000.0,
        pet_scale_median=8000.0,
        pet_scale_log_sd=0.3,
        bias_field_strength=0.15,
    ),
    SiteConfig(
        name="site_b",
        weight=0.35,
        t1_voxel_mm=(1.6, 1.6, 2.5),
        pet_voxel_mm=(2.4, 2.4, 2.4),
        pet_fwhm_mm=5.5,
        t1_noise_sd=0.04,
        pet_noise_sd=0.06,
        t1_full_scale=2500.0,
        pet_scale_median=15000.0,
        pet_scale_log_sd=0.2,
        bias_field_strength=0.25,
    ),
    SiteConfig(
        name="site_c",
        weight=0.2,
        t1_voxel_mm=(2.0, 2.0, 2.0),
        pet_voxel_mm=(4.0, 4.0, 4.0),
        pet_fwhm_mm=8.5,
        t1_noise_sd=0.025,
        pet_noise_sd=0.03,
        t1_full_scale=600.0,
        pet_scale_median=3000.0,
        pet_scale_log_sd=0.4,
        bias_field_strength=0.1,
    ),
)


class AnatomyConfig(_Strict):
    """Template, fields of view, per-patient anatomical variation, storage variants."""

    template_resolution_mm: int = Field(default=2, ge=1, le=10)
    t1_fov_mm: Vec3 = (180.0, 220.0, 190.0)
    t1_fov_offset_mm_max: float = Field(default=6.0, ge=0)
    pet_fov_mm: Vec3 = (220.0, 230.0, 180.0)
    pet_fov_offset_mm_max: float = Field(default=10.0, ge=0)
    scale_sd: float = Field(default=0.05, ge=0, le=0.2)
    deformation_mm: float = Field(default=1.5, ge=0, le=6)
    # Orientation codes a subject may be stored in (nibabel axis codes) and how often
    # each modality is stored in a non-RAS one.
    orientations: tuple[str, ...] = ("LAS", "LPS", "RPI", "PIR", "ASR")
    fraction_reoriented: float = Field(default=0.35, ge=0, le=1)
    fraction_pet_int16: float = Field(default=0.3, ge=0, le=1)
    fraction_pet_4d: float = Field(default=0.2, ge=0, le=1)

    @field_validator("t1_fov_mm", "pet_fov_mm")
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


class PoseConfig(_Strict):
    """Head pose inside the scanner grid (never written into the affine)."""

    rotation_deg_max: float = Field(default=8.0, ge=0, le=MAX_ROTATION_DEG)
    translation_mm_max: float = Field(default=12.0, ge=0, le=MAX_TRANSLATION_MM)
    # The PET session's own head position relative to the T1 session (rigid).
    pet_rotation_deg_max: float = Field(default=4.0, ge=0, le=MAX_ROTATION_DEG)
    pet_translation_mm_max: float = Field(default=6.0, ge=0, le=MAX_TRANSLATION_MM)


class AcquisitionConfig(_Strict):
    """Which scans a patient has: each modality's share of patients whose scan was never
    acquired (its file is absent). One uniform draw per patient makes the two exclusive:
    no patient loses both, because such a patient leaves the analysis (DESIGN.md) and the
    cohort would shrink instead of missing a modality."""

    fraction_missing_pet: float = Field(default=0.0, ge=0, lt=1)
    fraction_missing_t1: float = Field(default=0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _some_patient_keeps_both(self) -> AcquisitionConfig:
        total = self.fraction_missing_pet + self.fraction_missing_t1
        if total >= 1:
            raise ValueError(
                "fraction_missing_pet + fraction_missing_t1 must be < 1 (a patient misses at "
                f"most one scan), got {self.fraction_missing_pet} + {self.fraction_missing_t1}"
            )
        return self


class LesionConfig(_Strict):
    """How latent disease is drawn into the images (shapes and amplitudes)."""

    hs_t1_darkening: float = Field(default=0.35, ge=0, lt=1)  # max fractional T1 loss
    hs_shrink: float = Field(default=0.2, ge=0, lt=0.5)  # max radial volume loss
    hs_extent_mm: Range = (5.0, 12.0)  # sd of the HS change along the hippocampal axis
    hypo_max: float = Field(default=0.4, gt=0, lt=1)  # FDG loss at a blob centre, severity 1
    blob_sigma_mm: Range = (4.0, 11.0)  # blob sd: focal (spread 0) .. diffuse (spread 1)
    blob_count_max: int = Field(default=5, ge=1, le=12)
    modulation: float = Field(default=0.5, ge=0, le=1)  # smoothed-noise modulation amplitude
    modulation_scale_mm: float = Field(default=8.0, gt=0)
    territory_edge_mm: float = Field(default=2.5, gt=0)  # softness of territory borders

    @field_validator("hs_extent_mm", "blob_sigma_mm")
    @classmethod
    def _ranges(cls, v: Range) -> Range:
        return _ordered(v)


class LatentConfig(_Strict):
    """Distribution of the latent findings (what the images show)."""

    p_left_operated: float = Field(default=0.5, ge=0, le=1)
    p_focus_operated: float = Field(default=0.85, ge=0, le=1)
    p_hs: float = Field(default=0.55, ge=0, le=1)
    p_hs_on_focus: float = Field(default=0.92, ge=0, le=1)
    p_pet_on_focus: float = Field(default=0.92, ge=0, le=1)
    p_contralateral: float = Field(default=0.3, ge=0, le=1)
    p_extratemporal: float = Field(default=0.3, ge=0, le=1)
    # Beta(a, b) of the spread of the main hypometabolism (0 focal .. 1 diffuse) and of the
    # antero-posterior position of the main lesion and of HS (0 anterior .. 1 posterior).
    spread_beta: tuple[float, float] = (1.5, 1.5)
    position_beta: tuple[float, float] = (1.5, 2.0)
    hs_read_sensitivity: float = Field(default=0.85, ge=0, le=1)
    hs_false_positive: float = Field(default=0.05, ge=0, le=1)
    p_other_lesion: float = Field(default=0.12, ge=0, le=1)

    @field_validator("spread_beta", "position_beta")
    @classmethod
    def _beta(cls, v: tuple[float, float]) -> tuple[float, float]:
        if min(v) <= 0:
            raise ValueError(f"Beta parameters must be > 0, got {v}")
        return v


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

    pet_discordant: float = 2.4
    hs_discordant: float = 1.8
    contralateral: float = 2.2
    extratemporal: float = 2.2
    concordant_hs_pet: float = -1.2
    pet_spread: float = 3.0
    pet_posterior: float = 3.0
    hs_posterior: float = 3.0
    mri_negative: float = 0.0
    secondary_generalization: float = 0.15
    log_duration: float = 0.1


class OutcomeConfig(_Strict):
    """Weibull proportional-hazards event times and administrative censoring."""

    weibull_shape: float = Field(default=0.6, gt=0, lt=1)
    target_event_rate: float = Field(default=0.35, gt=0.05, lt=0.95)
    followup_min_months: float = Field(default=12.0, ge=12)
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
    """All parameters of the generator (key ``demo_cohort:``)."""

    n_patients: int = Field(default=220, ge=2, le=100_000)
    seed: int = Field(default=20261125, ge=0)
    shifted: bool = False  # true: the ``demo_cohort_shift`` overrides apply (confirmation)
    anatomy: AnatomyConfig = AnatomyConfig()  # frozen: sharing the default is safe
    pose: PoseConfig = PoseConfig()
    acquisition: AcquisitionConfig = AcquisitionConfig()
    sites: tuple[SiteConfig, ...] = _DEFAULT_SITES
    lesions: LesionConfig = LesionConfig()
    latent: LatentConfig = LatentConfig()
    clinical: ClinicalConfig = ClinicalConfig()
    outcome: OutcomeConfig = OutcomeConfig()

    @field_validator("sites")
    @classmethod
    def _unique_sites(cls, v: tuple[SiteConfig, ...]) -> tuple[SiteConfig, ...]:
        names = [s.name for s in v]
        if not v or len(set(names)) != len(names):
            raise ValueError(f"need at least one site and unique site names, got {names}")
        return v

    def site(self, name: str) -> SiteConfig:
        """The site called ``name`` (KeyError if unknown)."""
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(f"no site {name!r}; sites: {[s.name for s in self.sites]}")


def parse_config(params: Mapping[str, Any] | DemoCohortConfig | None) -> DemoCohortConfig:
    """Validate the ``demo_cohort`` parameters; ValueError naming each bad key."""
    if isinstance(params, DemoCohortConfig):
        return params
    try:
        return DemoCohortConfig.model_validate(dict(params or {}))
    except ValidationError as err:
        lines = [
            f"  demo_cohort.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        ]
        raise ValueError(
            "invalid demo_cohort parameters (conf/base/parameters_demo_cohort.yml):\n"
            + "\n".join(lines)
        ) from None


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in: nested mappings merge, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_shift(config: Mapping[str, Any], shift: Mapping[str, Any]) -> dict[str, Any]:
    """The confirmation configuration: ``shift`` deep-merged into ``config``, validated.

    Nested mappings merge key by key; lists (``sites``, ranges) are replaced whole. The result
    has ``shifted: true``. Neither input is modified.

    Raises:
        ValueError: the merged configuration is invalid (names the key, e.g. an unknown one
            in the shift).
    """
    if "seed" in shift or "n_patients" in shift:
        raise ValueError(
            "demo_cohort_shift must not set seed or n_patients: the confirmation runner chooses "
            "them (generate_cohort(..., seed=...))"
        )
    merged = _deep_merge(config, shift)
    merged["shifted"] = True
    parse_config(merged)
    return merged


def tiny_params(n_patients: int = 10, seed: int = 0) -> dict[str, Any]:
    """Parameters of a fast, coarse cohort for tests and smoke runs (4-mm anatomy, ~50³ T1).

    Same generative model as the default; only the image grids are coarser and more subjects
    are stored in unusual orientations, so a 10-patient cohort exercises every variant.
    """
    coarse = [
        {"t1_voxel_mm": (4.0, 4.0, 4.0), "pet_voxel_mm": (5.0, 5.0, 6.0), "pet_fwhm_mm": 8.0},
        {"t1_voxel_mm": (3.5, 3.5, 4.5), "pet_voxel_mm": (6.0, 6.0, 5.0), "pet_fwhm_mm": 9.0},
    ]
    sites = [
        {**site.model_dump(), **grid}
        for site, grid in zip(DemoCohortConfig().sites, coarse, strict=False)
    ]
    return {
        "n_patients": n_patients,
        "seed": seed,
        "anatomy": {
            "template_resolution_mm": 4,
            "fraction_reoriented": 0.6,
            "fraction_pet_int16": 0.4,
            "fraction_pet_4d": 0.4,
        },
        "sites": sites,
    }
