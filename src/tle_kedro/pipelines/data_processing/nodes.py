"""Thin nodes of ``data_processing`` (the work is in ``tle_kedro.data`` and ``.transforms``)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from tle_kedro.data.cohort import RawCohort
from tle_kedro.data.exclusions import concat_exclusions, summary_line
from tle_kedro.data.image_tensors import ImageTensors
from tle_kedro.data.schema import validate_participants
from tle_kedro.transforms.params import parse_preprocessing_params
from tle_kedro.transforms.preprocess import preprocess_cohort

logger = logging.getLogger(__name__)


def validate_clinical(raw_cohort: RawCohort) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate ``participants.tsv``: (valid typed rows, table-level exclusions)."""
    return validate_participants(raw_cohort.participants, require_outcome=True)


def preprocess_images(
    participants_checked: pd.DataFrame, raw_cohort: RawCohort, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, ImageTensors]:
    """Register, normalise and crop every valid patient's images (cached per subject).

    Returns:
        ``(clinical_validated, image_exclusions, image_tensors)``; ``clinical_validated`` adds
        ``has_t1``/``has_pet`` and drops patients without any usable image.
    """
    preprocessing = parse_preprocessing_params(params)
    return preprocess_cohort(participants_checked, raw_cohort.images, preprocessing)


def report_exclusions(
    raw_cohort: RawCohort,
    clinical_validated: pd.DataFrame,
    table_exclusions: pd.DataFrame,
    image_exclusions: pd.DataFrame,
) -> pd.DataFrame:
    """The full exclusion report; logs "N read, N used, N excluded, N with a missing modality"."""
    exclusions = concat_exclusions(table_exclusions, image_exclusions)
    logger.info(
        "data_processing: %s", summary_line(len(raw_cohort.participants), clinical_validated)
    )
    return exclusions
