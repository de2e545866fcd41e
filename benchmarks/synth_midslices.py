"""Look at one synthetic patient: T1 and PET mid-slices through the lesion, and the lesion alone.

    .venv/bin/python benchmarks/synth_midslices.py [participant_id] [out.png]

Draws the default cohort (conf/base/parameters_demo_cohort.yml; tables only, seconds),
renders one patient (by default the first with severe HS and diffuse severe hypometabolism)
and plots sagittal/coronal/axial slices in scanner space through the hippocampus of the
lesion side, with the fractional loss against the same patient rendered without disease
(noise switched off for that difference, so only the lesion shows).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
import nibabel as nib
import numpy as np

from tle_synth import draw_cohort, load_parameters
from tle_synth.images import render_subject, subject_pose, without_lesions
from tle_synth.lesions import hs_centre_mm

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

PROJECT = Path(__file__).resolve().parents[1]


def _slices(img: nib.Nifti1Image, pose: np.ndarray, centre_mm: np.ndarray) -> list[np.ndarray]:
    """Sagittal, coronal, axial slices (RAS storage) through the world image of ``centre_mm``."""
    img = nib.as_closest_canonical(img)
    data = np.asanyarray(img.dataobj, dtype=np.float32).reshape(img.shape[:3])
    world = pose[:3, :3] @ centre_mm + pose[:3, 3]
    ijk = np.round(np.linalg.inv(img.affine)[:3] @ np.r_[world, 1]).astype(int)
    i, j, k = np.clip(ijk, 0, np.array(data.shape) - 1)
    return [data[i].T, data[:, j].T, data[:, :, k].T]


def main() -> None:
    config, _ = load_parameters(PROJECT / "conf" / "base" / "parameters_demo_cohort.yml")
    cohort = draw_cohort(config)
    gt = cohort.ground_truth
    if len(sys.argv) > 1:
        pid = sys.argv[1]
    else:
        severe = gt["hs_present"] & (gt["hs_severity"] > 0.7) & (gt["pet_severity"] > 0.7)
        pid = str(gt.loc[severe & (gt["pet_spread"] > 0.6), "participant_id"].iloc[0])
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(f"{pid}_midslices.png")
    spec = cohort.subject(pid)
    healthy = without_lesions(spec)
    quiet_sites = tuple(
        s.model_copy(update={"t1_noise_sd": 0.0, "pet_noise_sd": 0.0}) for s in cohort.config.sites
    )
    quiet = cohort.config.model_copy(update={"sites": quiet_sites})
    images = render_subject(spec, cohort.config)
    lesion_only = render_subject(spec, quiet)
    reference = render_subject(healthy, quiet)
    side = spec.hs_side or spec.pet_side
    centre = hs_centre_mm(side, 0.5)
    fig, axes = plt.subplots(4, 3, figsize=(11, 13))
    for row, (modality, title) in enumerate((("t1", "T1"), ("pet", "PET"))):
        pose = subject_pose(spec, modality)
        shown = _slices(images[row], pose, centre)
        sick = _slices(lesion_only[row], pose, centre)
        ref = _slices(reference[row], pose, centre)
        scale = max(float(max(np.percentile(r, 99) for r in ref)), 1e-6)
        for col, name in enumerate(("sagittal", "coronal", "axial")):
            axes[2 * row, col].imshow(shown[col], origin="lower", cmap="gray")
            axes[2 * row, col].set_title(f"{title} {name} through the {side} hippocampus")
            loss = (ref[col] - sick[col]) / scale
            axes[2 * row + 1, col].imshow(loss, origin="lower", cmap="magma", vmin=0, vmax=0.3)
            axes[2 * row + 1, col].set_title(f"{title} loss vs healthy (noise-free)")
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(
        f"{pid} {spec.site}: HS {spec.hs_side or '-'} severity {spec.hs_severity:.2f} position "
        f"{spec.hs_position:.2f}; PET {spec.pet_side} severity {spec.pet_severity:.2f} spread "
        f"{spec.pet_spread:.2f} position {spec.pet_position:.2f}"
    )
    fig.tight_layout()
    fig.savefig(out, dpi=70)
    print(out)


if __name__ == "__main__":
    main()
