"""The JAX half of the training benchmark: transformations by config key, and jitted whole-run loops.

A run (every step and every measurement) is one jitted ``lax.scan``, compiled once per config:
the peak learning rate, the initial params and the batch indices are its arguments. Every
transformation follows the warmup–stable–decay shape ``muon_jax.warmup_stable_decay(1.0, T)``
times the (traced) peak lr.
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
from common import VARIANTS, Task
from data import Digits, Text, batch_indices, eval_windows, window_starts
from digits_flax import MLP
from flax import nnx
from jax import Array

import muon_jax
from muon_common import RECIPE

__all__ = ["JaxTask", "check_recommended", "jax_device", "make_tx", "recommended_tx"]

_HYBRID = ("embed", "head")
_BETAS = (0.9, 0.95)  # AdamW's betas in the LM-standard setting and in the tuned peers
Params = Any


def jax_device(device: str) -> Any:
    """The first JAX device of a ``--device`` name (``cpu``, ``cuda``/``gpu``)."""
    return jax.devices("gpu" if device in ("cuda", "gpu") else device)[0]


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


def _wsd(peak: Any, total_steps: int) -> optax.Schedule:
    """``muon_jax.warmup_stable_decay(peak, total_steps)`` for a traced ``peak``: the unit schedule times it."""
    unit = muon_jax.warmup_stable_decay(1.0, total_steps)
    return lambda count: peak * unit(count)


def recommended_tx(peak: Any, total_steps: int, axes: Any, **overrides: Any) -> optax.GradientTransformation:
    """What ``muon_jax.recommended(total_steps, peak, matrix_axes=axes)`` builds, with the schedules of the peers.

    ``recommended`` also takes a traced ``peak`` now, but folds it into ``linear_schedule``; this
    form (the unit schedule times the peak, as every peer here gets it) is the one the published
    numbers were measured with, so it stays. ``check_recommended`` verifies the two agree.
    """
    return muon_jax.muon_with_adamw(
        _wsd(peak, total_steps), adamw_lr=_wsd(peak * RECIPE.adamw_lr_ratio, total_steps),
        adamw_betas=RECIPE.adamw_betas, adamw=RECIPE.adamw, matrix_axes=axes, **{**RECIPE.muon_options(), **overrides})


def check_recommended(params: Params, total_steps: int, axes: Any, lr: float = 0.01, steps: int = 3) -> None:
    """Raise if ``recommended_tx`` and ``muon_jax.recommended`` give different updates (``steps`` of them)."""
    ours, theirs = recommended_tx(lr, total_steps, axes), muon_jax.recommended(total_steps, lr, matrix_axes=axes)
    grads = jax.tree.map(lambda p: jnp.cos(3.0 * p) + 0.1, params)
    state_a, state_b = ours.init(params), theirs.init(params)
    for _ in range(steps):
        ua, state_a = ours.update(grads, state_a, params)
        ub, state_b = theirs.update(grads, state_b, params)
        for a, b in zip(jax.tree.leaves(ua), jax.tree.leaves(ub), strict=True):
            if not np.allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7):
                raise AssertionError("recommended_tx differs from muon_jax.recommended: update the benchmark")


def make_tx(key: str, peak: Any, total_steps: int, stacked: bool) -> optax.GradientTransformation:
    """The transformation of config ``key`` (see ``common.CONFIGS``) at peak lr ``peak`` (may be traced).

    ``stacked``: the transformer's params (block kernels stacked ``(layers, in, out)``).
    """
    axes = matrix_axes if stacked else None
    lr = _wsd(peak, total_steps)
    if key in VARIANTS:
        return recommended_tx(peak, total_steps, axes, **VARIANTS[key])
    if key == "ns":
        return muon_jax.muon(lr, matrix_axes=axes)
    if key == "adamw":
        return optax.adamw(lr, b1=_BETAS[0], b2=_BETAS[1], weight_decay=0.1)
    if key == "adamw_default":
        return optax.adamw(lr, weight_decay=0.01)
    if key == "optax_muon":
        return optax.contrib.muon(lr, muon_weight_dimension_numbers=_optax_dims(False))
    if key == "optax_muon_hybrid":
        return optax.contrib.muon(lr, consistent_rms=0.2, adam_b2=_BETAS[1],
                                  muon_weight_dimension_numbers=_optax_dims(True))
    raise KeyError(f"no JAX transformation for config {key!r}")


class JaxTask:
    """A task's model, data and batches in JAX; ``run`` trains one config at several (lr, seed)."""

    def __init__(self, task: Task, data: Digits | tuple[Text, Text], device: str = "cpu") -> None:
        self.task = task
        self.device = jax_device(device)
        self.stacked = task.model is not None
        self._batch_loss: Callable[[Params, Array], Array]
        self._evaluate: Callable[[Params], Array]  # (held-out loss, train loss, accuracy or NaN)
        self._init: Callable[[int], Params]
        self._batches: Callable[[int], Array]
        self._trainers: dict[str, Callable[..., Array]] = {}
        model: nnx.Module
        with jax.default_device(self.device):
            if isinstance(data, Digits):
                x, y, x_test, y_test = (jnp.asarray(a) for a in data)
                model = MLP(0)
                self._init = lambda seed: nnx.to_pure_dict(nnx.state(MLP(seed)))
                self._batches = lambda seed: jnp.asarray(batch_indices(len(data.y_train), task.batch, task.steps,
                                                                       seed))
                self._batch_loss = lambda params, idx: self._ce(params, x[idx], y[idx])

                def evaluate(params: Params) -> Array:
                    logits = nnx.merge(self._graphdef, params)(x_test)
                    held = optax.softmax_cross_entropy_with_integer_labels(logits, y_test).mean()
                    accuracy = (logits.argmax(-1) == y_test).mean()
                    return jnp.stack([held, self._ce(params, x, y), accuracy])
            else:
                train_text, held_text = data
                assert task.model is not None
                config = task.model._replace(vocab=len(train_text.vocab))
                tokens = jnp.asarray(train_text.tokens)
                offsets = jnp.arange(config.context + 1)
                held = [jnp.asarray(a) for a in eval_windows(held_text.tokens, config.context, task.eval_windows)]
                seen = [jnp.asarray(a) for a in eval_windows(train_text.tokens, config.context,
                                                             task.train_windows)]
                model = build_charlm(config, 0)
                self._init = lambda seed: nnx.to_pure_dict(nnx.state(build_charlm(config, seed)))
                self._batches = lambda seed: jnp.asarray(
                    window_starts(len(train_text.tokens), config.context, (task.steps, task.batch), seed))

                def window_loss(params: Params, starts: Array) -> Array:
                    window = tokens[starts[:, None] + offsets]
                    return self._ce(params, window[:, :-1], window[:, 1:])

                def evaluate(params: Params) -> Array:
                    return jnp.stack([self._ce(params, *held), self._ce(params, *seen), jnp.float32(jnp.nan)])

                self._batch_loss = window_loss
            self._evaluate = evaluate
        self._graphdef, _ = nnx.split(model)

    def _ce(self, params: Params, x: Array, y: Array) -> Array:
        logits = nnx.merge(self._graphdef, params)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def _tx(self, key: str, peak: Any) -> optax.GradientTransformation:
        return make_tx(key, peak, self.task.steps, self.stacked)

    def _step_fn(self, key: str) -> Callable[..., Any]:
        def step(carry: tuple[Params, Any, Array], batch: Array) -> tuple[tuple[Params, Any, Array], None]:
            params, state, peak = carry
            grads = jax.grad(self._batch_loss)(params, batch)
            updates, state = self._tx(key, peak).update(grads, state, params)
            return (optax.apply_updates(params, updates), state, peak), None

        return step

    def _trainer(self, key: str) -> Callable[..., Array]:
        if key not in self._trainers:
            task, step = self.task, self._step_fn(key)
            chunks, k = task.steps // task.eval_every, task.eval_every

            @jax.jit
            def train(params: Params, batches: Array, peak: Array) -> Array:
                def chunk(carry: Any, batch_chunk: Array) -> tuple[Any, Array]:
                    carry, _ = jax.lax.scan(step, carry, batch_chunk)
                    return carry, self._evaluate(carry[0])

                carry = (params, self._tx(key, peak).init(params), peak)
                _, metrics = jax.lax.scan(chunk, carry, batches.reshape(chunks, k, *batches.shape[1:]))
                return jnp.concatenate([self._evaluate(params)[None], metrics])  # (evals, 3)

            self._trainers[key] = train
        return self._trainers[key]

    def run(self, key: str, jobs: list[tuple[float, int]], progress: Callable[[], None] = lambda: None
            ) -> dict[tuple[float, int], tuple[list[list[float]], float, float]]:
        """Train ``key`` at every ``(peak lr, seed)`` of ``jobs``: ``[held_out, train, accuracy]`` at
        ``task.eval_steps``, the ms per step (one timing per call) and the state/params byte ratio."""
        out = {}
        with jax.default_device(self.device):
            if key == "recommended":
                check_recommended(self._init(0), self.task.steps, matrix_axes if self.stacked else None)
            train = self._trainer(key)
            ms = self._time_step(key, jobs[0][0], jobs[0][1])
            params0 = self._init(jobs[0][1])
            state = jax.eval_shape(self._tx(key, jobs[0][0]).init, params0)
            ratio = _nbytes(state) / _nbytes(params0)
            for lr, seed in jobs:
                metrics = np.asarray(train(self._init(seed), self._batches(seed), jnp.float32(lr)), dtype=np.float64)
                out[(lr, seed)] = (metrics.T.tolist(), ms, ratio)
                progress()
        return out

    def _time_step(self, key: str, lr: float, seed: int, n: int = 20) -> float:
        """ms per training step (forward, backward, update): a jitted step, timed over ``n`` calls after warm-up."""
        params, batches = self._init(seed), self._batches(seed)
        peak = jnp.float32(lr)
        carry = (params, self._tx(key, peak).init(params), peak)
        jitted = jax.jit(self._step_fn(key))
        for i in range(2):
            carry, _ = jitted(carry, batches[i])
        jax.block_until_ready(carry)
        n = min(n, len(batches))
        start = time.perf_counter()
        for i in range(n):
            carry, _ = jitted(carry, batches[i])
        jax.block_until_ready(carry)
        return 1e3 * (time.perf_counter() - start) / n


def _nbytes(tree: Any) -> int:
    return sum(int(np.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize for leaf in jax.tree.leaves(tree)
               if hasattr(leaf, "shape"))
