"""Thin nodes of ``data_processing`` (the work is in ``tle_kedro.data`` and ``.transforms``)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from tle_kedro.data.cohort import RawCohort
from tle_kedro.data.discovery import CohortReading, select_images
from tle_kedro.data.exclusions import Reason, concat_exclusions, exclusion_row, summary_line
from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.data.schema import validate_participants
from tle_kedro.data.validator import validator_summary
from tle_kedro.transforms.params import parse_preprocessing_params
from tle_kedro.transforms.preprocess import preprocess_cohort_qc

logger = logging.getLogger(__name__)


def validate_clinical(raw_cohort: RawCohort) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate ``participants.tsv``: (valid typed rows, table-level exclusions)."""
    return validate_participants(raw_cohort.participants, require_outcome=True)


def choose_images(
    raw_cohort: RawCohort, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each patient's T1 / PET by the selection rule; folder-level report rows.

    Returns:
        ``(cohort_images, folder_exclusions)``: one row per participants row
        (``discovery.IMAGE_COLUMNS``); the cohort's notes (encoding, unlisted subject folders)
        plus the ``bids-validator`` summary when it ran.
    """
    reading = CohortReading.model_validate(params)
    ids = list(raw_cohort.images["participant_id"])
    images = select_images(raw_cohort.root, raw_cohort.candidates, ids, reading.image_selection)
    rows = []
    if reading.bids_validator:
        summary = validator_summary(raw_cohort.root, reading.bids_validator_timeout_s)
        if summary is not None:
            rows.append(exclusion_row(None, Reason.BIDS_VALIDATOR, summary))
    return images, concat_exclusions(
        raw_cohort.notes, pd.DataFrame(rows, columns=raw_cohort.notes.columns)
    )


def preprocess_images(
    participants_checked: pd.DataFrame,
    cohort_images: pd.DataFrame,
    preprocess_cache: str | None,
    params: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, ImageTensors, pd.DataFrame]:
    """Register, normalise and crop every valid patient's images (cached per subject in the
    ``preprocess_cache`` folder; None: no cache).

    Returns:
        ``(clinical_validated, image_exclusions, image_tensors, registration_qc)``;
        ``clinical_validated`` adds ``has_t1``/``has_pet`` and drops patients without any
        usable image; ``registration_qc`` holds each patient's registration quality.
    """
    preprocessing = parse_preprocessing_params(params).model_copy(
        update={"cache_dir": preprocess_cache}
    )
    out = preprocess_cohort_qc(participants_checked, cohort_images, preprocessing)
    return out.used, out.exclusions, out.tensors, out.registration_qc


def report_exclusions(
    raw_cohort: RawCohort,
    clinical_validated: pd.DataFrame,
    table_exclusions: pd.DataFrame,
    folder_exclusions: pd.DataFrame,
    image_exclusions: pd.DataFrame,
) -> pd.DataFrame:
    """The full exclusion report; logs "N read, N used, N excluded, N with a missing modality"."""
    exclusions = concat_exclusions(folder_exclusions, table_exclusions, image_exclusions)
    logger.info(
        "data_processing: %s", summary_line(len(raw_cohort.participants), clinical_validated)
    )
    return exclusions
