"""Fixtures shared by the pipeline tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MlflowClient]:
    """A throw-away SQLite MLflow store (tracking and registry) for one test."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    yield MlflowClient()
    mlflow.set_tracking_uri(previous)
