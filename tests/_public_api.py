"""The public names of the three packages and what the API reference shows for each."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

from sphinx.pycode import ModuleAnalyzer

PACKAGES = ["muon_torch", "muon_jax", "muon_common"]


def public_names() -> list[str]:
    return [f"{pkg}.{name}" for pkg in PACKAGES for name in importlib.import_module(pkg).__all__]


def package_modules() -> list[ModuleType]:
    modules = []
    for pkg in PACKAGES:
        package = importlib.import_module(pkg)
        modules.append(package)
        modules += [importlib.import_module(f"{pkg}.{m.name}") for m in pkgutil.iter_modules(package.__path__)]
    return modules


def attribute_docs(module: ModuleType) -> dict[str, str]:
    """The ``#:`` doc comments of ``module``'s module-level names (what autodoc shows for data)."""
    docs = ModuleAnalyzer.for_module(module.__name__).find_attr_docs()
    return {name: "\n".join(lines) for (scope, name), lines in docs.items() if scope == ""}


def docstring(qualified: str) -> str:
    """What the reference shows for a public name: its docstring, or the ``#:`` comment of data."""
    pkg, name = qualified.rsplit(".", 1)
    obj = getattr(importlib.import_module(pkg), name)
    if inspect.isclass(obj) or inspect.isroutine(obj):
        return obj.__doc__ or ""
    for module in package_modules():
        if getattr(module, name, None) is obj and name in (docs := attribute_docs(module)):
            return docs[name]
    return ""
