"""MNI152 references bundled with nilearn (no download), at the registration resolution.

- ``t1``: the MNI152 T1 template, fixed image of T1 → MNI registration;
- ``pet``: a synthetic FDG-like template (grey matter + 0.3 × white matter, smoothed), fixed
  image when a patient has PET but no usable T1;
- ``brain``: the brain mask, where T1 statistics and the PET reference uptake are measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import SimpleITK as sitk
from nilearn import datasets
from scipy.ndimage import gaussian_filter

from tle_kedro.transforms.registration import downsample, to_sitk

# Uptake of white relative to grey matter in FDG PET (typical ~0.3-0.4).
_WM_TO_GM_UPTAKE = 0.3
# PET resolution (FWHM, mm) the template is smoothed to, typical of clinical FDG scanners.
_PET_FWHM_MM = 8.0
_TEMPLATE_MM = 2


@dataclass(frozen=True)
class Templates:
    """MNI152 reference images on one grid of about ``resolution_mm`` (SimpleITK, RAS mm)."""

    t1: sitk.Image
    pet: sitk.Image
    brain: np.ndarray  # (X, Y, Z) bool on the same grid


@lru_cache(maxsize=4)
def mni_templates(resolution_mm: float) -> Templates:
    """The templates block-averaged from nilearn's 2 mm MNI152 to ``resolution_mm``."""
    t1 = datasets.load_mni152_template(resolution=_TEMPLATE_MM)
    affine = t1.affine
    gm = datasets.load_mni152_gm_template(resolution=_TEMPLATE_MM).get_fdata()
    wm = datasets.load_mni152_wm_template(resolution=_TEMPLATE_MM).get_fdata()
    sigma_vox = _PET_FWHM_MM / 2.355 / _TEMPLATE_MM
    pet = gaussian_filter(gm + _WM_TO_GM_UPTAKE * wm, sigma_vox)
    brain = datasets.load_mni152_brain_mask(resolution=_TEMPLATE_MM).get_fdata()
    t1_small = downsample(to_sitk(t1.get_fdata(), affine), resolution_mm)
    pet_small = downsample(to_sitk(pet, affine), resolution_mm)
    brain_small = downsample(to_sitk(brain, affine), resolution_mm)
    brain_mask = sitk.GetArrayFromImage(brain_small).T > 0.5
    return Templates(t1=t1_small, pet=pet_small, brain=np.ascontiguousarray(brain_mask))
