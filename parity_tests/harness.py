"""Shared inputs and runners: the same params and gradients through the oracle and both twins."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

import muon_jax
import muon_torch
from parity_tests.oracle import OracleMuon

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` by path (``examples`` is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

#: One parameter of every shape kind the reference distinguishes.
SHAPES: dict[str, tuple[int, ...]] = {
    "square": (12, 12),
    "tall": (20, 8),
    "wide": (8, 20),
    "vector": (7,),
    "scalar": (),
    "stack3d": (3, 4, 5),
}
STEPS = 50
LR = 0.02
#: "active" is below the momentum norm of every matrix from the first step on
#: (||0.1 g||_F >= 0.9 for these shapes), "inactive" is far above any momentum norm.
CLIPS: dict[str, float | None] = {"off": None, "active": 0.3, "inactive": 1e3}


def make_params(seed: int = 0, shapes: dict[str, tuple[int, ...]] = SHAPES) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s) for k, s in shapes.items()}


def make_grads(seed: int = 1, steps: int = STEPS,
               shapes: dict[str, tuple[int, ...]] = SHAPES) -> list[dict[str, np.ndarray]]:
    """Gradient sequence: a fixed direction plus noise, so momentum does not average out."""
    rng = np.random.default_rng(seed)
    drift = {k: rng.standard_normal(s) for k, s in shapes.items()}
    return [{k: 0.5 * drift[k] + rng.standard_normal(s) for k, s in shapes.items()} for _ in range(steps)]


def grid() -> Iterator[dict[str, Any]]:
    """Every combination the parity suite covers."""
    for method, rms_scale, clip, wd, beta in itertools.product(
        ("ns", "svd"), (True, False), CLIPS, (0.0, 0.1), (0.0, 0.9)
    ):
        yield dict(method=method, rms_scale=rms_scale, clip_grad_norm=CLIPS[clip], weight_decay=wd, beta=beta,
                   _id=f"{method}-rms{int(rms_scale)}-clip_{clip}-wd{wd}-beta{beta}")


def hyper(config: dict[str, Any]) -> dict[str, Any]:
    """The optimizer's keyword arguments in ``config`` (``_id`` and oracle-only keys dropped)."""
    return {k: v for k, v in config.items() if not k.startswith("_") and k != "matrix_axes"}


Result = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]  # params, momentum


def run_oracle(config: dict[str, Any], params: dict[str, np.ndarray],
               grads: list[dict[str, np.ndarray]], **oracle_only: Any) -> Result:
    """The oracle in float64; it has no ``orthogonalize_dtype`` (always exact arithmetic)."""
    p = {k: v.astype(np.float64).copy() for k, v in params.items()}
    kwargs = {k: v for k, v in hyper(config).items() if k != "orthogonalize_dtype"}
    opt = OracleMuon(lr=LR, matrix_axes=config.get("matrix_axes", {}), **kwargs, **oracle_only)
    for g in grads:
        opt.step(p, g)
    return p, opt.momentum


def run_torch(config: dict[str, Any], params: dict[str, np.ndarray], grads: list[dict[str, np.ndarray]],
              dtype: np.dtype, make_optimizer: Callable[..., torch.optim.Optimizer] | None = None) -> Result:
    tdtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(dtype)]
    p = {k: torch.nn.Parameter(torch.tensor(v, dtype=tdtype)) for k, v in params.items()}
    make = make_optimizer or (lambda ps, **kw: muon_torch.Muon(ps, lr=LR, **kw))
    opt = make(list(p.values()), **hyper(config))
    for g in grads:
        for k, t in p.items():
            t.grad = torch.tensor(g[k], dtype=tdtype)
        opt.step()
    momentum = {k: opt.state[t]["momentum_buffer"].double().numpy() for k, t in p.items()
                if "momentum_buffer" in opt.state[t]}
    return {k: t.detach().double().numpy() for k, t in p.items()}, momentum


