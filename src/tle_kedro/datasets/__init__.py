"""Kedro catalog datasets for the project's own file formats.

Thin ``AbstractDataset`` wrappers around the library: ``bids`` loads a BIDS cohort folder or a
DICOM export through :mod:`tle_kedro.data`, ``tensors`` saves and loads
:class:`~tle_kedro.data.image_tensors.ImageTensors`, ``optional`` is a TSV that may be absent
(a real cohort's ground truth), ``locations`` loads where a library writes by itself (the
Optuna storage, the preprocessing cache). The reading logic itself lives in
:mod:`tle_kedro.data`.
"""
