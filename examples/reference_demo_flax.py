"""The reference Muon demo in Flax NNX, twin of ``reference_demo_torch.py``.

Same model (kernels in Flax layout ``(in, out)``, i.e. the shared torch weights
transposed), same data, ``muon_jax.muon`` with the same hyperparameters and a
jitted train step. Run ``python examples/reference_demo_flax.py [--dtype float32|float64]``;
``float64`` turns ``jax_enable_x64`` on (and ``float32`` off) for the duration of the run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax import Array

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_demo_data import HIDDEN, IN_FEATURES, OUT_FEATURES, make_demo

import muon_jax
from muon_common import DEFAULTS

__all__ = ["build_model", "main"]

_DTYPES = {"float32": np.float32, "float64": np.float64}


def build_model(seed: int = 0, dtype: type[np.floating] = np.float32) -> tuple[nnx.Sequential, Array, Array]:
    """The demo's model, set to the shared initial weights, and its batch ``(x, y)``.

    For float64, call it with ``jax_enable_x64`` on (``main`` does).
    """
    data = make_demo(seed, dtype)
    rngs = nnx.Rngs(seed)
    first = nnx.Linear(IN_FEATURES, HIDDEN, dtype=dtype, param_dtype=dtype, rngs=rngs)
    last = nnx.Linear(HIDDEN, OUT_FEATURES, dtype=dtype, param_dtype=dtype, rngs=rngs)
    first.kernel[...] = jnp.asarray(data.w1.T)  # torch (out, in) -> Flax (in, out)
    first.bias[...] = jnp.asarray(data.b1)
    last.kernel[...] = jnp.asarray(data.w2.T)
    last.bias[...] = jnp.asarray(data.b2)
    for p in (first.kernel, first.bias, last.kernel, last.bias):
        assert p[...].dtype == dtype, (p[...].dtype, dtype)
    return nnx.Sequential(first, nnx.relu, last), jnp.asarray(data.x), jnp.asarray(data.y)


def _loss_fn(model: nnx.Sequential, x: Array, y: Array) -> Array:
    return jnp.mean(jnp.square(model(x) - y))  # nn.MSELoss(): mean over all elements


@nnx.jit
def _train_step(model: nnx.Sequential, optimizer: nnx.Optimizer, x: Array, y: Array) -> Array:
    loss, grads = nnx.value_and_grad(_loss_fn)(model, x, y)
    optimizer.update(model, grads)
    return loss


def main(
    steps: int = 200,
    dtype: type[np.floating] = np.float32,
    *,
    seed: int = 0,
    eps: float = DEFAULTS["eps"],
    log_every: int = 20,
) -> list[float]:
    """Train the demo for ``steps`` steps; return the loss of every step (before its update).

    ``eps`` is Muon's stabiliser (the demo uses the default); ``log_every=0`` silences the printing.
    """
    # x64 on for float64 and off for float32, whatever the caller's setting, restored on exit.
    with jax.enable_x64(np.dtype(dtype) == np.float64):
        model, x, y = build_model(seed, dtype)
        tx = optax.chain(
            muon_jax.muon(learning_rate=3e-4, beta=0.9, weight_decay=0.02, ns_iters=5, method="ns", eps=eps)
        )
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        losses: list[float] = []
        for step in range(steps):
            loss = float(_train_step(model, optimizer, x, y))
            losses.append(loss)
            if log_every and (step + 1) % log_every == 0:
                print(f"step {step + 1:03d} | loss = {loss:.4f}")
    return losses


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=sorted(_DTYPES), default="float32")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    main(steps=args.steps, dtype=_DTYPES[args.dtype])
