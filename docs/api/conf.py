"""Sphinx configuration of the API reference (build: ``python -m sphinx -b html docs/api docs/api/_build``)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Any

from sphinx.pycode import ModuleAnalyzer

# The packages are documented from the source tree (an editable install finds them too).
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

project = "muon-twins"
author = "muon-twins contributors"
copyright = "muon-twins contributors"
release = "0.1.0"

# The Examples blocks are run by tests/test_doctests.py (doctest.testmod, in each module's
# namespace); sphinx.ext.doctest renders them and lets `-b doctest` run `doctest` directives.
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
]

# Google-style sections (Args:, Returns:, Examples:, References:), no numpy style.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# "Attributes:" as a field list (dataclass fields are documented once, there)
napoleon_use_ivar = True

autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_member_order = "bysource"
# Signatures show the type hints; the descriptions stay as written.
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

nitpicky = False
html_theme = "alabaster"  # ships with Sphinx: the build needs no network
exclude_patterns = ["_build"]


# ``muon_common`` re-exports its constants from the submodules that assign them, and their
# ``#:`` doc comments stay there, where autodoc does not look for ``muon_common.DEFAULTS``
# (it reads comments in the documented module only, and ``automodule`` leaves out data
# without one: ``muon_common.rst`` lists them with ``autodata``). Take each one's comment
# from the submodule that assigns it.
PACKAGES = ("muon_common", "muon_torch", "muon_jax")


def reexported_comment(package_name: str, name: str) -> list[str] | None:
    """The ``#:`` comment of ``package_name.name`` where a submodule assigns it, else None."""
    if package_name not in PACKAGES:
        return None
    package = importlib.import_module(package_name)
    if name not in package.__all__:
        return None
    obj = getattr(package, name)
    for sub in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package_name}.{sub.name}")
        docs = ModuleAnalyzer.for_module(module.__name__).find_attr_docs()
        if getattr(module, name, None) is obj and ("", name) in docs:
            return list(docs[("", name)])
    return None


def _data_docstring(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    package_name, _, attr = name.rpartition(".")
    if what == "data" and (comment := reexported_comment(package_name, attr)) is not None:
        lines[:] = comment


def setup(app: Any) -> None:
    app.connect("autodoc-process-docstring", _data_docstring, priority=400)  # before napoleon