#: Hyperparameters that :func:`run_jax` with ``injected`` passes in the state (any number;
#: ``clip_grad_norm=None`` and the rest stay static, the weight decay too: 0 leaves its term
#: out of the chain).
INJECTED = ("beta", "eps", "clip_grad_norm")


#: Jitted steps of ``optax.inject_hyperparams(muon_jax.muon)``, one per set of static arguments.
_INJECTED_STEPS: dict[Any, Callable[..., Any]] = {}


def run_jax(config: dict[str, Any], params: dict[str, np.ndarray], grads: list[dict[str, np.ndarray]],
            dtype: np.dtype, tx: optax.GradientTransformation | None = None, jit: bool = True,
            flax_layout: bool = False, injected: bool = False) -> Result:
    """Run ``muon_jax.muon`` (or ``tx``); with ``flax_layout`` 2-D params live transposed,
    as Flax ``(in, out)`` kernels of torch ``(out, in)`` weights, and come back in torch layout.

    With ``injected``, ``muon_jax.muon`` runs under ``optax.inject_hyperparams`` with the
    :data:`INJECTED` hyperparameters in its state (jitted): the same function of traced values,
    compiled once for every config that differs only in them.
    """
    kwargs = hyper(config)
    if injected and tx is not None:
        raise ValueError("run_jax: pass tx or injected=True, not both (injected builds its own transformation)")
    if injected:
        numeric = tuple(k for k in INJECTED if kwargs.get(k) is not None)
        static = tuple(sorted((k, v) for k, v in kwargs.items() if k not in numeric))
        tx = optax.inject_hyperparams(muon_jax.muon, static_args=tuple(k for k, _ in static))(
            learning_rate=LR, **kwargs)
    tx = tx or muon_jax.muon(LR, **kwargs)

    def layout(tree: dict[str, Any]) -> dict[str, Any]:
        return {k: (v.T if flax_layout and v.ndim == 2 else v) for k, v in tree.items()}

    p = {k: jnp.asarray(v, dtype=dtype) for k, v in layout(params).items()}
    state = tx.init(p)

    def step(p: Any, state: Any, g: Any) -> tuple[Any, Any]:
        updates, state = tx.update(g, state, p)
        return optax.apply_updates(p, updates), state

    step_fn = jax.jit(step) if jit else step
    if injected:
        # The numeric hyperparameters are read from the state: the first config's step serves
        # every config with the same static arguments (one compilation).
        step_fn = _INJECTED_STEPS.setdefault((static, numeric), step_fn)
    for g in grads:
        p, state = step_fn(p, state, {k: jnp.asarray(v, dtype=dtype) for k, v in layout(g).items()})
    states = (muon_jax.ScaleByMuonState, muon_jax.ScaleByNorMuonState)
    momenta = [s.momentum for s in jax.tree.leaves(state, is_leaf=lambda s: isinstance(s, states))
               if isinstance(s, states)]
    momentum = {k: v for k, v in momenta[0].items() if not isinstance(v, optax.MaskedNode)}
    as_numpy = lambda tree: {k: np.asarray(v, dtype=np.float64) for k, v in layout(tree).items()}  # noqa: E731
    return as_numpy(p), as_numpy(momentum)


def max_rel_err(a: dict[str, np.ndarray], b: dict[str, np.ndarray],
                scale_from: dict[str, np.ndarray] | None = None) -> float:
    """Largest per-tensor ``max|a - b| / scale`` over the dict.

    ``scale`` is ``max|b|``, or the larger of that and ``max|scale_from|`` (the
    initial params): a parameter that ends near zero after travelling from O(1)
    carries the absolute rounding error of its whole trajectory.
    """
    worst = 0.0
    for k in b:
        scale = float(np.max(np.abs(b[k]), initial=0.0))
        if scale_from is not None:
            scale = max(scale, float(np.max(np.abs(scale_from[k]), initial=0.0)))
        diff = float(np.max(np.abs(np.asarray(a[k], np.float64) - b[k]), initial=0.0))
        worst = max(worst, diff / max(scale, 1e-30))
    return worst
