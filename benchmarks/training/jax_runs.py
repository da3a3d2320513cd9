"""The JAX half of the training benchmark: transformations by config key, and jitted whole-run loops.

A run (every step and every loss measurement) is one jitted ``lax.scan``, compiled once per
config: the learning rate, the initial params and the batch indices are its arguments.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
from charlm_flax import build_charlm, matrix_axes
from common import Task
from data import CharLMConfig, Digits, Text, batch_indices, eval_windows, window_starts
from digits_flax import MLP
from flax import nnx
from jax import Array

import muon_jax

__all__ = ["JaxTask", "make_tx"]

_HYBRID = ("embed", "head")
_BETAS = (0.9, 0.95)  # the AdamW part of the hybrids that follow the recommendation
Params = Any


def _path_name(path: tuple[Any, ...]) -> str:
    return "/".join(str(getattr(k, "key", k)) for k in path)


def _optax_dims(hybrid: bool) -> Callable[[Params], Any]:
    """``optax.contrib.muon``'s ``muon_weight_dimension_numbers``: stacked ``(layers, in, out)`` kernels
    and 2-D leaves are matrices; with ``hybrid`` the embeddings and the head go to its Adam."""
    dims = optax.contrib.MuonDimensionNumbers

    def spec(path: tuple[Any, ...], p: Array) -> Any:
        if hybrid and any(n in _path_name(path) for n in _HYBRID):
            return None
        return {3: dims(1, 2), 2: dims(0, 1)}.get(p.ndim)

    return lambda params: jax.tree_util.tree_map_with_path(spec, params)


def make_tx(key: str, learning_rate: optax.Schedule, stacked: bool) -> optax.GradientTransformation:
    """The transformation of config ``key`` (see ``common.CONFIGS``); ``stacked``: the char model's params."""
    axes = matrix_axes if stacked else None
    ours: dict[str, dict[str, Any]] = {
        "ns": {}, "svd": {"method": "svd"}, "quintic": {"method": "quintic"},
        "polar_express": {"method": "polar_express"},
    }
    hybrid = {"nesterov": True, "adjust_lr": "match_rms_adamw", "matrix_axes": axes, "adamw_betas": _BETAS}
    if key in ours:
        return muon_jax.muon(learning_rate, matrix_axes=axes, **ours[key])
    if key == "pe_nesterov_rms":
        return muon_jax.muon_with_adamw(learning_rate, method="polar_express", **hybrid)
    if key in ("recommended", "quintic_hybrid"):
        method = "polar_express" if key == "recommended" else "quintic"
        return muon_jax.muon_with_adamw(learning_rate, adamw=_HYBRID, method=method, **hybrid)
    if key == "adamw":
        return optax.adamw(learning_rate, weight_decay=0.01)
    if key == "optax_muon":
        return optax.contrib.muon(learning_rate, muon_weight_dimension_numbers=_optax_dims(False))
    if key == "optax_muon_hybrid":
        return optax.contrib.muon(learning_rate, consistent_rms=0.2, adam_b2=_BETAS[1],
                                  muon_weight_dimension_numbers=_optax_dims(True))
    raise KeyError(f"no JAX transformation for config {key!r}")


