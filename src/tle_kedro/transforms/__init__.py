"""Image preprocessing and augmentation (no Kedro): from NIfTI files to MNI-space tensors.

``io`` loads one volume safely, ``registration`` registers T1 to MNI152 and PET to T1
(SimpleITK) against the ``templates`` nilearn bundles, ``preprocess`` runs the per-subject
chain and the cohort loop with its ``cache``, ``params`` validates ``params:preprocessing``, and
``augment`` draws the training-time augmentation (TorchIO or batched torch), the same spatial
draw for both modalities of a patient.
"""
