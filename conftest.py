"""Test-suite configuration shared by tests/ and parity_tests/.

JAX runs in its default mode: 32-bit types, as in a user's program. A test that needs float64
asks for it with the ``x64`` mark, on the test (``@pytest.mark.x64``), on one parametrisation
(``pytest.param(np.float64, ..., marks=pytest.mark.x64)``) or on a module (``pytestmark``).
Its setup, body (every Hypothesis example included) and teardown then run inside
``jax.enable_x64(True)``, which is restored after each phase, so no other test sees it.
``tests/test_x64.py`` holds both halves: unmarked is float32, marked is float64.

Asking for float64 without the mark raises instead of silently giving float32:
``jax_explicit_x64_dtypes`` is "error" (JAX's default only warns). An array *converted*
from a float64 NumPy array has no explicit dtype and still becomes float32 outside the mark.

Beware of what a marked test does not own: arrays made at import time or in a module-scoped
fixture set up by an unmarked test are float32; a module-scoped fixture set up by a marked
test may hand float64 arrays to unmarked ones. Subprocesses start in JAX's default mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import Any

import jax
import pytest

jax.config.update("jax_explicit_x64_dtypes", "error")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "x64: run the test (setup, body, teardown) with JAX's jax_enable_x64 on")


def _x64(item: pytest.Item) -> contextlib.AbstractContextManager[Any]:
    return jax.enable_x64(True) if item.get_closest_marker("x64") else contextlib.nullcontext()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with _x64(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with _x64(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    with _x64(item):
        return (yield)
