"""Thin node of ``dicom_to_bids`` (the work is in ``tle_kedro.data.dicom``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from tle_kedro.data.dicom import DicomToBidsParams, convert_cohort

logger = logging.getLogger(__name__)


def convert_dicom(
    dicom_folder: Path, params: dict[str, Any]
) -> tuple[dict[str, bytes], pd.DataFrame]:
    """Convert every mapped series; ``(BIDS files, one report row per series)``.

    The conversion runs dcm2niix in a private temporary folder (the converter reads and writes
    files itself); the node returns the results and the catalog writes them.
    """
    config = DicomToBidsParams.model_validate(params)
    files, report = convert_cohort(dicom_folder, config)
    counts = report["status"].value_counts()
    logger.info(
        "dicom_to_bids: %d series read, %d converted, %d skipped, %d failed",
        len(report),
        int(counts.get("converted", 0)),
        int(counts.get("skipped", 0)),
        int(counts.get("failed", 0)),
    )
    return files, report
