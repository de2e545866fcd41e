"""The champion walkthrough notebook runs top to bottom on a real smoke run (nbclient).

The notebook is executed in memory with the ``python3`` kernel of this interpreter against
the ``smoke_run`` project; the executed copy is written under a temporary folder, never over
the committed notebook.
"""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from nbformat import NotebookNode

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_champion_walkthrough.ipynb"
CELL_TIMEOUT_S = 300
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PROBABILITY = re.compile(r"P\(recurrence by (12|24) months\) = ([-+0-9.eE]+)")


def _code_cells(nb: NotebookNode) -> list[NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _tagged(nb: NotebookNode, tag: str) -> NotebookNode:
    cells = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}, found {len(cells)}"
    return cells[0]


def _text(cell: NotebookNode) -> str:
    """Printed text, plain-text and HTML outputs of a code cell (images left out)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        for mime in ("text/plain", "text/html", "text/markdown"):
            parts.append(out.get("data", {}).get(mime, ""))
    return "\n".join(parts)


def _pngs(cell: NotebookNode) -> list[bytes]:
    return [
        base64.b64decode(out.data["image/png"])
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]


def test_committed_notebook_is_valid_and_has_no_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = _code_cells(nb)
    assert code, "the notebook has no code cells"
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert NOTEBOOK.stat().st_size < 50_000


@pytest.fixture(scope="module")
def executed(
    smoke_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[NotebookNode, Path]:
    """(executed notebook, kernel working directory) on the smoke run's project."""
    workdir = tmp_path_factory.mktemp("notebook")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    probe = nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)")
    probe.metadata["tags"] = ["interpreter-probe"]
    nb.cells.insert(0, probe)  # only in this in-memory copy
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TLE_PROJECT_DIR", str(smoke_run))
        env.setenv("TLE_KEDRO_ENV", "smoke")
        env.setenv("OMP_NUM_THREADS", "1")
        env.setenv("MPLBACKEND", "Agg")
        env.setenv("DO_NOT_TRACK", "1")
        env.setenv("KEDRO_DISABLE_TELEMETRY", "1")
        client = NotebookClient(
            nb,
            timeout=CELL_TIMEOUT_S,
            kernel_name="python3",
            resources={"metadata": {"path": str(workdir)}},
        )
        client.execute()
    nbformat.write(nb, workdir / NOTEBOOK.name)
    return nb, workdir


@pytest.mark.slow
def test_kernel_runs_this_interpreter(executed: tuple[NotebookNode, Path]) -> None:
    nb, _ = executed
    assert _text(_tagged(nb, "interpreter-probe")).strip() == sys.prefix


@pytest.mark.slow
def test_every_cell_ran_without_error(executed: tuple[NotebookNode, Path]) -> None:
    nb, _ = executed
    for cell in _code_cells(nb):
        assert cell.execution_count is not None
        assert not [o for o in cell.outputs if o.output_type == "error"]


@pytest.mark.slow
def test_comparison_table_shows_every_model_with_its_c_index(
    executed: tuple[NotebookNode, Path], smoke_run: Path
) -> None:
    nb, _ = executed
    shown = _text(_tagged(nb, "comparison-table"))
    table = pd.read_csv(smoke_run / "data/08_reporting/comparison_table.csv")
    assert "transeprelap" in shown
    for model, c_index in zip(table["model"], table["harrell_c"], strict=True):
        assert model in shown
        assert f"{c_index:.3f}" in shown
    assert "oracle C" in shown  # synthetic cohort: the ceiling is reported


@pytest.mark.slow
def test_plots_and_the_patient_figure_are_shown_inline(
    executed: tuple[NotebookNode, Path],
) -> None:
    nb, _ = executed
    plots = _pngs(_tagged(nb, "plots"))
    figure = _pngs(_tagged(nb, "explanation"))
    assert len(plots) == 3  # forest, Kaplan–Meier, calibration
    assert len(figure) == 1
    assert all(png.startswith(PNG_MAGIC) and len(png) > 5_000 for png in plots + figure)


@pytest.mark.slow
def test_prediction_prints_probabilities_and_a_risk_group(
    executed: tuple[NotebookNode, Path],
) -> None:
    nb, _ = executed
    printed = _text(_tagged(nb, "prediction"))
    probabilities = {int(t): float(p) for t, p in PROBABILITY.findall(printed)}
    assert set(probabilities) == {12, 24}, printed
    assert 0.0 <= probabilities[12] <= probabilities[24] <= 1.0  # S(t) does not increase
    assert re.search(r"risk group: (low|high)", printed)
    assert "T1+PET+clinical" in printed  # the example patient has both images


@pytest.mark.slow
def test_outputs_name_only_the_one_example_patient(executed: tuple[NotebookNode, Path]) -> None:
    nb, _ = executed
    ids = set(re.findall(r"sub-[A-Za-z0-9]+", "\n".join(_text(c) for c in _code_cells(nb))))
    assert len(ids) == 1, f"outputs name several patients: {sorted(ids)}"


@pytest.mark.slow
def test_no_mlflow_store_is_created_in_the_kernel_working_directory(
    executed: tuple[NotebookNode, Path],
) -> None:
    _, workdir = executed
    assert (workdir / NOTEBOOK.name).is_file()  # the executed copy is written here
    assert not (workdir / "mlflow.db").exists()