class JaxTask:
    """A task's model, data and batches in JAX; ``run`` trains one config at several lrs and seeds."""

    def __init__(self, task: Task, data: Digits | Text) -> None:
        self.task = task
        self._batch_loss: Callable[[Params, Array], Array]
        self._eval_loss: Callable[[Params], Array]
        self._init: Callable[[int], Params]
        self._batches: Callable[[int], Array]
        model: nnx.Module
        if isinstance(data, Digits):
            x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
            model = MLP(0)
            self._init = lambda seed: nnx.to_pure_dict(nnx.state(MLP(seed)))
            self._batches = lambda seed: jnp.asarray(batch_indices(len(data.y_train), 128, task.steps, seed))
            self._batch_loss = lambda params, idx: self._ce(params, x[idx], y[idx])
            self._eval_loss = lambda params: self._ce(params, x, y)
        else:
            config = CharLMConfig(vocab=len(data.vocab))
            tokens = jnp.asarray(data.tokens)
            offsets = jnp.arange(config.context + 1)
            eval_x, eval_y = (jnp.asarray(a) for a in eval_windows(data.tokens, config.context))
            model = build_charlm(config, 0)
            self._init = lambda seed: nnx.to_pure_dict(nnx.state(build_charlm(config, seed)))
            self._batches = lambda seed: jnp.asarray(
                window_starts(len(data.tokens), config.context, (task.steps, 32), seed))

            def window_loss(params: Params, starts: Array) -> Array:
                window = tokens[starts[:, None] + offsets]
                return self._ce(params, window[:, :-1], window[:, 1:])

            self._batch_loss = window_loss
            self._eval_loss = lambda params: self._ce(params, eval_x, eval_y)
        self._graphdef, _ = nnx.split(model)

    def _ce(self, params: Params, x: Array, y: Array) -> Array:
        logits = nnx.merge(self._graphdef, params)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def _step_fn(self, key: str) -> Callable[..., Any]:
        def step(carry: tuple[Params, Any, Array], batch: Array) -> tuple[tuple[Params, Any, Array], None]:
            params, state, lr = carry
            tx = make_tx(key, lambda _: lr, self.task.key == "charlm")
            grads = jax.grad(self._batch_loss)(params, batch)
            updates, state = tx.update(grads, state, params)
            return (optax.apply_updates(params, updates), state, lr), None

        return step

    def _init_state(self, key: str, params: Params, lr: Array) -> Any:
        return make_tx(key, lambda _: lr, self.task.key == "charlm").init(params)

    def run(self, key: str, lrs: tuple[float, ...], seeds: tuple[int, ...],
            progress: Callable[[], None] = lambda: None) -> dict[tuple[float, int], tuple[list[float], float]]:
        """Train ``key`` at every ``(lr, seed)``: the losses at ``task.eval_steps`` and the ms per step."""
        task, step = self.task, self._step_fn(key)
        chunks, k = task.steps // task.eval_every, task.eval_every

        @jax.jit
        def train(params: Params, batches: Array, lr: Array) -> Array:
            def chunk(carry: Any, batch_chunk: Array) -> tuple[Any, Array]:
                carry, _ = jax.lax.scan(step, carry, batch_chunk)
                return carry, self._eval_loss(carry[0])

            carry = (params, self._init_state(key, params, lr), lr)
            _, losses = jax.lax.scan(chunk, carry, batches.reshape(chunks, k, *batches.shape[1:]))
            return jnp.concatenate([self._eval_loss(params)[None], losses])

        ms = self._time_step(key, step, lrs[len(lrs) // 2], seeds[0])
        out = {}
        for seed in seeds:
            params, batches = self._init(seed), self._batches(seed)
            for lr in lrs:
                losses = train(params, batches, jnp.float32(lr))
                out[(lr, seed)] = (np.asarray(losses, dtype=np.float64).tolist(), ms)
                progress()
        return out

    def _time_step(self, key: str, step: Callable[..., Any], lr: float, seed: int, n: int = 20) -> float:
        """ms per training step (forward, backward, update): a jitted step, timed over ``n`` calls after warm-up."""
        params, batches = self._init(seed), self._batches(seed)
        lr_ = jnp.float32(lr)
        carry = (params, self._init_state(key, params, lr_), lr_)
        jitted = jax.jit(step)
        for i in range(2):
            carry, _ = jitted(carry, batches[i])
        jax.block_until_ready(carry)
        start = time.perf_counter()
        for i in range(n):
            carry, _ = jitted(carry, batches[i % len(batches)])
        jax.block_until_ready(carry)
        return 1e3 * (time.perf_counter() - start) / n
