"""The examples in the public docstrings run and print what they say.

Every module that defines a public name (a name in a package's ``__all__``) is here: its
docstrings and the ``#:`` doc comments of its data (what the API reference shows) run
through ``doctest``.
"""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest
from _public_api import PACKAGES, attribute_docs, package_modules

MODULES = [
    "muon_common._portable",
    "muon_common._recipe",
    "muon_common._spec",
    "muon_jax._muon",
    "muon_jax._orthogonalize",
    "muon_jax._recipe",
    "muon_torch._orthogonalize",
    "muon_torch._recipe",
    "muon_torch.optimizer",
]

@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module(name)
    # doctest finds docstrings; the examples in data's "#:" comments join through __test__.
    comments = {f"#: {attr}": doc for attr, doc in attribute_docs(module).items() if ">>>" in doc}
    monkeypatch.setattr(module, "__test__", {**getattr(module, "__test__", {}), **comments}, raising=False)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0


def _defining_module(pkg: str, name: str) -> str:
    obj = getattr(importlib.import_module(pkg), name)
    if inspect.isclass(obj) or inspect.isroutine(obj):
        return obj.__module__
    (module,) = {m.__name__ for m in package_modules() if name in attribute_docs(m) and getattr(m, name) is obj}
    return module


def test_every_module_with_a_public_name_is_tested() -> None:
    defining = {_defining_module(pkg, name) for pkg in PACKAGES for name in importlib.import_module(pkg).__all__}
    assert defining == set(MODULES)
