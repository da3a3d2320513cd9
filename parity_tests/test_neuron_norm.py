"""NorMuon (``neuron_norm=True``): both twins against the oracle, on every layout, with its state.

The neuron is the fan-out unit of each framework's layout: a row of a torch ``(out, in)``
weight, a column of a Flax ``(in, out)`` kernel. So JAX gets every matrix transposed here
(``MatrixAxes(rows=<torch cols>, cols=<torch rows>)``), and its per-neuron second moment then
has the torch moment's shape: the two and the oracle's are compared directly.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import muon_jax
import muon_torch
from muon_common import MatrixAxes
from parity_tests.harness import LR, make_grads, make_params, max_rel_err
from parity_tests.oracle import OracleMuon

# name -> (torch shape, torch axes)
LAYOUT: dict[str, tuple[tuple[int, ...], MatrixAxes]] = {
    "dense": ((7, 5), MatrixAxes(rows=0, cols=1)),
    "wide": ((4, 9), MatrixAxes(rows=0, cols=1)),
    "stack": ((3, 6, 10), MatrixAxes(rows=1, cols=2)),
    "conv": ((8, 3, 3, 3), MatrixAxes(rows=0, cols=(1, 2, 3))),
    "middle_batch": ((6, 2, 5), MatrixAxes(rows=0, cols=2)),
}
SHAPES = {**{k: s for k, (s, _) in LAYOUT.items()}, "bias": (7,)}
STEPS = 30
CONFIG: dict[str, Any] = dict(method="polar_express", nesterov=True, weight_decay=0.1, neuron_norm=True,
                              neuron_beta2=0.9, clip_grad_norm=None, rms_scale=True, beta=0.9)


def _axes(a: int | tuple[int, ...], ndim: int) -> tuple[int, ...]:
    return tuple(x % ndim for x in ((a,) if isinstance(a, int) else a))


def _inputs(nonfinite: bool) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    params, grads = make_params(seed=4, shapes=SHAPES), make_grads(seed=5, steps=STEPS, shapes=SHAPES)
    if nonfinite:  # one matrix and one slice-stack sit a step out each; their moments must stay put
        grads[7]["dense"][2, 3] = np.nan
        grads[12]["stack"][0, 0, 0] = np.inf
    return params, grads


def _oracle(params: dict[str, np.ndarray], grads: list[dict[str, np.ndarray]], eps: float) -> OracleMuon:
    axes = {k: (_axes(a.rows, len(s)), _axes(a.cols, len(s))) for k, (s, a) in LAYOUT.items()}
    opt = OracleMuon(lr=LR, eps=eps, matrix_axes=axes, **CONFIG)
    p = {k: v.copy() for k, v in params.items()}
    for g in grads:
        opt.step(p, g)
    opt.params = p  # type: ignore[attr-defined]
    return opt


def _torch(params: dict[str, np.ndarray], grads: list[dict[str, np.ndarray]], dtype: torch.dtype,
           eps: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, int]]:
    p = {k: torch.nn.Parameter(torch.tensor(v, dtype=dtype)) for k, v in params.items()}
    groups = [{"params": [p[k]], "matrix_axes": LAYOUT[k][1] if k in LAYOUT else None} for k in SHAPES]
    opt = muon_torch.Muon(groups, lr=LR, eps=eps, **CONFIG)
    for g in grads:
        for k, t in p.items():
            t.grad = torch.tensor(g[k], dtype=dtype)
        opt.step()
    moments = {k: opt.state[t]["neuron_second_moment"].double().numpy() for k, t in p.items() if k in LAYOUT}
    skipped = {k: int(opt.state[t]["nonfinite_steps"]) for k, t in p.items()}
    return {k: t.detach().double().numpy() for k, t in p.items()}, moments, skipped


def _jax(params: dict[str, np.ndarray], grads: list[dict[str, np.ndarray]], dtype: Any,
         eps: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, int]]:
    # The same arrays, with each matrix's rows and columns swapped: JAX's fan-in is torch's columns.
    axes = {k: MatrixAxes(rows=a.cols, cols=a.rows) if k in LAYOUT else None
            for k, (_, a) in ((k, LAYOUT.get(k, ((), MatrixAxes()))) for k in SHAPES)}
    tx = muon_jax.muon(LR, eps=eps, matrix_axes=axes, **CONFIG)
    p = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    state = tx.init(p)

    @jax.jit
    def step(p: Any, state: Any, g: Any) -> tuple[Any, Any]:
        updates, state = tx.update(g, state, p)
        return optax.apply_updates(p, updates), state

    for g in grads:
        p, state = step(p, state, {k: jnp.asarray(v, dtype) for k, v in g.items()})
    muon_state = state[0]
    assert isinstance(muon_state, muon_jax.ScaleByNorMuonState)
    assert isinstance(muon_state.neuron_second_moment["bias"], optax.MaskedNode)
    moments = {k: np.asarray(muon_state.neuron_second_moment[k], np.float64) for k in LAYOUT}
    skipped = {k: int(v) for k, v in muon_state.nonfinite_steps.items()}
    return {k: np.asarray(v, np.float64) for k, v in p.items()}, moments, skipped


# Tolerances as in test_parity_grid.py: float64 with eps=1e-16 (the (n+1) eps term of the
# normalisation counts each layout's columns), float32 at the default eps. Measured worst:
# float64 1.1e-15 (params), 4.4e-15 (moments); float32 3.3e-7 (params), 3.2e-6 (moments: the
# mean of squares of an update whose entries are ~1/sqrt(n), rounded through 30 EMA steps).
@pytest.mark.parametrize("nonfinite", [False, True], ids=["finite", "nonfinite"])
@pytest.mark.parametrize("dtype,eps,tol", [pytest.param(np.float64, 1e-16, 1e-12, marks=pytest.mark.x64),
                                           (np.float32, 1e-8, 1e-5)], ids=["float64", "float32"])
def test_neuron_norm_matches_oracle_on_every_layout(dtype: Any, eps: float, tol: float, nonfinite: bool) -> None:
    params, grads = _inputs(nonfinite)
    oracle = _oracle(params, grads, eps)
    results = {"torch": _torch(params, grads, getattr(torch, np.dtype(dtype).name), eps),
               "jax": _jax(params, grads, dtype, eps)}
    expected_skips = {k: int(nonfinite and k in ("dense", "stack")) for k in SHAPES}
    for name, (p, moments, skipped) in results.items():
        assert all(np.all(np.isfinite(v)) for v in p.values()), name
        assert max_rel_err(p, oracle.params, params) <= tol, name  # type: ignore[attr-defined]
        assert max_rel_err(moments, oracle.neuron_second_moment) <= tol, name
        assert skipped == expected_skips, name
    # Not vacuous: without the normalisation the oracle ends far from the twins.
    plain = OracleMuon(lr=LR, eps=eps, matrix_axes=oracle.matrix_axes, **{**CONFIG, "neuron_norm": False})
    p = {k: v.copy() for k, v in params.items()}
    for g in grads:
        plain.step(p, g)
    assert max_rel_err(p, oracle.params, params) > 1e3 * tol  # type: ignore[attr-defined]


def test_neuron_norm_normalises_each_neuron() -> None:
    """One step from zero state: every neuron (torch row) of the update has the same RMS, and the
    update keeps the orthogonalised update's Frobenius norm. (A tall matrix: the polar factor of
    a wide one has orthonormal, so equal, rows already.)"""
    torch.manual_seed(0)
    g = torch.randn(10, 6, dtype=torch.float64) * torch.logspace(-2, 2, 10, dtype=torch.float64)[:, None]
    updates = {}
    for neuron_norm in (False, True):
        w = torch.nn.Parameter(torch.zeros(10, 6, dtype=torch.float64))
        w.grad = g
        muon_torch.Muon([w], lr=1.0, weight_decay=0.0, method="svd", neuron_norm=neuron_norm).step()
        updates[neuron_norm] = -w.detach()
    rms = updates[True].square().mean(dim=1).sqrt()
    torch.testing.assert_close(rms, torch.full_like(rms, float(rms.mean())), rtol=1e-6, atol=0.0)
    torch.testing.assert_close(updates[True].norm(), updates[False].norm(), rtol=1e-12, atol=0.0)
    plain_rms = updates[False].square().mean(dim=1).sqrt()
    assert float(plain_rms.max() / plain_rms.min()) > 1.5  # the SVD's rows were far from equal


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_zero_weight_and_zero_gradient_stay_zero(dtype: str) -> None:
    """A zero direction gives 0 / 0 in the rescaling unless it is guarded (dion's bug)."""
    w = torch.nn.Parameter(torch.zeros(4, 6, dtype=getattr(torch, dtype)))
    opt = muon_torch.Muon([w], lr=0.1, neuron_norm=True)
    tx = muon_jax.muon(0.1, neuron_norm=True)
    p = {"w": jnp.zeros((6, 4), dtype)}
    state = tx.init(p)
    for _ in range(3):
        w.grad = torch.zeros_like(w)
        opt.step()
        updates, state = tx.update({"w": jnp.zeros((6, 4), dtype)}, state, p)
        p = optax.apply_updates(p, updates)
    assert torch.equal(w.detach(), torch.zeros_like(w))
    assert torch.equal(opt.state[w]["neuron_second_moment"], torch.zeros(4, 1, dtype=w.dtype))
    assert np.array_equal(np.asarray(p["w"], np.float32), np.zeros((6, 4), np.float32))
    assert np.array_equal(np.asarray(state[0].neuron_second_moment["w"], np.float32), np.zeros((1, 4), np.float32))


def test_state_without_neuron_norm_is_refused() -> None:
    params = {"w": jnp.ones((3, 4))}
    state = muon_jax.scale_by_muon().init(params)
    with pytest.raises(ValueError, match="no neuron_second_moment"):
        muon_jax.scale_by_muon(neuron_norm=True).update(params, state)
