"""A run moved between frameworks continues as if it had never moved.

The reference demo's model (Linear, ReLU, Linear; torch names ``0.weight``..., Flax NNX
names ``layers/0/kernel``...): 10 steps in one twin, ``export_state``, ``remap`` with the
ready mapping (kernels transposed), ``import_state`` into the other twin, 10 more steps;
compared with 20 steps in the second twin alone, from the same start and gradients.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import muon_jax
import muon_torch
from muon_common import invert, remap, sequential_torch_to_flax
from parity_tests.harness import LR, max_rel_err

#: The reference demo's model (Linear, ReLU, Linear): torch names -> Flax NNX names.
REFERENCE_DEMO_TORCH_TO_FLAX = sequential_torch_to_flax([0, 2])
TORCH_SHAPES = {"0.weight": (16, 8), "0.bias": (16,), "2.weight": (4, 16), "2.bias": (4,)}
STEPS = 20


def _inputs() -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    rng = np.random.default_rng(7)
    params = {k: rng.standard_normal(s) for k, s in TORCH_SHAPES.items()}
    grads = [{k: rng.standard_normal(s) for k, s in TORCH_SHAPES.items()} for _ in range(STEPS)]
    return params, grads


def _to_flax(tree: dict[str, np.ndarray]) -> dict[str, Any]:
    """Torch-named arrays -> the Flax NNX params tree ({"layers": {0: {"kernel", "bias"}, ...}})."""
    out: dict[str, Any] = {"layers": {}}
    for name, (target, transpose) in ((n, t if isinstance(t, tuple) else (t, False))
                                      for n, t in REFERENCE_DEMO_TORCH_TO_FLAX.items()):
        _, index, leaf = target.split("/")
        out["layers"].setdefault(int(index), {})[leaf] = tree[name].T if transpose else tree[name]
    return out


def _from_flax(tree: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for name, target in REFERENCE_DEMO_TORCH_TO_FLAX.items():
        target_name, transpose = target if isinstance(target, tuple) else (target, False)
        _, index, leaf = target_name.split("/")
        value = np.asarray(tree["layers"][int(index)][leaf], np.float64)
        out[name] = value.T if transpose else value
    return out


class TorchRun:
    def __init__(self, params: dict[str, np.ndarray], dtype: torch.dtype, config: dict[str, Any]) -> None:
        self.params = {k: torch.nn.Parameter(torch.tensor(v, dtype=dtype)) for k, v in params.items()}
        self.opt = muon_torch.Muon(list(self.params.values()), lr=LR, **config)

    def step(self, grads: dict[str, np.ndarray]) -> None:
        for k, p in self.params.items():
            p.grad = torch.tensor(grads[k], dtype=p.dtype)
        self.opt.step()

    def numpy(self) -> dict[str, np.ndarray]:
        return {k: p.detach().double().numpy() for k, p in self.params.items()}


@functools.cache
def _transformation(config: tuple[tuple[str, Any], ...]) -> tuple[optax.GradientTransformation, Any]:
    """``muon_jax.muon`` with ``config`` and its jitted step, shared by every :class:`JaxRun` of the
    configuration (a test runs three or four of them: compiled once, not once each)."""
    tx = muon_jax.muon(LR, **dict(config))

    def update(params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return tx, jax.jit(update)


class JaxRun:
    def __init__(self, params: dict[str, np.ndarray], dtype: Any, config: dict[str, Any]) -> None:
        self.dtype = dtype
        self.params = jax.tree.map(lambda v: jnp.asarray(v, dtype), _to_flax(params))
        self.tx, self._step = _transformation(tuple(sorted(config.items())))
        self.state = self.tx.init(self.params)

    def step(self, grads: dict[str, np.ndarray]) -> None:
        g = jax.tree.map(lambda v: jnp.asarray(v, self.dtype), _to_flax(grads))
        self.params, self.state = self._step(self.params, self.state, g)

    def numpy(self) -> dict[str, np.ndarray]:
        return _from_flax(self.params)


CONFIG = dict(method="polar_express", weight_decay=0.1, clip_grad_norm=2.0, nesterov=True)
#: The same, with NorMuon: its per-neuron second moments move too ((out, 1) in torch, (1, out) in Flax).
CONFIGS = {"muon": CONFIG, "neuron_norm": {**CONFIG, "neuron_norm": True}}


def _without_second_moments(portable: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: {k: v for k, v in entry.items() if k != "neuron_second_moment"} for name, entry in portable.items()}
# Tolerances: as in test_parity_grid.py (float64 with eps=1e-16, float32 with the default eps).
# The (n+1) eps term of the normalisation counts the columns of each framework's layout, so
# a moved run could differ from a straight one by that term; measured: float64 3.5e-16,
# float32 3.2e-7 (torch -> JAX).
CASES = [pytest.param(np.float64, torch.float64, 1e-16, 1e-12, marks=pytest.mark.x64),  # JAX x64: conftest.py
         (np.float32, torch.float32, 1e-8, 1e-5)]


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("np_dtype,torch_dtype,eps,tol", CASES, ids=["float64", "float32"])
def test_torch_to_jax(np_dtype: Any, torch_dtype: torch.dtype, eps: float, tol: float, name: str) -> None:
    params, grads = _inputs()
    config = {**CONFIGS[name], "eps": eps}
    straight = JaxRun(params, np_dtype, config)
    for g in grads:
        straight.step(g)

    first = TorchRun(params, torch_dtype, config)
    for g in grads[:10]:
        first.step(g)
    portable = remap(muon_torch.export_state(first.opt, first.params.items()), REFERENCE_DEMO_TORCH_TO_FLAX)
    moved = JaxRun(first.numpy(), np_dtype, config)
    moved.state = muon_jax.import_state(moved.state, portable)
    for g in grads[10:]:
        moved.step(g)
    assert max_rel_err(moved.numpy(), straight.numpy(), params) <= tol
    # Not vacuous: continuing without the moved state ends elsewhere.
    fresh = JaxRun(first.numpy(), np_dtype, config)
    for g in grads[10:]:
        fresh.step(g)
    assert max_rel_err(fresh.numpy(), straight.numpy(), params) > 1e3 * tol
    if name == "neuron_norm":  # ... and so does continuing with the momentum but not the second moments
        assert all("neuron_second_moment" in portable[k] for k in ("layers/0/kernel", "layers/2/kernel"))
        partial = JaxRun(first.numpy(), np_dtype, config)
        partial.state = muon_jax.import_state(partial.state, _without_second_moments(portable))
        for g in grads[10:]:
            partial.step(g)
        assert max_rel_err(partial.numpy(), straight.numpy(), params) > 100 * tol  # measured 2.9e-3


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("np_dtype,torch_dtype,eps,tol", CASES, ids=["float64", "float32"])
def test_jax_to_torch(np_dtype: Any, torch_dtype: torch.dtype, eps: float, tol: float, name: str) -> None:
    params, grads = _inputs()
    config = {**CONFIGS[name], "eps": eps}
    straight = TorchRun(params, torch_dtype, config)
    for g in grads:
        straight.step(g)

    first = JaxRun(params, np_dtype, config)
    for g in grads[:10]:
        first.step(g)
    portable = remap(muon_jax.export_state(first.state), invert(REFERENCE_DEMO_TORCH_TO_FLAX))
    moved = TorchRun(first.numpy(), torch_dtype, config)
    muon_torch.import_state(moved.opt, moved.params.items(), portable)
    for g in grads[10:]:
        moved.step(g)
    assert max_rel_err(moved.numpy(), straight.numpy(), params) <= tol
    assert set(muon_jax.export_state(first.state)) == {"layers/0/kernel", "layers/0/bias", "layers/2/kernel",
                                                       "layers/2/bias"}
    if name == "neuron_norm":
        assert moved.opt.state[moved.params["0.weight"]]["neuron_second_moment"].shape == (16, 1)
        partial = TorchRun(first.numpy(), torch_dtype, config)
        muon_torch.import_state(partial.opt, partial.params.items(), _without_second_moments(portable))
        for g in grads[10:]:
            partial.step(g)
        assert max_rel_err(partial.numpy(), straight.numpy(), params) > 100 * tol  # measured 2.9e-3


def test_import_refuses_a_state_for_other_parameters() -> None:
    params, grads = _inputs()
    run = TorchRun(params, torch.float32, {})
    run.step(grads[0])
    portable = muon_torch.export_state(run.opt, run.params.items())
    with pytest.raises(ValueError, match=re.escape("does not match parameter '0.weight'")):
        bad = {**portable, "0.weight": {**portable["0.weight"], "momentum": portable["0.weight"]["momentum"].T}}
        muon_torch.import_state(run.opt, run.params.items(), bad)
    jrun = JaxRun(params, np.float32, {})
    with pytest.raises(ValueError, match="not parameters under Muon"):
        muon_jax.import_state(jrun.state, portable)  # torch names, not remapped
