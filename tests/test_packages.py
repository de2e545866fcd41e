"""Every package says in its docstring what lives there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

PACKAGES = sorted(p.parent for p in (PROJECT_ROOT / "src/tle_kedro").glob("*/__init__.py"))


@pytest.mark.parametrize("package", PACKAGES, ids=[p.name for p in PACKAGES])
def test_package_docstring_describes_its_modules(package: Path) -> None:
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    assert len(doc.split()) >= 25, f"{package.name}/__init__.py: say what lives in the package"
