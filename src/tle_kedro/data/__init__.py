"""The input contract and its reading (no Kedro): what a hospital brings, checked and located.

``columns`` names the ``participants.tsv`` columns, ``schema``/``validator`` validate the table
(and run the official ``bids-validator`` when installed), ``cohort``/``discovery`` read a BIDS
folder and choose each subject's T1 and PET, ``dicom`` converts a DICOM export to that layout,
``exclusions`` reports everything left out and why, ``atlas``/``regions`` give the atlas regions
and the MNI crop grid, and ``image_tensors`` is the preprocessed image cohort the models read.
Not to be confused with :mod:`tle_kedro.datasets`, the Kedro catalog wrappers around these.
"""
