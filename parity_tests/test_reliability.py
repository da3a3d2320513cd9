"""Numerical safety and non-finite gradients, both twins.

A finite input never gives a non-finite output (zero, rank-1, scales 1e-30..1e30, 1 x n
and n x 1, float32 and bfloat16, up to 100 Newton–Schulz steps, every method), and a
NaN/Inf in a parameter's gradient leaves that parameter and its momentum unchanged for
the step, identically in both twins, with a per-parameter counter.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import muon_jax
import muon_torch
from muon_common import METHODS
from parity_tests.harness import LR, SHAPES, make_grads, make_params, max_rel_err, run_jax, run_oracle, run_torch

NAMED_METHODS = list(METHODS)
#: CI runs a bounded number of cases; set MUON_HYPOTHESIS_EXAMPLES for a longer run.
EXAMPLES = int(os.environ.get("MUON_HYPOTHESIS_EXAMPLES", "60"))
#: Matrix sides the property tests draw: 1 x n, n x 1, square, tall and wide up to 12 x 1, from
#: few enough shapes that JAX's eager ops compile for most examples' shapes once (measured:
#: test_property_twins_agree 7.8 s -> 4.4 s against sides 2..12).
SIDES = (1, 2, 3, 5, 8, 12)
#: (dtype, eps, tol) as in test_parity_grid.py; the float64 case runs JAX with x64 on (conftest.py).
DTYPES = [pytest.param(np.float64, 1e-16, 1e-12, marks=pytest.mark.x64), (np.float32, 1e-8, 1e-5)]


def _both(G: np.ndarray, dtype: str, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    t = muon_torch.orthogonalize(torch.tensor(G).to(getattr(torch, dtype)), **kw).float().numpy()
    j = np.asarray(muon_jax.orthogonalize(jnp.asarray(G, dtype=dtype), **kw), dtype=np.float32)
    return t, j


def _matrix(kind: str, shape: tuple[int, int], scale: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "zero":
        return np.zeros(shape)
    if kind == "rank1":
        return scale * np.outer(rng.standard_normal(shape[0]), rng.standard_normal(shape[1]))
    return scale * rng.standard_normal(shape)


@pytest.mark.parametrize("method,dtype", list(itertools.product(NAMED_METHODS, ["float32", "bfloat16"])))
def test_extremes_stay_finite(method: str, dtype: str) -> None:
    for kind, shape, scale, iters in itertools.product(
        ("zero", "rank1", "gauss"), [(1, 9), (9, 1), (6, 6), (4, 11)], [1e-30, 1e-10, 1.0, 1e10, 1e30], [1, 5, 100]
    ):
        G = _matrix(kind, shape, scale, seed=0)
        for out in _both(G, dtype, method=method, ns_iters=iters):
            assert np.all(np.isfinite(out)), (kind, shape, scale, iters)
            if kind == "zero":
                assert not np.any(out), "the polar factor of a zero matrix is taken as zero"


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(
    rows=st.sampled_from(SIDES), cols=st.sampled_from(SIDES), log_scale=st.floats(-30, 30),
    method=st.sampled_from(NAMED_METHODS), iters=st.integers(1, 100), kind=st.sampled_from(["gauss", "rank1"]),
    dtype=st.sampled_from(["float32", "bfloat16"]), seed=st.integers(0, 2**16),
)
def test_property_finite(rows: int, cols: int, log_scale: float, method: str, iters: int, kind: str, dtype: str,
                         seed: int) -> None:
    G = _matrix(kind, (rows, cols), 10.0**log_scale, seed)
    for out in _both(G, dtype, method=method, ns_iters=iters):
        assert np.all(np.isfinite(out))


@settings(max_examples=max(EXAMPLES * 2 // 3, 1), deadline=None, derandomize=True)
@given(
    rows=st.sampled_from(SIDES[1:]), cols=st.sampled_from(SIDES[1:]), log_scale=st.floats(-30, 30),
    method=st.sampled_from(NAMED_METHODS), iters=st.integers(1, 8), seed=st.integers(0, 2**16),
)
def test_property_twins_agree(rows: int, cols: int, log_scale: float, method: str, iters: int, seed: int) -> None:
    """Float32 twins agree on full-rank Gaussian input at any scale.

    The output does not depend on the scale (up to eps), so errors are relative to 1.
    Measured over 300 random draws of this distribution: 5.4e-6 at most; bound 1e-4. (On rank-deficient input many
    steps amplify each framework's own rounding noise in the null space, so agreement is
    only asked of full-rank input.)
    """
    G = _matrix("gauss", (rows, cols), 10.0**log_scale, seed)
    t, j = _both(G, "float32", method=method, ns_iters=iters)
    assert np.max(np.abs(t - j)) <= 1e-4 * max(1.0, float(np.max(np.abs(t))))


def _nonfinite_grads() -> list[dict[str, np.ndarray]]:
    grads = make_grads()
    grads[3]["square"][1, 2] = np.nan
    grads[5]["vector"][0] = np.inf
    grads[5]["wide"][:] = -np.inf
    grads[9]["scalar"] = np.array(np.nan)
    grads[9]["stack3d"][0, 0, 0] = np.nan
    return grads


@pytest.mark.parametrize("method", ["ns", "polar_express"])
@pytest.mark.parametrize("dtype,eps,tol", DTYPES, ids=["float64", "float32"])
def test_nonfinite_gradients_skip_the_parameter(method: str, dtype: Any, eps: float, tol: float) -> None:
    """Tolerances as in test_parity_grid.py (same measured errors: the skipped steps are exact)."""
    config = dict(method=method, eps=eps, beta=0.9, weight_decay=0.1, rms_scale=True, clip_grad_norm=0.5)
    params, grads = make_params(), _nonfinite_grads()
    oracle_params, oracle_momentum = run_oracle(config, params, grads)
    torch_params = {k: torch.nn.Parameter(torch.tensor(v, dtype=getattr(torch, np.dtype(dtype).name)))
                    for k, v in params.items()}
    opt = muon_torch.Muon(list(torch_params.values()), lr=LR, **config)
    tx = muon_jax.muon(LR, **config)
    jax_params = {k: jnp.asarray(v, dtype=dtype) for k, v in params.items()}
    state = tx.init(jax_params)
    update = jax.jit(tx.update)  # as a training step runs it (eager agrees: test_jax_transform.py)
    for g in grads:
        for k, p in torch_params.items():
            p.grad = torch.tensor(g[k], dtype=p.dtype)
        opt.step()
        updates, state = update({k: jnp.asarray(v, dtype=dtype) for k, v in g.items()}, state, jax_params)
        jax_params = {k: jax_params[k] + updates[k] for k in jax_params}
    results = {
        "torch": ({k: p.detach().double().numpy() for k, p in torch_params.items()},
                  {k: opt.state[p]["momentum_buffer"].double().numpy() for k, p in torch_params.items()}),
        "jax": ({k: np.asarray(v, np.float64) for k, v in jax_params.items()},
                {k: np.asarray(v, np.float64) for k, v in state[0].momentum.items()}),
    }
    for name, (p, m) in results.items():
        assert all(np.all(np.isfinite(v)) for v in p.values()), name
        assert max_rel_err(p, oracle_params, params) <= tol, name
        assert max_rel_err(m, oracle_momentum) <= tol, name
    expected = {"square": 1, "vector": 1, "wide": 1, "scalar": 1, "stack3d": 1, "tall": 0}
    assert {k: int(opt.state[p]["nonfinite_steps"]) for k, p in torch_params.items()} == expected
    assert {k: int(v) for k, v in state[0].nonfinite_steps.items()} == expected


def test_nonfinite_step_changes_nothing() -> None:
    """A step whose every gradient is NaN leaves params and momentum bit-identical."""
    params, grads = make_params(), make_grads(steps=3)
    config = dict(method="ns", eps=1e-8, beta=0.9, weight_decay=0.1, rms_scale=True, clip_grad_norm=None)
    before = run_torch(config, params, grads, np.float32)
    nan_grads = [*grads, {k: np.full_like(v, np.nan) for k, v in grads[0].items()}]
    after = run_torch(config, params, nan_grads, np.float32)
    for a, b in zip(before, after, strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    jbefore = run_jax(config, params, grads, np.float32)
    jafter = run_jax(config, params, nan_grads, np.float32)
    for a, b in zip(jbefore, jafter, strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_optimizer_at_extreme_gradient_scales(scale: float) -> None:
    """Gradients at 1e-30 and 1e30 in float32: every param stays finite and within 5 steps of size 5 lr."""
    params = make_params()
    grads = [{k: scale * v for k, v in g.items()} for g in make_grads(steps=5)]
    config = dict(method="ns", eps=1e-8, beta=0.9, weight_decay=0.0, rms_scale=True, clip_grad_norm=1.0)
    for p, _ in (run_torch(config, params, grads, np.float32), run_jax(config, params, grads, np.float32)):
        for k in SHAPES:
            assert np.all(np.isfinite(p[k]))
            assert np.max(np.abs(p[k] - params[k])) <= 5 * LR * 5



def test_hand_composed_chain_keeps_a_nonfinite_leaf_with_zero_nonfinite_updates() -> None:
    """``scale_by_muon`` composed by hand gets ``muon``'s NaN promise only with
    ``zero_nonfinite_updates`` last (as its docstring says); without it the leaf becomes NaN."""
    params = {"w": jnp.ones((3, 3)), "b": jnp.ones(3)}
    grads = {"w": jnp.full((3, 3), 0.5), "b": jnp.array([1.0, jnp.nan, 0.0])}

    def chain(last: list[Any]) -> Any:
        return optax.chain(muon_jax.scale_by_muon(), optax.add_decayed_weights(0.01),
                           optax.scale_by_learning_rate(0.02), *last)

    for tx, guarded in ((muon_jax.muon(0.02), True), (chain([muon_jax.zero_nonfinite_updates()]), True),
                        (chain([]), False)):
        state = tx.init(params)
        updates, state = tx.update(grads, state, params)
        new = optax.apply_updates(params, updates)
        assert bool(jnp.all(jnp.isfinite(new["w"]))) and not bool(jnp.all(new["w"] == params["w"]))
        if guarded:
            np.testing.assert_array_equal(new["b"], params["b"])
        else:
            assert not bool(jnp.all(jnp.isfinite(new["b"])))
    reference = muon_jax.muon(0.02)
    hand = chain([muon_jax.zero_nonfinite_updates()])
    a, _ = reference.update(grads, reference.init(params), params)
    b, _ = hand.update(grads, hand.init(params), params)
    chex.assert_trees_all_close(a, b, rtol=0, atol=0)


ADAMW_NAMES = ("vector", "scalar", "stack3d", "square")  # "square": a matrix sent to AdamW by name


@pytest.mark.parametrize("dtype,eps,tol", DTYPES, ids=["float64", "float32"])
def test_nonfinite_gradients_skip_adamw_parameters_of_the_hybrid(dtype: Any, eps: float, tol: float) -> None:
    """The promise covers the hybrid's AdamW part: such a parameter keeps its value and both
    moments, counted, while the step count goes on (optax's shared count; torch matches it).
    Tolerances as in test_parity_grid.py."""
    config = dict(method="polar_express", eps=eps, beta=0.9, weight_decay=0.1, rms_scale=True, clip_grad_norm=None)
    params, grads = make_params(), _nonfinite_grads()  # NaN/Inf in square, vector, wide, scalar, stack3d
    grads[7]["square"][1, 1] = -np.inf
    adamw_hyper = (0.01, 0.9, 0.95)
    oracle_params, _ = run_oracle(config, params, grads, adamw=ADAMW_NAMES, adamw_hyper=adamw_hyper)
    expected = {"square": 2, "vector": 1, "wide": 1, "scalar": 1, "stack3d": 1, "tall": 0}

    tdtype = getattr(torch, np.dtype(dtype).name)
    tp = {k: torch.nn.Parameter(torch.tensor(v, dtype=tdtype)) for k, v in params.items()}
    opt = muon_torch.Muon([
        {"params": [tp[k] for k in params if k not in ADAMW_NAMES]},
        {"params": [tp[k] for k in ADAMW_NAMES], "algorithm": "adamw", "lr": 0.01, "betas": (0.9, 0.95)},
    ], lr=LR, **config)
    tx = muon_jax.muon_with_adamw(LR, adamw_lr=0.01, adamw_betas=(0.9, 0.95), adamw=("square",), **config)
    jp = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    state = tx.init(jp)
    update = jax.jit(tx.update)
    for g in grads:
        for k, p in tp.items():
            p.grad = torch.tensor(g[k], dtype=tdtype)
        opt.step()
        updates, state = update({k: jnp.asarray(v, dtype) for k, v in g.items()}, state, jp)
        jp = optax.apply_updates(jp, updates)
    results = {"torch": {k: p.detach().double().numpy() for k, p in tp.items()},
               "jax": {k: np.asarray(v, np.float64) for k, v in jp.items()}}
    for name, p in results.items():
        assert all(np.all(np.isfinite(v)) for v in p.values()), name
        assert max_rel_err(p, oracle_params, params) <= tol, name
    assert {k: int(opt.state[p]["nonfinite_steps"]) for k, p in tp.items()} == expected
    adamw_state = state.inner_states["adamw"].inner_state
    assert isinstance(adamw_state, muon_jax.SkipNonfiniteLeavesState)
    assert {k: int(adamw_state.nonfinite_steps[k]) for k in ADAMW_NAMES} == {k: expected[k] for k in ADAMW_NAMES}
    # Not vacuous: without the guard the AdamW parameters go non-finite.
    plain = muon_jax.muon_with_adamw(LR, adamw_lr=0.01, adamw_betas=(0.9, 0.95), adamw=("square",),
                                     skip_nonfinite_adamw=False, **config)
    p0 = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    updates, _ = jax.jit(plain.update)({k: jnp.asarray(v, dtype) for k, v in grads[5].items()}, plain.init(p0), p0)
    assert not np.all(np.isfinite(np.asarray(updates["vector"])))
