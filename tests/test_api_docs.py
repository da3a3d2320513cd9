"""The API reference (``docs/api``, Sphinx) builds without warnings and covers every public name.

CI builds the docs through this file: ``sphinx-build -W --keep-going -b html docs/api <tmp>``.
Every name in a package's ``__all__`` has a docstring (a ``#:`` comment for data) with an
``Examples:`` section, which ``tests/test_doctests.py`` runs, and a ``References:`` section.
"""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _public_api import docstring, public_names

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "api"

SECTIONS = ("Examples", "References")


def _callables() -> list[str]:
    """The public functions and classes (data, documented by a ``#:`` comment, need no examples)."""
    return [name for name in public_names()
            if inspect.isclass(obj := getattr(importlib.import_module(name.rsplit(".", 1)[0]), name.rsplit(".", 1)[1]))
            or inspect.isroutine(obj)]


@pytest.mark.parametrize("name", public_names())
def test_public_name_is_documented(name: str) -> None:
    assert docstring(name).strip(), f"{name} has no docstring (or ``#:`` comment, for data)"


@pytest.mark.parametrize("name", _callables())
def test_public_callable_has_examples_and_references(name: str) -> None:
    doc = docstring(name)
    missing = [s for s in SECTIONS if not re.search(rf"^\s*{s}:\s*$", doc, flags=re.M)]
    assert not missing, f"{name}'s docstring has no {' and no '.join(s + ':' for s in missing)} section"


@pytest.fixture(scope="module")
def sphinx_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("api-docs")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q", str(DOCS), str(out)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600), out


def test_docs_build_with_warnings_as_errors(sphinx_build: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, _ = sphinx_build
    output = proc.stderr + proc.stdout
    warnings = [line for line in output.splitlines() if "WARNING" in line or "ERROR" in line]
    assert not warnings, "sphinx-build -W found warnings:\n" + "\n".join(warnings) + f"\n\nfull output:\n{output}"
    assert proc.returncode == 0, f"sphinx-build -W failed:\n{output}"


@pytest.mark.parametrize("name", public_names())
def test_reference_documents_public_name(
    name: str, sphinx_build: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    pkg, attr = name.rsplit(".", 1)
    page = (sphinx_build[1] / f"{pkg}.html").read_text()
    signature = f'<span class="pre">{pkg}.</span></span><span class="sig-name descname"><span class="pre">{attr}</span>'
    assert signature in page, f"docs/api/{pkg}.rst does not document {name}"
