"""Gram Newton–Schulz: the form chosen by shape for rectangular matrices, in both twins.

Held to the oracle's standard iteration (``orthogonalize_polynomial``, plain numpy), to the
twins' own standard form (the choice patched off), to each other, and to finiteness over 100
steps on rank-deficient float32 and bfloat16 input, which the restarts are for.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import muon_common._spec
import muon_jax._orthogonalize as jax_orth
import muon_torch._orthogonalize as torch_orth
from muon_common import gram_costs, gram_restarts, ns_schedule, use_gram
from parity_tests.oracle import orthogonalize_polynomial

METHODS: list[Any] = ["ns", "quintic", "polar_express", [(3.0, -3.2, 1.2), (2.0, -1.5, 0.5), (1.5, -0.5, 0.0)]]
SHAPES = [(2, 12, 40), (30, 9), (1, 8, 8 * 3), (5, 64)]  # wide and tall, batched and not


def _coefficients(method: Any, iters: int) -> tuple[list[tuple[float, float, float]], float]:
    return ns_schedule(method, iters)


def test_the_form_is_chosen_by_shape() -> None:
    for method in METHODS:
        coefficients, _ = _coefficients(method, 5)
        assert use_gram(4096, 1024, coefficients) and use_gram(1024, 4096, coefficients)
        assert not use_gram(1024, 1024, coefficients) and not use_gram(1024, 1300, coefficients)
        standard, gram = gram_costs(1024, 4096, coefficients)
        assert gram <= 0.7 * standard  # measured: 0.5 (ns, no restart) to 0.667 (quintic, polar_express)


def _torch(G: np.ndarray, method: Any, iters: int, normalization: str, dtype: str | None = None,
           gram: bool | None = None) -> np.ndarray:
    coefficients, scale = _coefficients(method, iters)
    out = torch_orth.newton_schulz(torch.from_numpy(G), coefficients, 1e-8, scale, dtype, normalization, gram)
    return out.double().numpy()


def _jax(G: np.ndarray, method: Any, iters: int, normalization: str, dtype: str | None = None,
         gram: bool | None = None) -> np.ndarray:
    coefficients, scale = _coefficients(method, iters)
    return np.asarray(jax_orth.newton_schulz(jnp.asarray(G), coefficients, 1e-8, scale, dtype, normalization, gram),
                      np.float64)


def _oracle(G: np.ndarray, method: Any, iters: int, normalization: str) -> np.ndarray:
    coefficients, scale = _coefficients(method, iters)
    batch = G.reshape(-1, *G.shape[-2:])
    return np.stack([orthogonalize_polynomial(g, coefficients, scale, 1e-8, normalization)
                     for g in batch]).reshape(G.shape)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# Measured worst (over shapes, methods, normalisations): float64 1.7e-14 against the oracle's
# standard iteration; float32 4.5e-6 (polar_express, restarted before step 2). The standard
# form itself is 1.3e-6 from the oracle in float32 on these shapes; the Gram form multiplies
# s x s matrices three or four times a step where the standard form goes through X, so its
# rounding is a few times larger. 1e-12 and 2e-5 keep the margins of test_parity_grid.py.
@pytest.mark.parametrize("normalization", ["frobenius", "aol"])
@pytest.mark.parametrize("method", METHODS, ids=["ns", "quintic", "polar_express", "list"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype,tol", [pytest.param(np.float64, 1e-12, marks=pytest.mark.x64), (np.float32, 2e-5)],
                         ids=["float64", "float32"])
def test_gram_matches_the_standard_iteration(shape: tuple[int, ...], method: Any, normalization: str,
                                             dtype: Any, tol: float) -> None:
    assert use_gram(shape[-2], shape[-1], _coefficients(method, 5)[0])  # the Gram form is what runs
    G = np.random.default_rng(sum(shape)).standard_normal(shape)
    want = _oracle(G, method, 5, normalization)
    got = {"torch": _torch(G.astype(dtype), method, 5, normalization),
           "jax": _jax(G.astype(dtype), method, 5, normalization)}
    for name, out in got.items():
        assert _rel(out, want) <= tol, name
    assert _rel(got["torch"], got["jax"]) <= tol


@pytest.mark.parametrize("twin", ["torch", "jax"])
def test_a_bfloat16_iteration_keeps_the_standard_form(twin: str) -> None:
    """A bfloat16 iteration runs the standard steps even where float32 takes the Gram form (whose
    float32 matmuls would replace bfloat16 ones): the chosen output is bit for bit the standard
    form's, and differs from the Gram form's."""
    G = np.random.default_rng(1).standard_normal((12, 40)).astype(np.float32)
    run = {"torch": _torch, "jax": _jax}[twin]
    chosen = run(G, "quintic", 5, "frobenius", "bfloat16")
    assert np.array_equal(chosen, run(G, "quintic", 5, "frobenius", "bfloat16", gram=False))
    assert not np.array_equal(chosen, run(G, "quintic", 5, "frobenius", "bfloat16", gram=True))
    assert np.array_equal(run(G, "quintic", 5, "frobenius"), run(G, "quintic", 5, "frobenius", gram=True))


def test_gram_is_not_the_standard_form() -> None:
    """The comparison above is not vacuous: the two forms round differently in float32."""
    G = np.random.default_rng(0).standard_normal((12, 40)).astype(np.float32)
    gram = _torch(G, "polar_express", 5, "frobenius")
    assert np.array_equal(gram, _torch(G, "polar_express", 5, "frobenius", gram=True))
    standard = _torch(G, "polar_express", 5, "frobenius", gram=False)
    assert 0 < _rel(gram, standard) <= 2e-5


def _rank_deficient(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(3)
    return (rng.standard_normal((2, 24, 3)) @ rng.standard_normal((2, 3, 96))).astype(np.float32)


@pytest.mark.parametrize("normalization", ["frobenius", "aol"])
@pytest.mark.parametrize("dtype", [None, "bfloat16"], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("method", METHODS, ids=["ns", "quintic", "polar_express", "list"])
def test_finite_over_100_steps_on_rank_deficient_input(method: Any, dtype: str | None, normalization: str) -> None:
    """Every schedule, with its own restarts (``gram_restarts``: none in 11 steps of ``ns``,
    every 3 of ``quintic``), stays finite and where the standard form goes. The Gram form is
    asked for: a bfloat16 iteration would not choose it (``use_gram``), but a caller may."""
    G = _rank_deficient("float32")
    standard = np.linalg.svd(_torch(G, method, 100, normalization, dtype, gram=False), compute_uv=False)
    for out in (_torch(G, method, 100, normalization, dtype, gram=True),
                _jax(G, method, 100, normalization, dtype, gram=True)):
        assert np.all(np.isfinite(out))
        singular = np.linalg.svd(out, compute_uv=False)
        # After 100 steps every singular value (the null space's rounding noise too, grown as
        # every odd polynomial grows it) lies where the standard form's do: at 1, or in quintic's
        # oscillation between 0.68 and 1.14. Measured worst excess over the standard form's range:
        # 2.7e-3 (bfloat16), 1e-7 (float32); a drifting Gram matrix gives NaN or values >> 1.
        assert singular.max() <= standard.max() + 0.01 and singular.min() >= standard.min() - 0.01


def test_without_restarts_the_gram_iteration_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the restarts prevent (float32, rank-deficient): ``A <- p(A) A p(A)`` alone loses
    positive semidefiniteness and a negative eigenvalue grows until it overflows."""
    G = _rank_deficient("float32")
    monkeypatch.setattr(muon_common._spec, "GRAM_GROWTH_LIMIT", float("inf"))
    assert not torch_orth.gram_restarts(_coefficients("polar_express", 100)[0])
    out = _torch(G, "polar_express", 100, "frobenius")
    assert not np.all(np.isfinite(out)) or np.max(np.abs(out)) > 10


