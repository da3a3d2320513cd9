"""JAX runs in float64 only in a test that asks for it (``conftest.py``): the two halves of the rule."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


def test_the_session_default_is_float32() -> None:
    """No session-wide x64 switch: an unmarked test gets JAX's 32-bit defaults."""
    assert not jax.config.read("jax_enable_x64")
    assert jnp.ones(1).dtype == jnp.float32
    assert jnp.asarray(np.ones(2)).dtype == jnp.float32  # a float64 NumPy array is converted to float32
    assert jax.jit(lambda x: x * 2)(np.ones(2)).dtype == jnp.float32


def test_float64_without_the_mark_is_an_error() -> None:
    with pytest.raises(ValueError, match="float64"):
        jnp.zeros(2, jnp.float64)


@pytest.fixture
def made_in_setup() -> jax.Array:
    return jnp.ones(2)


@pytest.mark.x64
def test_the_mark_gives_float64_in_setup_and_body(made_in_setup: jax.Array) -> None:
    assert jax.config.read("jax_enable_x64")
    assert made_in_setup.dtype == jnp.float64
    assert jnp.ones(1).dtype == jnp.float64
    assert jnp.asarray(np.ones(2)).dtype == jnp.float64
    assert jax.jit(lambda x: x * 2)(np.ones(2)).dtype == jnp.float64
    assert jnp.zeros(2, jnp.float64).dtype == jnp.float64


@pytest.mark.parametrize("dtype", [pytest.param(np.float64, marks=pytest.mark.x64), np.float32],
                         ids=["float64", "float32"])
def test_the_mark_on_one_parametrisation(dtype: Any) -> None:
    assert jax.config.read("jax_enable_x64") == (dtype == np.float64)
    assert jnp.ones(1).dtype == dtype


@pytest.mark.x64
@settings(max_examples=3, deadline=None, derandomize=True)
@given(n=st.integers(1, 3))
def test_the_mark_covers_every_hypothesis_example(n: int) -> None:
    assert jnp.ones(n).dtype == jnp.float64
