"""Preprocessing parameters (``params:preprocessing``), validated once at the node boundary."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tle_kedro.data.regions import DEFAULT_CROP_BOX_MNI, Box


class RegistrationParams(BaseModel):
    """Low-resolution multi-resolution registration (SimpleITK, Mattes mutual information).

    Both images are block-averaged to ``resolution_mm`` before registering; the pyramid then
    shrinks them further by ``shrink_factors`` (e.g. 8 mm then 4 mm).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    resolution_mm: Annotated[float, Field(gt=0, le=16)] = 4.0
    shrink_factors: tuple[int, ...] = (2, 1)
    smoothing_sigmas_voxels: tuple[float, ...] = (1.0, 0.0)
    iterations: Annotated[int, Field(ge=1, le=2000)] = 100
    histogram_bins: Annotated[int, Field(ge=8, le=256)] = 32
    sampling_fraction: Annotated[float, Field(gt=0, le=1)] = 0.05
    # SimpleITK reads seed 0 as "wall clock" (non-reproducible), so seeds start at 1.
    seed: Annotated[int, Field(ge=1)] = 1

    @field_validator("shrink_factors")
    @classmethod
    def _positive_factors(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(f < 1 for f in value):
            raise ValueError("shrink_factors must be a non-empty list of integers >= 1")
        return value

    def model_post_init(self, context: Any, /) -> None:
        if len(self.smoothing_sigmas_voxels) != len(self.shrink_factors):
            raise ValueError(
                "registration.smoothing_sigmas_voxels needs one value per shrink factor "
                f"({len(self.shrink_factors)}), got {len(self.smoothing_sigmas_voxels)}"
            )


class HeaderChecks(BaseModel):
    """What a NIfTI header must satisfy before any voxel is read (``transforms.io``).

    ``max_voxels``: a header claiming more voxels (all dimensions) is ``image_too_large``; the
    default 2**26 (e.g. 512 x 512 x 256) keeps one image's float32 copies well under 2 GiB.
    ``orientation_tolerance_mm``: when both qform and sform are set, the largest distance
    between where they put a corner of the field of view (``orientation_conflict`` above it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_voxels: Annotated[int, Field(ge=1)] = 2**26
    orientation_tolerance_mm: Annotated[float, Field(ge=0)] = 1.0


class RegistrationQC(BaseModel):
    """Per-patient registration quality: Pearson correlation (normalised cross-correlation)
    of each registered image with its MNI template inside the template's brain mask (T1 with
    the MNI152 T1, PET with the FDG-like template). Below the modality's minimum, the modality
    is masked with ``registration_failed``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_t1_ncc: Annotated[float, Field(ge=-1, le=1)] = 0.5
    min_pet_ncc: Annotated[float, Field(ge=-1, le=1)] = 0.5


class PreprocessingParams(BaseModel):
    """Everything that decides a preprocessed tensor (plus where the cache lives).

    ``max_nonfinite_fraction``: rule for NaN/inf voxels. A modality is unusable
    (``non_finite_voxels``) when more than this fraction of its voxels are non-finite, or when a
    whole slice *inside* the field of view (finite slices on both sides) is non-finite (a
    corrupted slab). Otherwise non-finite voxels are background (e.g. SPM's NaN outside the
    head) and are set to 0.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    crop_box_mni: Box = DEFAULT_CROP_BOX_MNI
    grid_shape: tuple[int, int, int] = (40, 32, 24)
    cache_dir: str | None = None  # a Kedro run: the catalog's preprocess_cache
    registration: RegistrationParams = Field(default_factory=RegistrationParams)
    t1_normalisation: Literal["zscore", "robust"] = "zscore"
    max_nonfinite_fraction: Annotated[float, Field(ge=0, le=1)] = 0.5
    header_checks: HeaderChecks = Field(default_factory=HeaderChecks)
    registration_qc: RegistrationQC = Field(default_factory=RegistrationQC)
    num_threads: Annotated[int, Field(ge=1, le=64)] = 1
    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = "auto"
    progress_bar: bool = True

    @field_validator("crop_box_mni")
    @classmethod
    def _ordered_box(cls, box: Box) -> Box:
        for axis, (lo, hi) in zip("xyz", box, strict=True):
            if not lo < hi:
                raise ValueError(f"crop_box_mni {axis} range must be [min, max], got {[lo, hi]}")
        return box

    @field_validator("grid_shape")
    @classmethod
    def _positive_shape(cls, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(n < 2 for n in shape):
            raise ValueError(f"grid_shape must be >= 2 voxels a side, got {list(shape)}")
        return shape

    def fingerprint(self) -> dict[str, Any]:
        """The parameters that change a preprocessed tensor (the cache key's part)."""
        return self.model_dump(
            mode="json", exclude={"cache_dir", "num_threads", "workers", "progress_bar"}
        )


def parse_preprocessing_params(params: dict[str, Any] | PreprocessingParams) -> PreprocessingParams:
    """Validate ``params:preprocessing`` (a pydantic ``ValidationError`` names the bad key)."""
    if isinstance(params, PreprocessingParams):
        return params
    return PreprocessingParams.model_validate(params)
