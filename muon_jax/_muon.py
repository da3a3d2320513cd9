"""Muon as Optax gradient transformations: ``scale_by_muon`` and ``muon``."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import Array

from muon_common import (
    CLIP_EPS,
    DEFAULTS,
    Messages,
    resolve_matrix_axes,
    validate_hyperparameters,
)
from muon_common._spec import ResolvedAxes
from muon_jax._orthogonalize import Method, orthogonalize_

__all__ = ["ScaleByMuonState", "muon", "scale_by_muon"]

#: ``None`` (2-D leaves are matrices), a pytree of ``MatrixAxes | None`` with the
#: params' structure, or a callable from params to such a pytree.
MatrixAxesTree = Any | Callable[[optax.Params], Any] | None


class ScaleByMuonState(NamedTuple):
    """State of :func:`scale_by_muon`: the momentum, shaped like the params."""

    momentum: optax.Updates


def _leaf_axes(matrix_axes: MatrixAxesTree, tree: Any) -> list[ResolvedAxes | None]:
    """Resolved axes for every leaf of ``tree``, in flattening order."""
    leaves, treedef = jax.tree.flatten(tree)
    if matrix_axes is None:
        specs: list[Any] = [None] * len(leaves)
    else:
        spec_tree = matrix_axes(tree) if callable(matrix_axes) else matrix_axes
        specs = treedef.flatten_up_to(spec_tree)  # type: ignore[attr-defined]
    return [resolve_matrix_axes(leaf.shape, spec) for leaf, spec in zip(leaves, specs, strict=True)]


def _to_batched(x: Array, axes: ResolvedAxes) -> Array:
    rows = math.prod(x.shape[a] for a in axes.rows)
    cols = math.prod(x.shape[a] for a in axes.cols)
    return jnp.transpose(x, axes.batch + axes.rows + axes.cols).reshape(-1, rows, cols)


def _from_batched(u: Array, like: Array, axes: ResolvedAxes) -> Array:
    perm = axes.batch + axes.rows + axes.cols
    u = u.reshape([like.shape[a] for a in perm])
    return jnp.transpose(u, [perm.index(a) for a in range(like.ndim)])


def _directions(
    momenta: list[Array],
    axes: list[ResolvedAxes | None],
    *,
    eps: float,
    ns_iters: int,
    method: Method,
    rms_scale: bool,
) -> list[Array]:
    """Update directions: matrices orthogonalised (same shapes batched), others RMS-scaled."""
    out: list[Array | None] = [None] * len(momenta)
    buckets: dict[Any, list[int]] = defaultdict(list)
    for i, (m, ax) in enumerate(zip(momenta, axes, strict=True)):
        if ax is None:
            out[i] = m / jnp.sqrt(jnp.mean(jnp.square(m)) + eps) if rms_scale else m
        else:
            mb = _to_batched(m, ax)
            buckets[(mb.shape[1:], mb.dtype)].append(i)
    for idx in buckets.values():
        batched = [_to_batched(momenta[i], axes[i]) for i in idx]  # type: ignore[arg-type]
        stacked = jnp.concatenate(batched) if len(batched) > 1 else batched[0]
        directions = orthogonalize_(stacked, method, ns_iters, eps)
        offset = 0
        for i, mb in zip(idx, batched, strict=True):
            n = mb.shape[0]
            out[i] = _from_batched(directions[offset:offset + n], momenta[i], axes[i])  # type: ignore[arg-type]
            offset += n
    return out  # type: ignore[return-value]


def scale_by_muon(
    beta: float = DEFAULTS["beta"],
    eps: float = DEFAULTS["eps"],
    ns_iters: int = DEFAULTS["ns_iters"],
    method: Method = DEFAULTS["method"],
    rms_scale: bool = DEFAULTS["rms_scale"],
    clip_grad_norm: float | None = DEFAULTS["clip_grad_norm"],
    *,
    matrix_axes: MatrixAxesTree = None,
) -> optax.GradientTransformation:
    r"""Muon's direction: momentum, optional clip, then orthogonalise or RMS-scale.

    .. math::
        m &\leftarrow \beta m + (1 - \beta) g \\
        m &\leftarrow m \cdot \mathrm{clip} / (\|m\| + 10^{-12})
            \quad\text{if } \|m\| > \mathrm{clip} \\
        u &= \mathrm{orthogonalize}(m) \text{ (matrices)}, \quad
             m / \sqrt{\mathrm{mean}(m^2) + \epsilon} \text{ (others, if rms\_scale)}

    No learning rate and no weight decay: :func:`muon` chains those on.

    Args:
      beta: momentum coefficient.
      eps: numerical stabiliser of the normalisations.
      ns_iters: Newton–Schulz steps.
      method: ``"ns"`` or ``"svd"``.
      rms_scale: RMS-normalise the momentum of non-matrix leaves.
      clip_grad_norm: if set, each leaf's stored momentum is rescaled to this L2
        norm whenever it is larger.
      matrix_axes: which axes of each leaf form the matrix: a pytree of
        :class:`MatrixAxes` or ``None`` with the params' structure, or a callable
        returning one. ``None``: 2-D leaves are matrices, others are not.
    """
    validate_hyperparameters(beta=beta, weight_decay=0.0, eps=eps, ns_iters=ns_iters,
                             method=method, rms_scale=rms_scale, clip_grad_norm=clip_grad_norm)

    def init_fn(params: optax.Params) -> ScaleByMuonState:
        _leaf_axes(matrix_axes, params)  # a description that does not fit fails here
        return ScaleByMuonState(momentum=optax.tree.zeros_like(params))

    def update_fn(
        updates: optax.Updates, state: ScaleByMuonState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, ScaleByMuonState]:
        del params
        momentum = jax.tree.map(lambda m, g: beta * m + (1.0 - beta) * g, state.momentum, updates)
        if clip_grad_norm is not None:

            def clip(m: Array) -> Array:
                norm = jnp.sqrt(jnp.sum(jnp.square(m)))
                return jnp.where(norm > clip_grad_norm, m * (clip_grad_norm / (norm + CLIP_EPS)), m)

            momentum = jax.tree.map(clip, momentum)
        leaves, treedef = jax.tree.flatten(momentum)
        directions = _directions(leaves, _leaf_axes(matrix_axes, momentum), eps=eps,
                                 ns_iters=ns_iters, method=method, rms_scale=rms_scale)
        return jax.tree.unflatten(treedef, directions), ScaleByMuonState(momentum=momentum)

    return optax.GradientTransformation(init_fn, update_fn)


def _require_params(weight_decay: float) -> optax.GradientTransformation:
    """Fail clearly when decoupled decay is asked for without the params."""

    def update_fn(
        updates: optax.Updates, state: optax.EmptyState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, optax.EmptyState]:
        if params is None:
            raise ValueError(Messages.NEEDS_PARAMS.format(value=weight_decay))
        return updates, state

    return optax.GradientTransformation(lambda _: optax.EmptyState(), update_fn)


def muon(
    learning_rate: optax.ScalarOrSchedule,
    beta: float = DEFAULTS["beta"],
    weight_decay: float = DEFAULTS["weight_decay"],
    eps: float = DEFAULTS["eps"],
    ns_iters: int = DEFAULTS["ns_iters"],
    method: Method = DEFAULTS["method"],
    rms_scale: bool = DEFAULTS["rms_scale"],
    clip_grad_norm: float | None = DEFAULTS["clip_grad_norm"],
    *,
    matrix_axes: MatrixAxesTree = None,
    weight_decay_mask: Any = None,
) -> optax.GradientTransformation:
    r"""The Muon optimizer: ``p <- p (1 - lr wd) - lr u`` with ``u`` from :func:`scale_by_muon`.

    Equal to ``optax.chain(scale_by_muon(...), optax.add_decayed_weights(weight_decay),
    optax.scale_by_learning_rate(learning_rate))``.

    Args:
      learning_rate: a positive float or an optax schedule.
      weight_decay: decoupled weight decay (multiplied by the learning rate);
        needs ``params`` in ``update`` when nonzero.
      weight_decay_mask: optional mask (pytree or callable) of the leaves to decay,
        as in ``optax.add_decayed_weights``.
      beta, eps, ns_iters, method, rms_scale, clip_grad_norm, matrix_axes: see
        :func:`scale_by_muon`.
    """
    validate_hyperparameters(
        lr=None if callable(learning_rate) else learning_rate, lr_name="learning_rate",
        beta=beta, weight_decay=weight_decay, eps=eps, ns_iters=ns_iters, method=method,
        rms_scale=rms_scale, clip_grad_norm=clip_grad_norm,
    )
    parts = [scale_by_muon(beta, eps, ns_iters, method, rms_scale, clip_grad_norm,
                           matrix_axes=matrix_axes)]
    if weight_decay != 0.0:
        parts += [_require_params(weight_decay),
                  optax.add_decayed_weights(weight_decay, weight_decay_mask)]
    parts.append(optax.scale_by_learning_rate(learning_rate))
    return optax.chain(*parts)

