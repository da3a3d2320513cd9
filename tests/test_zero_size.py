"""Zero-size parameters step as no-ops in both twins, alone and beside others, as in AdamW."""

from __future__ import annotations

import copy
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

EMPTY_SHAPES = [(0, 5), (5, 0), (0,), (2, 0, 3)]
OPTIONS: list[dict[str, Any]] = [{}, {"clip_grad_norm": 0.5, "method": "polar_express", "nesterov": True}]


def _others() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"w": rng.standard_normal((3, 5)), "v": rng.standard_normal(4)}


@pytest.mark.parametrize("options", OPTIONS, ids=["defaults", "options"])
@pytest.mark.parametrize("shape", EMPTY_SHAPES)
def test_torch_zero_size_is_a_no_op(shape: tuple[int, ...], options: dict[str, Any]) -> None:
    others = _others()
    with_empty = [torch.nn.Parameter(torch.zeros(shape, dtype=torch.float64))] + [
        torch.nn.Parameter(torch.tensor(a)) for a in others.values()]
    without = [torch.nn.Parameter(torch.tensor(a)) for a in others.values()]
    opt_a = muon_torch.Muon(with_empty, lr=0.1, **options)
    opt_b = muon_torch.Muon(without, lr=0.1, **options)
    for step in range(3):
        with_empty[0].grad = torch.zeros(shape, dtype=torch.float64)
        for a, b in zip(with_empty[1:], without, strict=True):
            a.grad = b.grad = torch.full_like(b, 0.1 * (step + 1)) + b.detach()
        opt_a.step()
        opt_b.step()
    assert with_empty[0].shape == shape
    for a, b in zip(with_empty[1:], without, strict=True):
        assert torch.equal(a, b)  # the others step exactly as without the empty one
    # ... and the state round-trips.
    resumed = muon_torch.Muon(with_empty, lr=0.1, **options)
    resumed.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    resumed.step()
    assert resumed.state[with_empty[0]]["momentum_buffer"].shape == shape


def test_torch_zero_size_in_a_stack_and_in_the_adamw_part() -> None:
    stack = torch.nn.Parameter(torch.zeros(0, 4, 4))
    bias = torch.nn.Parameter(torch.zeros(0))
    w = torch.nn.Parameter(torch.ones(2, 4, 4))  # a stack beside the empty one
    opt = muon_torch.Muon([{"params": [stack, w], "matrix_axes": MatrixAxes(rows=1, cols=2)},
                           {"params": [bias], "algorithm": "adamw"}], lr=0.1)
    for p in (stack, bias, w):
        p.grad = torch.ones_like(p)
    opt.step()
    assert torch.isfinite(w).all() and not torch.equal(w, torch.ones_like(w))
    assert stack.shape == (0, 4, 4) and bias.shape == (0,)


@pytest.mark.parametrize("options", OPTIONS, ids=["defaults", "options"])
@pytest.mark.parametrize("shape", EMPTY_SHAPES)
def test_jax_zero_size_is_a_no_op(shape: tuple[int, ...], options: dict[str, Any]) -> None:
    others = {k: jnp.asarray(a) for k, a in _others().items()}
    tx = muon_jax.muon(0.1, **options)
    params_a: Any = {"empty": jnp.zeros(shape), **others}
    params_b: Any = dict(others)
    state_a, state_b = tx.init(params_a), tx.init(params_b)
    update = jax.jit(tx.update)
    for step in range(3):
        grads_b = jax.tree.map(lambda p, s=step: p + 0.1 * (s + 1), params_b)
        updates_a, state_a = update({"empty": jnp.zeros(shape), **grads_b}, state_a, params_a)
        updates_b, state_b = update(grads_b, state_b, params_b)
        params_a, params_b = optax.apply_updates(params_a, updates_a), optax.apply_updates(params_b, updates_b)
    assert params_a["empty"].shape == shape
    for key in others:
        np.testing.assert_array_equal(params_a[key], params_b[key])


def test_jax_zero_size_in_a_stack_and_in_the_adamw_part() -> None:
    params = {"stack": jnp.zeros((0, 4, 4)), "bias": jnp.zeros(0), "w": jnp.ones((4, 4))}
    axes = {"stack": MatrixAxes(rows=1, cols=2), "bias": None, "w": MatrixAxes(rows=0, cols=1)}
    tx = muon_jax.muon_with_adamw(0.1, matrix_axes=axes)
    state = tx.init(params)
    updates, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
    assert bool(jnp.all(jnp.isfinite(updates["w"]))) and updates["stack"].shape == (0, 4, 4)
