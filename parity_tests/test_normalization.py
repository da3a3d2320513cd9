"""``normalization="aol"``: both twins against the numpy oracle, and what the option promises.

AOL (Turbo-Muon) starts Newton–Schulz from ``X0 = D X`` on the small side ``X`` of ``G``, with
``d_i = 1 / (k sqrt(sum_j |X X^T|_ij + eps))``. The oracle writes that formula out in float64
(``parity_tests.oracle.orthogonalize_polynomial``); the coefficient schedule is expanded here
from ``NS_METHODS`` as ``OracleMuon`` does, not through the twins' ``ns_schedule``.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import muon_jax
import muon_torch
from muon_common import NORMALIZATIONS, NS_METHODS, Messages
from muon_jax import _orthogonalize as jax_orth
from muon_torch import _orthogonalize as torch_orth
from parity_tests.oracle import orthogonalize_polynomial

EPS = 1e-8
SHAPES = [(12, 12), (20, 8), (8, 20), (3, 6, 10), (2, 10, 6)]
METHODS: dict[str, Any] = {
    "ns": "ns",
    "quintic": "quintic",
    "polar_express": "polar_express",
    "list": [(3.4445, -4.7750, 2.0315), (1.875, -1.25, 0.375)],
}
ITERS = [1, 3, 5]

# Worst errors measured over SHAPES x METHODS x ITERS (max |twin - oracle| / max |oracle|):
# float64 1.2e-14 twin vs oracle, 9.3e-15 twin vs twin; float32 6.2e-6 and 6.0e-6 (polar_express,
# whose steep first polynomial amplifies the input's rounding most). Bounds keep ~5x room.
TOL = {np.float64: 1e-12, np.float32: 3e-5}
# Rank-deficient inputs: the rounding noise in G's null directions is multiplied by each step's
# slope at 0, a_k (prod a_k ~ 880 for polar_express, 485 for quintic). Measured worst over the
# degenerate cases below (rank1 each time): float64 4.5e-13, float32 8.5e-5 (polar_express; the
# Frobenius start gives 4.9e-13 and 4.5e-5 there). Bounds keep ~6x room.
TOL_RANK_DEFICIENT = {np.float64: 3e-12, np.float32: 5e-4}
# bfloat16 steps (unit roundoff 3.9e-3), 5 steps, relative Frobenius error against the float64
# oracle; measured worst over SHAPES: ns 4.6e-3, quintic 2.2e-2, polar_express 4.9e-2, the same
# as the Frobenius start gives in bfloat16 (4.0e-3, 2.0e-2, 4.4e-2). Bounds keep ~3x room.
TOL_BF16 = {"ns": 1.5e-2, "quintic": 6e-2, "polar_express": 0.15, "list": 6e-2}
# Twin vs twin in bfloat16: measured 0 to 4.7e-4 (both accumulate in float32 and round once;
# they part only where a float32 sum lands on a bfloat16 rounding boundary, and one flipped
# entry moves a 5-step polar_express result by up to ~1e-2).
TOL_BF16_TWINS = 2e-2


def _steps(method: Any, iters: int) -> tuple[list[tuple[float, float, float]], float]:
    if isinstance(method, str):
        table, norm_scale = NS_METHODS[method].coefficients, NS_METHODS[method].norm_scale
    else:
        table, norm_scale = tuple(method), 1.0
    return [table[min(k, len(table) - 1)] for k in range(iters)], norm_scale


def _oracle(G: np.ndarray, method: Any, iters: int, normalization: str = "aol") -> np.ndarray:
    steps, norm_scale = _steps(method, iters)
    flat = np.asarray(G, np.float64).reshape(-1, *G.shape[-2:])
    out = [orthogonalize_polynomial(g, steps, norm_scale, EPS, normalization) for g in flat]
    return np.stack(out).reshape(G.shape)


def _twins(G: np.ndarray, method: Any, iters: int, dtype: str | None = None,
           normalization: str = "aol") -> tuple[np.ndarray, np.ndarray]:
    t = muon_torch.orthogonalize(torch.from_numpy(G), method, iters, EPS, dtype, normalization)
    j = muon_jax.orthogonalize(jnp.asarray(G), method, iters, EPS, dtype, normalization)
    return t.double().numpy(), np.asarray(j).astype(np.float64)


def _max_rel(a: np.ndarray, b: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(ref)))


def _fro_rel(a: np.ndarray, b: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(ref))


@pytest.mark.parametrize("dtype", [pytest.param(np.float64, marks=pytest.mark.x64), np.float32],
                         ids=["float64", "float32"])
@pytest.mark.parametrize(("shape", "method", "iters"), list(itertools.product(SHAPES, METHODS, ITERS)),
                         ids=lambda x: str(x))
def test_aol_matches_oracle(dtype: Any, shape: tuple[int, ...], method: str, iters: int) -> None:
    G = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    ref = _oracle(G, METHODS[method], iters)
    t, j = _twins(G, METHODS[method], iters)
    assert _max_rel(t, ref, ref) <= TOL[dtype]
    assert _max_rel(j, ref, ref) <= TOL[dtype]
    assert _max_rel(t, j, ref) <= TOL[dtype]


@pytest.mark.parametrize("method", list(METHODS))
def test_aol_in_bfloat16(method: str) -> None:
    rng = np.random.default_rng(1)
    for shape in SHAPES:
        G = rng.standard_normal(shape).astype(np.float32)
        ref = _oracle(G, METHODS[method], 5)
        t, j = _twins(G, METHODS[method], 5, dtype="bfloat16")
        err = max(_fro_rel(t, ref, ref), _fro_rel(j, ref, ref))
        assert err <= TOL_BF16[method], (shape, err)
        assert _fro_rel(t, j, ref) <= TOL_BF16_TWINS, shape
        # ... and the steps really ran in bfloat16: float32 is far closer to the oracle.
        exact, _ = _twins(G, METHODS[method], 5)
        assert _fro_rel(exact, ref, ref) < 0.01 * err, shape


def _degenerate(name: str) -> np.ndarray:
    rng = np.random.default_rng(2)
    G = rng.standard_normal((10, 16))
    if name == "zero":
        return np.zeros((10, 16))
    if name == "rank1":
        return np.outer(rng.standard_normal(10), rng.standard_normal(16))
    if name == "rank3":
        return rng.standard_normal((10, 3)) @ rng.standard_normal((3, 16))
    if name == "zero_rows":  # rank-deficient on the small side: 4 rows of S are zero
        return np.vstack([G[:6], np.zeros((4, 16))])
    if name == "zero_cols_tall":
        return np.hstack([G.T[:, :6], np.zeros((16, 4))])
    if name == "huge":
        return G * 1e30
    if name == "huge_zero_rows":  # eps / max|G|^2 underflows to 0 in float32: the clamp keeps d finite
        return np.vstack([G[:6], np.zeros((4, 16))]) * 1e30
    if name == "tiny":
        return G * 1e-30
    raise ValueError(name)


DEGENERATE = ["zero", "rank1", "rank3", "zero_rows", "zero_cols_tall", "huge", "huge_zero_rows", "tiny"]
CONFIGS = {"float64": (np.float64, None), "float32": (np.float32, None), "bfloat16": (np.float32, "bfloat16")}
CONFIG_PARAMS = [pytest.param(c, marks=pytest.mark.x64) if c == "float64" else c for c in CONFIGS]


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("config", CONFIG_PARAMS)
@pytest.mark.parametrize("case", DEGENERATE)
def test_aol_is_finite_on_degenerate_inputs(case: str, config: str, method: str) -> None:
    dtype, compute = CONFIGS[config]
    G = _degenerate(case).astype(dtype)
    for out in _twins(G, METHODS[method], 5, dtype=compute):
        assert np.all(np.isfinite(out))
        if case == "zero":
            assert np.all(out == 0.0)
        elif case == "tiny":
            # eps dominates ||G||^2 ~ 1e-58: the reference gives about G / sqrt(eps), ~1e-26.
            assert np.max(np.abs(out)) <= 1e-20
        elif compute is None:
            ref = _oracle(G, METHODS[method], 5)
            assert _max_rel(out, ref, ref) <= TOL_RANK_DEFICIENT[dtype]
        else:  # bfloat16 rounding can push a singular value past polar_express's safety margin
            assert np.linalg.norm(out, ord=2) <= 2.0


def _start(newton_schulz: Callable[..., Any], G: np.ndarray, norm_scale: float) -> np.ndarray:
    """``X0`` itself: one step of ``X <- 1 X + 0 + 0``."""
    array = torch.from_numpy if newton_schulz is torch_orth.newton_schulz else jnp.asarray
    out = newton_schulz(array(G), [(1.0, 0.0, 0.0)], EPS, norm_scale, None, "aol")
    return np.asarray(out)


@pytest.mark.parametrize("newton_schulz", [torch_orth.newton_schulz,  # float64 inputs, bound to 1e-12:
                                           pytest.param(jax_orth.newton_schulz, marks=pytest.mark.x64)],
                         ids=["torch", "jax"])
@pytest.mark.parametrize("norm_scale", [1.0, 1.01])
def test_aol_start_has_spectral_norm_at_most_one(newton_schulz: Callable[..., Any], norm_scale: float) -> None:
    rng = np.random.default_rng(3)
    inputs = [
        rng.standard_normal((16, 40)),
        rng.standard_normal((40, 16)),
        rng.standard_cauchy((24, 24)),  # heavy tails: a few huge entries
        rng.standard_normal((16, 40)) * np.logspace(0, 4, 16)[:, None],  # rows of very different norms
        np.ones((16, 40)),  # every row sum equals the spectral norm: the bound is attained
    ]
    for G in inputs:
        assert np.linalg.norm(_start(newton_schulz, G, norm_scale), ord=2) <= (1.0 + 1e-12) / norm_scale
    # Rank one, u v^T: ||D u|| ||v|| = 1 exactly (up to eps), so the bound is tight.
    u, v = rng.standard_normal(16), rng.standard_normal(40)
    assert np.linalg.norm(_start(newton_schulz, np.outer(u, v), norm_scale), ord=2) == pytest.approx(
        1.0 / norm_scale, rel=1e-6)


def _polar(X: np.ndarray) -> np.ndarray:
    U, _, Vh = np.linalg.svd(X, full_matrices=False)
    return U @ Vh


@pytest.mark.x64  # float64, to 1e-10
@pytest.mark.parametrize("shape", [(8, 20), (20, 8)])
def test_aol_tends_to_the_polar_factor_of_the_rescaled_matrix(shape: tuple[int, int]) -> None:
    """What the docstring says: the limit is polar(D X) on the small side, not polar(G)."""
    rng = np.random.default_rng(4)
    rows = np.logspace(0, 1, min(shape))  # unequal row sums on the small side, so D is not c I
    small = rng.standard_normal((min(shape), max(shape))) * rows[:, None]
    G = small if shape[0] <= shape[1] else small.T
    d = 1.0 / np.sqrt(np.sum(np.abs(small @ small.T), axis=1) + EPS)
    limit = _polar(d[:, None] * small)
    limit = limit if shape[0] <= shape[1] else limit.T
    for out in _twins(G, "polar_express", 12):
        assert np.max(np.abs(out - limit)) <= 1e-10
        assert np.max(np.abs(out - _polar(G))) >= 1e-2


@pytest.mark.x64  # float64 inputs, as torch gets them
def test_frobenius_is_the_default() -> None:
    G = np.random.default_rng(5).standard_normal((8, 20))
    default = _twins(G, "polar_express", 3, normalization="frobenius")
    t = muon_torch.orthogonalize(torch.from_numpy(G), "polar_express", 3).numpy()
    j = np.asarray(muon_jax.orthogonalize(jnp.asarray(G), "polar_express", 3))
    np.testing.assert_array_equal(t, default[0])
    np.testing.assert_array_equal(j, default[1])
    assert np.max(np.abs(default[0] - _twins(G, "polar_express", 3)[0])) > 1e-3


@pytest.mark.x64  # float64, to 1e-13
def test_aol_under_jit_matches_eager() -> None:
    G = jnp.asarray(np.random.default_rng(6).standard_normal((3, 6, 10)))
    fn = functools.partial(muon_jax.orthogonalize, method="quintic", ns_iters=4, normalization="aol")
    np.testing.assert_allclose(np.asarray(jax.jit(fn)(G)), np.asarray(fn(G)), rtol=0, atol=1e-13)


def _message(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ValueError) as info:
        fn(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"method": "svd", "normalization": "aol"}, Messages.NORMALIZATION_SVD.format(value="aol")),
        ({"normalization": "spectral"},
         Messages.NORMALIZATION.format(value="spectral", choices=", ".join(map(repr, NORMALIZATIONS)))),
    ],
)
def test_bad_normalization_rejected_identically(kwargs: dict[str, Any], expected: str) -> None:
    assert _message(muon_torch.orthogonalize, torch.ones(3, 4), **kwargs) == expected
    assert _message(muon_jax.orthogonalize, jnp.ones((3, 4)), **kwargs) == expected