def test_the_restarts_follow_the_growth_of_the_drift() -> None:
    """``gram_restarts`` carries a Gram matrix while the product of ``a^2`` stays within the
    limit, and through at least one step whatever the coefficients."""
    assert sorted(gram_restarts(_coefficients("quintic", 10)[0])) == [3, 6, 9]  # 3.4445^6 = 1670
    assert sorted(gram_restarts(_coefficients("ns", 24)[0])) == [11, 22]  # 1.5^22 = 7482
    assert sorted(gram_restarts([(200.0, -1.0, 0.0)] * 4)) == [1, 2, 3]  # 200^2 alone is past it
    assert not gram_restarts([(1.0, 0.0, 0.0)] * 50)


def _dot_precisions(fn: Any, x: Any) -> list[Any]:
    """The ``precision`` of every ``dot_general`` in the jaxpr of ``fn(x)``, nested ones included."""
    import jax

    def walk(jaxpr: Any) -> list[Any]:
        out = []
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                out.append(eqn.params["precision"])
            for value in eqn.params.values():
                inner = getattr(value, "jaxpr", value)
                if hasattr(inner, "eqns"):
                    out += walk(inner)
        return out

    return walk(jax.make_jaxpr(fn)(x).jaxpr)


@pytest.mark.parametrize("method", ["polar_express", "svd"])
def test_float32_matmuls_ask_for_full_precision(method: str) -> None:
    """On a GPU, JAX's default float32 matmul rounds its operands (TF32/bfloat16) where torch's
    does not: every float32 matmul of the orthogonalisation asks for HIGHEST, so the twins
    agree there as on a CPU (which computes float32 either way). bfloat16 steps keep the default."""
    from jax import lax

    highest = (lax.Precision.HIGHEST, lax.Precision.HIGHEST)
    for shape in ((12, 40), (16, 16)):  # the Gram form and the standard one
        found = _dot_precisions(lambda g: jax_orth.orthogonalize(g, method=method), jnp.ones(shape, jnp.float32))
        assert found and all(p == highest for p in found), found
    bf16 = _dot_precisions(lambda g: jax_orth.orthogonalize(g, method="quintic", dtype="bfloat16"),
                           jnp.ones((16, 16), jnp.float32))
    assert bf16 and all(p is None for p in bf16), bf16
