"""Write a NIfTI volume as a DICOM series (pydicom), as a PACS export would hold it.

Geometry (DICOM patient space is LPS, NIfTI world space RAS): with the NIfTI affine ``A``, the
LPS affine is ``diag(-1, -1, 1, 1) @ A``; slice ``k`` is the array plane ``data[:, :, k]``,
its pixel ``(row r, column c)`` the voxel ``(c, r, k)``, so ``ImageOrientationPatient`` holds
the LPS directions of array axes 0 (along a row) and 1 (down a column), ``PixelSpacing`` their
spacings (row spacing first) and ``ImagePositionPatient`` the LPS position of voxel
``(0, 0, k)``. Intensities are stored as int16 with ``RescaleSlope``.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SOP_CLASS = {"MR": "1.2.840.10008.5.1.4.1.1.4", "PT": "1.2.840.10008.5.1.4.1.1.128"}
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def write_series(
    nifti: Path,
    folder: Path,
    patient_id: str,
    description: str,
    modality: str,
    series_number: int = 1,
) -> list[Path]:
    """Write ``nifti`` as one DICOM file per slice under ``folder``; returns the files."""
    image = nib.load(str(nifti))
    data = np.asarray(image.get_fdata(dtype=np.float32))
    affine = LPS @ image.affine
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    row_dir, col_dir = affine[:3, 0] / spacing[0], affine[:3, 1] / spacing[1]
    slope = float(np.abs(data).max()) / 30000.0 or 1.0
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(data.shape[2]):
        ds = _slice_dataset(
            modality, patient_id, description, series_number, (study, series, frame)
        )
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [float(v) for v in (affine @ [0, 0, k, 1])[:3]]
        ds.ImageOrientationPatient = [float(v) for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
        ds.SliceThickness = float(spacing[2])
        pixels = np.round(data[:, :, k].T / slope).astype(np.int16)  # (rows = j, columns = i)
        ds.Rows, ds.Columns = pixels.shape
        ds.RescaleSlope, ds.RescaleIntercept = slope, 0.0
        ds.PixelData = pixels.tobytes()
        path = folder / f"IM{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _slice_dataset(
    modality: str, patient_id: str, description: str, number: int, uids: tuple[str, str, str]
) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP_CLASS[modality]
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SOP_CLASS[modality], meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = uids
    ds.Modality, ds.PatientID, ds.PatientName = modality, patient_id, patient_id
    ds.SeriesDescription, ds.SeriesNumber = description, number
    ds.StudyDate, ds.SeriesDate, ds.AcquisitionTime = "20260101", "20260101", "120000"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    return ds
