"""Muon as Optax gradient transformations: ``scale_by_muon`` and ``muon``."""

from __future__ import annotations

import functools
import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from muon_common import (
    ADAMW_BETAS,
    CLIP_EPS,
    DEFAULTS,
    AdjustLR,
    Hyperparameters,
    LowPrecisionDtype,
    Messages,
    Method,
    Normalization,
    ResolvedAxes,
    adamw_matcher,
    lr_adjustment,
    neuron_moment_shape,
    resolve_matrix_axes,
    validate_betas,
    validate_lr,
)
from muon_common._docs import document_hyperparameters
from muon_jax._orthogonalize import orthogonalize_

__all__ = [
    "ScaleByMuonState",
    "ScaleByNorMuonState",
    "SkipNonfiniteLeavesState",
    "export_state",
    "import_state",
    "muon",
    "muon_labels",
    "muon_with_adamw",
    "scale_by_muon",
    "skip_nonfinite_leaves",
    "zero_nonfinite_updates",
]

#: ``None`` (2-D leaves are matrices), a pytree of ``MatrixAxes | None`` with the
#: params' structure, or a callable from params to such a pytree.
MatrixAxesTree = Any | Callable[[optax.Params], Any] | None


class ScaleByMuonState(NamedTuple):
    """State of :func:`scale_by_muon`.

    ``momentum`` is shaped like the params; ``nonfinite_steps`` holds, per leaf, how
    many steps were skipped because that leaf's gradient had a NaN or Inf.

    Examples:
      >>> import jax.numpy as jnp
      >>> state = scale_by_muon().init({"w": jnp.ones((2, 3))})
      >>> type(state).__name__, state.momentum["w"].shape, int(state.nonfinite_steps["w"])
      ('ScaleByMuonState', (2, 3), 0)

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """

    momentum: optax.Updates
    nonfinite_steps: optax.Updates


class ScaleByNorMuonState(NamedTuple):
    """State of :func:`scale_by_muon` with ``neuron_norm=True``: :class:`ScaleByMuonState`'s
    fields, and ``neuron_second_moment``, each matrix's per-neuron second moment (shaped like
    it with its row, fan-in, axes reduced to 1) and an ``optax.MaskedNode`` for every other leaf.

    (A class of its own, so that the state without NorMuon keeps the structure that
    checkpoints saved by earlier versions have.)

    Examples:
      >>> import jax.numpy as jnp
      >>> state = scale_by_muon(neuron_norm=True).init({"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)})
      >>> type(state).__name__, state.neuron_second_moment["kernel"].shape
      ('ScaleByNorMuonState', (1, 2))

    References:
      Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491, 2025.
    """

    momentum: optax.Updates
    nonfinite_steps: optax.Updates
    neuron_second_moment: optax.Updates


def _safe_scale(x: Array) -> Array:
    """``max|x|``, or 1 for an all-zero ``x``: dividing by it keeps squares in range."""
    s = jnp.max(jnp.abs(x), initial=0.0)  # initial: a zero-size x gives 1
    return jnp.where(s > 0, s, jnp.ones_like(s))


def _rms_normalise(m: Array, eps: float) -> Array:
    """``m / sqrt(mean(m^2) + eps)``, computed on ``m / max|m|`` so squares cannot overflow."""
    s = _safe_scale(m)
    ms = m / s
    return ms / jnp.sqrt(jnp.mean(jnp.square(ms)) + eps / jnp.square(s))


def _robust_norm(m: Array) -> Array:
    """``||m||_2`` without overflow or underflow of the squares."""
    s = _safe_scale(m)
    return s * jnp.sqrt(jnp.sum(jnp.square(m / s)))


def _finite(tree: optax.Updates) -> Any:
    """Per leaf, whether every entry is finite (a tree of scalar bools)."""
    return jax.tree.map(lambda x: jnp.all(jnp.isfinite(x)), tree)


def _zero_where_not(tree: optax.Updates, finite: Any) -> optax.Updates:
    """``tree`` with every leaf whose flag in ``finite`` is false replaced by zeros."""
    return jax.tree.map(lambda x, f: jnp.where(f, x, jnp.zeros((), x.dtype)), tree, finite)


def _zero_counters(params: optax.Params) -> optax.Updates:
    """One int32 step counter per leaf, at zero (``nonfinite_steps``)."""
    return jax.tree.map(lambda _: jnp.zeros((), jnp.int32), params)


def _count_nonfinite(counters: optax.Updates, finite: Any) -> optax.Updates:
    """``counters`` plus one where the leaf's gradient was not finite."""
    return jax.tree.map(lambda c, f: c + (~f).astype(c.dtype), counters, finite)


def _is_masked(x: Any) -> bool:
    return isinstance(x, optax.MaskedNode)


def _path_name(path: Any) -> str:
    """A leaf's key path as ``"a/b/0"`` (the name ``muon_labels`` matches against)."""
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _param_name(path: Any) -> str:
    return f"parameter {_path_name(path)!r}"


def _leaf_axes(matrix_axes: MatrixAxesTree, tree: Any) -> list[ResolvedAxes | None]:
    """Resolved axes for every leaf of ``tree``, in flattening order.

    Leaves masked out by an enclosing ``optax.masked``/``multi_transform`` are skipped,
    so the description may be given for the whole params tree.
    """
    slots, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_masked)
    if matrix_axes is None:
        specs: list[Any] = [None] * len(slots)
    else:
        spec_tree = matrix_axes(tree) if callable(matrix_axes) else matrix_axes
        specs = treedef.flatten_up_to(spec_tree)  # type: ignore[attr-defined]
    return [resolve_matrix_axes(leaf.shape, spec, _param_name(path))
            for (path, leaf), spec in zip(slots, specs, strict=True) if not _is_masked(leaf)]


def _check_params(params: optax.Params) -> None:
    """Reject leaves Muon cannot optimise, naming them."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(params, is_leaf=_is_masked)[0]:
        if _is_masked(leaf):
            continue
        dtype = jnp.result_type(leaf)
        if jnp.issubdtype(dtype, jnp.complexfloating):
            raise ValueError(Messages.COMPLEX_PARAM.format(param=_param_name(path), dtype=dtype))
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(Messages.NOT_FLOAT_PARAM.format(param=_param_name(path), dtype=dtype))


def _check_state(momentum: optax.Updates, updates: optax.Updates) -> None:
    """A restored state must have the params' structure and shapes (checked at trace time)."""
    m_def = jax.tree.structure(momentum, is_leaf=_is_masked)
    u_def = jax.tree.structure(updates, is_leaf=_is_masked)
    if m_def != u_def:  # type: ignore[operator]
        raise ValueError(Messages.STATE_MISSING.format(why=f"the momentum has structure {m_def}, the "
                                                           f"gradients {u_def}"))
    for (path, m), u in zip(jax.tree_util.tree_flatten_with_path(momentum)[0], jax.tree.leaves(updates),
                            strict=True):
        if m.shape != u.shape:
            raise ValueError(Messages.STATE_MISMATCH.format(param=_param_name(path), what="momentum",
                                                            state_shape=tuple(m.shape), shape=tuple(u.shape)))


def _to_batched(x: Array, axes: ResolvedAxes) -> Array:
    rows = math.prod(x.shape[a] for a in axes.rows)
    cols = math.prod(x.shape[a] for a in axes.cols)
    return jnp.transpose(x, axes.batch + axes.rows + axes.cols).reshape(-1, rows, cols)


def _from_batched(u: Array, like: Array, axes: ResolvedAxes) -> Array:
    perm = axes.batch + axes.rows + axes.cols
    u = u.reshape([like.shape[a] for a in perm])
    return jnp.transpose(u, [perm.index(a) for a in range(like.ndim)])


def _neuron_normalise(d: Array, v: Array, beta2: float, eps: float) -> tuple[Array, Array]:
    r"""NorMuon on batched ``(n, fan_in, fan_out)`` directions ``d`` with second moments ``v``
    of shape ``(n, 1, fan_out)``: the normalised directions and the new ``v``.

    .. math::
        v \leftarrow \beta_2 v + (1 - \beta_2)\,\mathrm{mean}_{\text{fan-in}}(O^2), \quad
        \hat O = O / (\sqrt{v} + \epsilon), \quad O' = \hat O \|O\|_F / \|\hat O\|_F

    per slice, with ``O' = 0`` where ``\hat O = 0`` (a zero direction stays zero: no 0/0).
    """
    v = beta2 * v + (1.0 - beta2) * jnp.mean(jnp.square(d), axis=-2, keepdims=True)
    normed = d / (jnp.sqrt(v) + eps)
    before = jnp.sqrt(jnp.sum(jnp.square(d), axis=(-2, -1), keepdims=True))
    after = jnp.sqrt(jnp.sum(jnp.square(normed), axis=(-2, -1), keepdims=True))
    return normed * jnp.where(after > 0, before / jnp.where(after > 0, after, 1.0), 0.0), v


def _zero_neuron_moments(params: optax.Params, axes: list[ResolvedAxes | None]) -> optax.Updates:
    """Zero per-neuron second moments for the matrices of ``params`` (``axes`` from :func:`_leaf_axes`),
    and an ``optax.MaskedNode`` for every other leaf."""
    slots, treedef = jax.tree.flatten(params, is_leaf=_is_masked)
    found = iter(axes)
    out = []
    for leaf in slots:
        ax = None if _is_masked(leaf) else next(found)
        # Flax layout: a kernel's rows are its fan-in.
        out.append(optax.MaskedNode() if ax is None
                   else jnp.zeros(neuron_moment_shape(leaf.shape, ax.rows), leaf.dtype))
    return jax.tree.unflatten(treedef, out)


def _directions(
    momenta: list[Array],
    axes: list[ResolvedAxes | None],
    hp: Hyperparameters,
    neuron_moments: list[Any] | None = None,
) -> tuple[list[Array], list[Any]]:
    """Update directions: matrices orthogonalised (same shapes batched), others RMS-scaled;
    with ``neuron_moments`` (one per leaf), matrices are NorMuon-normalised, and the new
    moments come back (the old entry where a leaf has none)."""
    moments = list(neuron_moments) if neuron_moments is not None else [None] * len(momenta)
    out: list[Array | None] = [None] * len(momenta)
    buckets: dict[Any, list[int]] = defaultdict(list)
    for i, (m, ax) in enumerate(zip(momenta, axes, strict=True)):
        if m.size == 0:
            out[i] = m  # a zero-size leaf has nothing to update (as in optax.adamw)
        elif ax is None:
            out[i] = _rms_normalise(m, hp.eps) if hp.rms_scale else m
        else:
            mb = _to_batched(m, ax)
            buckets[(mb.shape[1:], mb.dtype)].append(i)
    for ((rows, cols), _), idx in buckets.items():
        # Flax layout: rows are the fan-in (``Dense.kernel`` is ``(in, out)``).
        scale = lr_adjustment(hp.adjust_lr, fan_in=rows, fan_out=cols)
        batched = [_to_batched(momenta[i], axes[i]) for i in idx]  # type: ignore[arg-type]
        stacked = jnp.concatenate(batched) if len(batched) > 1 else batched[0]
        directions = orthogonalize_(stacked, hp.method, hp.ns_iters, hp.eps, hp.orthogonalize_dtype, hp.normalization)
        offset = 0
        for i, mb in zip(idx, batched, strict=True):
            n = mb.shape[0]
            d = directions[offset:offset + n]
            if neuron_moments is not None:
                d, v = _neuron_normalise(d, _to_batched(moments[i], axes[i]), hp.neuron_beta2, hp.eps)  # type: ignore[arg-type]
                moments[i] = _from_batched(v, moments[i], axes[i])  # type: ignore[arg-type]
            if scale != 1.0:
                d = d * scale
            out[i] = _from_batched(d, momenta[i], axes[i])  # type: ignore[arg-type]
            offset += n
    return out, moments  # type: ignore[return-value]


@document_hyperparameters(exclude=("weight_decay",))
def scale_by_muon(
    beta: float = DEFAULTS["beta"],
    eps: float = DEFAULTS["eps"],
    ns_iters: int | None = None,
    method: Method = DEFAULTS["method"],
    rms_scale: bool = DEFAULTS["rms_scale"],
    clip_grad_norm: float | None = DEFAULTS["clip_grad_norm"],
    *,
    nesterov: bool = DEFAULTS["nesterov"],
    adjust_lr: AdjustLR | None = DEFAULTS["adjust_lr"],
    momentum_dtype: LowPrecisionDtype | None = DEFAULTS["momentum_dtype"],
    orthogonalize_dtype: LowPrecisionDtype | None = DEFAULTS["orthogonalize_dtype"],
    neuron_norm: bool = DEFAULTS["neuron_norm"],
    neuron_beta2: float = DEFAULTS["neuron_beta2"],
    normalization: Normalization = DEFAULTS["normalization"],
    matrix_axes: MatrixAxesTree = None,
) -> optax.GradientTransformation:
    r"""Muon's direction: momentum, optional clip, then orthogonalise or RMS-scale.

    .. math::
        m &\leftarrow \beta m + (1 - \beta) g \\
        m &\leftarrow m \cdot \mathrm{clip} / (\|m\| + 10^{-12})
            \quad\text{if } \|m\| > \mathrm{clip} \\
        u &= s \cdot \mathrm{orthogonalize}(m) \text{ (matrices)}, \quad
             m / \sqrt{\mathrm{mean}(m^2) + \epsilon} \text{ (others, if rms\_scale)}

    No learning rate and no weight decay: :func:`muon` chains those on. A leaf whose
    gradient has a NaN/Inf keeps its momentum and its (non-finite) gradient is passed
    through as its update; :func:`muon` ends with :func:`zero_nonfinite_updates`, which
    zeroes it. Composing by hand, end the chain with it too, or that parameter becomes
    NaN. Gradient clipping by global norm goes before it: ``optax.chain(
    optax.clip_by_global_norm(1.0), scale_by_muon(), ...)``.

    Args:
      {hyperparameters}
      matrix_axes: which axes of each leaf form the matrix: a pytree of
        :class:`MatrixAxes` or ``None`` with the params' structure, or a callable
        returning one. ``None``: 2-D leaves are matrices, others are not. A matrix's rows
        are its fan-in and its columns its fan-out (Flax ``Dense.kernel`` is ``(in, out)``):
        NorMuon's neurons are its columns.

    ``ns_iters=None`` means 5, the reference's; it must be a Python int (it sets the
    computation when the update is traced).

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> tx = optax.chain(scale_by_muon(nesterov=True), optax.scale_by_learning_rate(0.02),
      ...                  zero_nonfinite_updates())
      >>> params = {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}
      >>> updates, state = tx.update({"w": jnp.eye(3, 2), "b": jnp.ones(2)}, tx.init(params), params)
      >>> u = updates["w"]  # -0.02 times an orthogonal matrix
      >>> bool(jnp.allclose(u.T @ u, 0.02**2 * jnp.eye(2), atol=1e-6))
      True

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      Liu et al., "Muon is Scalable for LLM Training" (Moonlight), arXiv:2502.16982, 2025.
      Amsel et al., "The Polar Express", arXiv:2505.16932, 2025.
      Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491, 2025.
    """
    return _scale_by_muon(_hyperparameters({**locals(), "weight_decay": 0.0}), matrix_axes)


def _scale_by_muon(hp: Hyperparameters, matrix_axes: MatrixAxesTree) -> optax.GradientTransformation:
    """:func:`scale_by_muon` from a record (whose ``weight_decay`` it does not use)."""
    beta, clip_grad_norm, momentum_dtype = hp.beta, hp.clip_grad_norm, hp.momentum_dtype

    def init_fn(params: optax.Params) -> ScaleByMuonState | ScaleByNorMuonState:
        _check_params(params)
        axes = _leaf_axes(matrix_axes, params)  # a description that does not fit fails here
        momentum = optax.tree.zeros_like(params, dtype=momentum_dtype)
        nonfinite_steps = _zero_counters(params)
        if hp.neuron_norm:
            return ScaleByNorMuonState(momentum, nonfinite_steps, _zero_neuron_moments(params, axes))
        return ScaleByMuonState(momentum, nonfinite_steps)

    def update_fn(
        updates: optax.Updates, state: ScaleByMuonState | ScaleByNorMuonState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, ScaleByMuonState | ScaleByNorMuonState]:
        del params
        _check_state(state.momentum, updates)
        # A leaf whose gradient has a NaN/Inf keeps its momentum and passes that
        # gradient through (``muon`` then zeroes its update); the others step as usual.
        finite = _finite(updates)
        grads = _zero_where_not(updates, finite)
        momentum = jax.tree.map(lambda m, g: beta * m.astype(g.dtype) + (1.0 - beta) * g, state.momentum, grads)
        if clip_grad_norm is not None:

            def clip(m: Array) -> Array:
                norm = _robust_norm(m)
                return jnp.where(norm > clip_grad_norm, m * (clip_grad_norm / (norm + CLIP_EPS)), m)

            momentum = jax.tree.map(clip, momentum)
        momentum = jax.tree.map(lambda new, old, f: jnp.where(f, new, old.astype(new.dtype)),
                                momentum, state.momentum, finite)
        inputs = momentum
        if hp.nesterov:
            inputs = jax.tree.map(lambda m, g: beta * m + (1.0 - beta) * g, momentum, grads)
        leaves, treedef = jax.tree.flatten(inputs)
        old_moments = None
        if hp.neuron_norm:
            if not isinstance(state, ScaleByNorMuonState):
                raise ValueError(Messages.STATE_MISSING.format(
                    why="neuron_norm=True, but the state has no neuron_second_moment (it was made without "
                        "neuron_norm)"))
            old_moments = treedef.flatten_up_to(state.neuron_second_moment)  # type: ignore[attr-defined]
        directions, new_moments = _directions(leaves, _leaf_axes(matrix_axes, inputs), hp, old_moments)
        directions = jax.tree.map(lambda u, g, f: jnp.where(f, u, g), jax.tree.unflatten(treedef, directions),
                                  updates, finite)
        momentum = optax.tree.cast(momentum, momentum_dtype)
        nonfinite_steps = _count_nonfinite(state.nonfinite_steps, finite)
        if old_moments is None:
            return directions, ScaleByMuonState(momentum, nonfinite_steps)
        # A leaf whose gradient had a NaN/Inf keeps its second moment, as it keeps its momentum.
        second_moment = jax.tree.unflatten(treedef, [
            old if _is_masked(old) else jnp.where(f, new, old)
            for new, old, f in zip(new_moments, old_moments, jax.tree.leaves(finite), strict=True)])
        return directions, ScaleByNorMuonState(momentum, nonfinite_steps, second_moment)

    return optax.GradientTransformation(init_fn, update_fn)


def _hyperparameters(arguments: dict[str, Any]) -> Hyperparameters:
    """The record of a transformation's ``arguments`` (its ``locals()``), validated: the learning
    rate first, if there is one and it is not a schedule."""
    learning_rate = arguments.get("learning_rate")
    if learning_rate is not None and not callable(learning_rate):
        validate_lr(learning_rate, "learning_rate")
    return Hyperparameters(**{k: arguments[k] for k in DEFAULTS if k != "ns_iters"},
                           ns_iters=_ns_iters(arguments["ns_iters"]))


def _ns_iters(ns_iters: Any) -> Any:
    """The number of Newton–Schulz steps, which must be known when the update is traced
    (``optax.inject_hyperparams`` stores numbers as float arrays: an integral one is read back)."""
    if ns_iters is None:
        return DEFAULTS["ns_iters"]
    if isinstance(ns_iters, jax.core.Tracer):
        raise ValueError(Messages.NS_ITERS_TRACED)
    if isinstance(ns_iters, (jax.Array, np.ndarray)) and ns_iters.size == 1:
        value = ns_iters.item()
        return int(value) if isinstance(value, float) and value.is_integer() else value
    return ns_iters  # checked by Hyperparameters


def _is_zero(x: Any) -> bool:
    """Whether ``x`` is known to be zero now (a traced value is not)."""
    return not isinstance(x, jax.core.Tracer) and np.size(x) == 1 and float(np.asarray(x)) == 0.0


def _require_params(weight_decay: float) -> optax.GradientTransformation:
    """Fail clearly when decoupled decay is asked for without the params."""

    def update_fn(
        updates: optax.Updates, state: optax.EmptyState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, optax.EmptyState]:
        if params is None:
            raise ValueError(Messages.NEEDS_PARAMS.format(value=weight_decay))
        return updates, state

    return optax.GradientTransformation(lambda _: optax.EmptyState(), update_fn)


def zero_nonfinite_updates() -> optax.GradientTransformation:
    """Replace each leaf update that has a NaN/Inf by zeros: that parameter stays put.

    The last link of :func:`muon`; put it last in a chain built by hand around
    :func:`scale_by_muon`, which keeps the momentum of such a leaf and passes its
    non-finite gradient through.

    Examples:
      >>> import optax
      >>> tx = optax.chain(scale_by_muon(), optax.add_decayed_weights(0.01),
      ...                  optax.scale_by_learning_rate(0.02), zero_nonfinite_updates())

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """

    def update_fn(
        updates: optax.Updates, state: optax.EmptyState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, optax.EmptyState]:
        del params
        return _zero_where_not(updates, _finite(updates)), state

    return optax.GradientTransformation(lambda _: optax.EmptyState(), update_fn)


class SkipNonfiniteLeavesState(NamedTuple):
    """State of :func:`skip_nonfinite_leaves`: the wrapped transformation's state, and per
    leaf how many steps it skipped because its gradient had a NaN or Inf.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> state = skip_nonfinite_leaves(optax.adamw(1e-3)).init({"b": jnp.zeros(3)})
      >>> int(state.nonfinite_steps["b"])
      0

    References:
      Loshchilov and Hutter, "Decoupled Weight Decay Regularization" (AdamW), arXiv:1711.05101, 2019.
    """

    inner_state: optax.OptState
    nonfinite_steps: optax.Updates


def skip_nonfinite_leaves(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """``inner``, with a leaf whose gradient has a NaN/Inf left where it is, leaf by leaf.

    Such a leaf gets a zero update and keeps its own state: every part of ``inner``'s state
    shaped like the updates (``optax.adamw``'s two moments) keeps that leaf's old value, and its
    ``nonfinite_steps`` counter goes up by one. State shared by all leaves (a step count)
    advances as usual. This is :func:`muon`'s promise for the leaves of another optimizer;
    ``optax.apply_if_finite`` is its whole-tree form. :func:`muon_with_adamw` puts it around its AdamW.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> tx = skip_nonfinite_leaves(optax.adamw(1e-3))
      >>> params = {"b": jnp.zeros(3), "s": jnp.zeros(())}
      >>> state = tx.init(params)
      >>> updates, state = tx.update({"b": jnp.ones(3), "s": jnp.asarray(jnp.nan)}, state, params)
      >>> float(updates["s"]), int(state.nonfinite_steps["s"]), int(state.nonfinite_steps["b"])
      (0.0, 1, 0)

    References:
      Loshchilov and Hutter, "Decoupled Weight Decay Regularization" (AdamW), arXiv:1711.05101, 2019.
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """

    def init_fn(params: optax.Params) -> SkipNonfiniteLeavesState:
        return SkipNonfiniteLeavesState(inner.init(params), _zero_counters(params))

    def update_fn(
        updates: optax.Updates, state: SkipNonfiniteLeavesState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, SkipNonfiniteLeavesState]:
        finite = _finite(updates)
        new_updates, inner_state = inner.update(_zero_where_not(updates, finite), state.inner_state, params)
        treedef = jax.tree.structure(updates)

        def per_leaf(x: Any) -> bool:
            return bool(jax.tree.structure(x) == treedef)  # type: ignore[operator]

        def keep(new: Any, old: Any) -> Any:
            if not per_leaf(new):
                return new
            return jax.tree.map(lambda n, o, f: jnp.where(f, n, o), new, old, finite)

        inner_state = jax.tree.map(keep, inner_state, state.inner_state, is_leaf=per_leaf)
        return _zero_where_not(new_updates, finite), SkipNonfiniteLeavesState(
            inner_state, _count_nonfinite(state.nonfinite_steps, finite))

    return optax.GradientTransformation(init_fn, update_fn)


@document_hyperparameters()
def muon(
    learning_rate: optax.ScalarOrSchedule,
    beta: float = DEFAULTS["beta"],
    weight_decay: float = DEFAULTS["weight_decay"],
    eps: float = DEFAULTS["eps"],
    ns_iters: int | None = None,
    method: Method = DEFAULTS["method"],
    rms_scale: bool = DEFAULTS["rms_scale"],
    clip_grad_norm: float | None = DEFAULTS["clip_grad_norm"],
    *,
    nesterov: bool = DEFAULTS["nesterov"],
    adjust_lr: AdjustLR | None = DEFAULTS["adjust_lr"],
    momentum_dtype: LowPrecisionDtype | None = DEFAULTS["momentum_dtype"],
    orthogonalize_dtype: LowPrecisionDtype | None = DEFAULTS["orthogonalize_dtype"],
    neuron_norm: bool = DEFAULTS["neuron_norm"],
    neuron_beta2: float = DEFAULTS["neuron_beta2"],
    normalization: Normalization = DEFAULTS["normalization"],
    matrix_axes: MatrixAxesTree = None,
    weight_decay_mask: Any = None,
) -> optax.GradientTransformation:
    r"""The Muon optimizer: ``p <- p (1 - lr wd) - lr u`` with ``u`` from :func:`scale_by_muon`.

    Equal to ``optax.chain(scale_by_muon(...), optax.add_decayed_weights(weight_decay),
    optax.scale_by_learning_rate(learning_rate))`` for finite gradients; a leaf whose
    gradient has a NaN/Inf gets a zero update, and its momentum is kept (counted in
    ``ScaleByMuonState.nonfinite_steps``). To clip gradients, put
    ``optax.clip_by_global_norm`` before it in a chain (after it, it would clip the
    orthogonalised update).

    Numeric hyperparameters may be arrays, so ``optax.inject_hyperparams(muon)(learning_rate=0.02)``
    works and ``learning_rate``/``weight_decay`` can be changed in its state mid-run, under ``jit``;
    they are validated when they are concrete.

    Args:
      learning_rate: a positive float or an optax schedule.
      {hyperparameters}
      matrix_axes: see :func:`scale_by_muon`.
      weight_decay_mask: optional mask (pytree or callable) of the leaves to decay,
        as in ``optax.add_decayed_weights``. Decay needs ``params`` in ``update`` unless
        ``weight_decay`` is zero.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> tx = optax.inject_hyperparams(muon)(learning_rate=0.02)
      >>> params = {"w": jnp.ones((3, 3))}
      >>> state = tx.init(params)
      >>> state.hyperparams["learning_rate"] = jnp.asarray(0.01)  # e.g. from a callback
      >>> updates, state = tx.update({"w": jnp.eye(3)}, state, params)
      >>> print(optax.apply_updates(params, updates)["w"].round(4))
      [[0.9899 0.9999 0.9999]
       [0.9999 0.9899 0.9999]
       [0.9999 0.9999 0.9899]]

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      Liu et al., "Muon is Scalable for LLM Training" (Moonlight), arXiv:2502.16982, 2025.
      Amsel et al., "The Polar Express", arXiv:2505.16932, 2025.
      Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491, 2025.
    """
    hp = _hyperparameters(locals())
    return _muon(learning_rate, hp, matrix_axes, weight_decay_mask)


def _muon(learning_rate: optax.ScalarOrSchedule, hp: Hyperparameters, matrix_axes: MatrixAxesTree,
          weight_decay_mask: Any) -> optax.GradientTransformation:
    """:func:`muon` from a record."""
    parts = [_scale_by_muon(hp, matrix_axes)]
    if not _is_zero(hp.weight_decay):  # an array (optax.inject_hyperparams) may change later: keep the decay
        parts += [_require_params(hp.weight_decay), optax.add_decayed_weights(hp.weight_decay, weight_decay_mask)]
    parts += [optax.scale_by_learning_rate(learning_rate), zero_nonfinite_updates()]
    return optax.chain(*parts)


def muon_labels(
    params: optax.Params,
    matrix_axes: MatrixAxesTree = None,
    adamw: Callable[[str, Array], bool] | Sequence[str] = (),
) -> Any:
    """Label each leaf ``"muon"`` or ``"adamw"`` for :func:`muon_with_adamw`.

    Matrices (2-D leaves, or those ``matrix_axes`` describes) get ``"muon"``, other
    leaves ``"adamw"``. ``adamw`` moves matrices to AdamW too: a predicate on
    ``(path, leaf)`` where ``path`` is the leaf's key path joined by ``"/"``, or a list
    of substrings of that path (e.g. ``("embed", "head")``).

    Examples:
      >>> import jax.numpy as jnp
      >>> params = {"embed": jnp.ones((10, 4)), "dense": {"kernel": jnp.ones((4, 4)), "bias": jnp.ones(4)}}
      >>> muon_labels(params, adamw=("embed",))
      {'dense': {'bias': 'adamw', 'kernel': 'muon'}, 'embed': 'adamw'}

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      Liu et al., "Muon is Scalable for LLM Training" (Moonlight), arXiv:2502.16982, 2025.
    """
    leaves_with_paths, treedef = jax.tree_util.tree_flatten_with_path(params)
    axes = _leaf_axes(matrix_axes, params)
    to_adamw = adamw_matcher(adamw)
    labels = []
    for (path, leaf), ax in zip(leaves_with_paths, axes, strict=True):
        name = _path_name(path)
        labels.append("muon" if ax is not None and not to_adamw(name, leaf) else "adamw")
    return jax.tree.unflatten(treedef, labels)


@document_hyperparameters()
def muon_with_adamw(
    learning_rate: optax.ScalarOrSchedule,
    beta: float = DEFAULTS["beta"],
    weight_decay: float = DEFAULTS["weight_decay"],
    eps: float = DEFAULTS["eps"],
    ns_iters: int | None = None,
    method: Method = DEFAULTS["method"],
    rms_scale: bool = DEFAULTS["rms_scale"],
    clip_grad_norm: float | None = DEFAULTS["clip_grad_norm"],
    *,
    nesterov: bool = DEFAULTS["nesterov"],
    adjust_lr: AdjustLR | None = DEFAULTS["adjust_lr"],
    momentum_dtype: LowPrecisionDtype | None = DEFAULTS["momentum_dtype"],
    orthogonalize_dtype: LowPrecisionDtype | None = DEFAULTS["orthogonalize_dtype"],
    neuron_norm: bool = DEFAULTS["neuron_norm"],
    neuron_beta2: float = DEFAULTS["neuron_beta2"],
    normalization: Normalization = DEFAULTS["normalization"],
    matrix_axes: MatrixAxesTree = None,
    weight_decay_mask: Any = None,
    adamw_lr: optax.ScalarOrSchedule | None = None,
    adamw_betas: tuple[float, float] = ADAMW_BETAS,
    adamw_weight_decay: float | None = None,
    adamw: Callable[[str, Array], bool] | Sequence[str] = (),
    labels: Any = None,
    adamw_learning_rate: optax.ScalarOrSchedule | None = None,
    skip_nonfinite_adamw: bool = True,
) -> optax.GradientTransformation:
    """Muon on matrices and AdamW on everything else, in one transformation.

    ``optax.multi_transform({"muon": muon(...), "adamw": optax.adamw(...)}, labels)``
    with ``labels`` from :func:`muon_labels` (or your own pytree/callable). AdamW uses
    ``adamw_lr`` (default: ``learning_rate``), ``adamw_betas``, ``adamw_weight_decay``
    (default: ``weight_decay``) and Muon's ``eps``: the names of
    ``muon_torch.param_groups``. The twin of a ``muon_torch.Muon`` param group with
    ``algorithm="adamw"``; ``adamw_learning_rate`` is the earlier name of ``adamw_lr``.
    The Muon arguments are :func:`muon`'s. Under ``optax.inject_hyperparams``, list the
    callable arguments (``matrix_axes``, ``adamw``, ``labels``) in ``static_args``: it
    would take them for schedules.

    A leaf under AdamW whose gradient has a NaN/Inf keeps its value and moments, counted
    (:func:`skip_nonfinite_leaves`), as under Muon. ``skip_nonfinite_adamw=False`` builds the
    AdamW part as version 0.1 did, without that guard: the state structure that a 0.1
    checkpoint of this transformation has, to restore one.

    Args:
      learning_rate: the Muon part's learning rate: a positive float or an optax schedule.
      {hyperparameters}
      matrix_axes: see :func:`scale_by_muon`.
      weight_decay_mask: see :func:`muon`.
      adamw_lr: the AdamW part's learning rate (``None``: ``learning_rate``).
      adamw_betas: the AdamW part's ``(b1, b2)``.
      adamw_weight_decay: the AdamW part's weight decay (``None``: ``weight_decay``).
      adamw: matrices to give AdamW too, as in :func:`muon_labels`.
      labels: the ``"muon"``/``"adamw"`` label pytree or callable (``None``: :func:`muon_labels`).
      adamw_learning_rate: the deprecated name of ``adamw_lr``.
      skip_nonfinite_adamw: wrap the AdamW part in :func:`skip_nonfinite_leaves`.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> params = {"w": jnp.ones((3, 3)), "b": jnp.ones(3)}
      >>> tx = muon_with_adamw(0.02, adamw_lr=1e-3)
      >>> updates, state = tx.update({"w": jnp.eye(3), "b": jnp.ones(3)}, tx.init(params), params)
      >>> muon_labels(params)
      {'b': 'adamw', 'w': 'muon'}

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      Liu et al., "Muon is Scalable for LLM Training" (Moonlight), arXiv:2502.16982, 2025.
      Loshchilov and Hutter, "Decoupled Weight Decay Regularization" (AdamW), arXiv:1711.05101, 2019.
    """
    validate_betas(adamw_betas)
    if adamw_learning_rate is not None:
        if adamw_lr is not None:
            raise ValueError("muon_with_adamw: pass adamw_lr only (adamw_learning_rate is its earlier name).")
        warnings.warn("muon_with_adamw: adamw_learning_rate is now adamw_lr, the name muon_torch uses.",
                      DeprecationWarning, stacklevel=2)
        adamw_lr = adamw_learning_rate
    hp = _hyperparameters(locals())
    tx_muon = _muon(learning_rate, hp, matrix_axes, weight_decay_mask)
    b1, b2 = adamw_betas
    tx_adamw = optax.adamw(adamw_lr if adamw_lr is not None else learning_rate, b1=b1, b2=b2, eps=hp.eps,
                           weight_decay=hp.weight_decay if adamw_weight_decay is None else adamw_weight_decay)
    if skip_nonfinite_adamw:
        tx_adamw = skip_nonfinite_leaves(tx_adamw)
    if labels is None:
        labels = functools.partial(muon_labels, matrix_axes=matrix_axes, adamw=adamw)
    return optax.multi_transform({"muon": tx_muon, "adamw": tx_adamw}, labels)


def _is_muon_state(x: Any) -> bool:
    return isinstance(x, (ScaleByMuonState, ScaleByNorMuonState))


def export_state(opt_state: optax.OptState) -> dict[str, dict[str, np.ndarray]]:
    """The Muon state inside ``opt_state`` as numpy arrays, keyed by each leaf's path
    (``"layers/0/kernel"``); see ``muon_common.remap``. bfloat16 momentum comes out as float32.
    With ``neuron_norm``, a matrix's entry also has its ``"neuron_second_moment"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> tx = muon(0.02)
      >>> state = tx.init({"layers": [{"kernel": jnp.ones((3, 2))}]})
      >>> entry = export_state(state)["layers/0/kernel"]
      >>> entry["momentum"].shape, int(entry["nonfinite_steps"])
      ((3, 2), 0)

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """
    found = [s for s in jax.tree.leaves(opt_state, is_leaf=_is_muon_state) if _is_muon_state(s)]
    if len(found) != 1:
        raise ValueError(Messages.STATE_MISSING.format(why=f"it holds {len(found)} Muon states, not one"))
    (state,) = found
    steps = dict(jax.tree_util.tree_flatten_with_path(state.nonfinite_steps)[0])
    moments = dict(jax.tree_util.tree_flatten_with_path(getattr(state, "neuron_second_moment", None))[0])
    out = {}
    for path, m in jax.tree_util.tree_flatten_with_path(state.momentum)[0]:
        m = np.asarray(m.astype(jnp.float32) if m.dtype == jnp.bfloat16 else m)
        out[_path_name(path)] = {"momentum": m.copy(), "nonfinite_steps": np.asarray(steps[path]).astype(np.int64)}
        if path in moments:
            out[_path_name(path)]["neuron_second_moment"] = np.asarray(moments[path]).copy()
    return out


def import_state(opt_state: optax.OptState, portable: dict[str, dict[str, np.ndarray]]) -> optax.OptState:
    """``opt_state`` with its Muon state replaced from a portable state (e.g. exported by
    ``muon_torch`` and remapped). Every entry must name a Muon leaf of the same shape; the
    momentum keeps the state's dtype.

    Examples:
      >>> import jax.numpy as jnp, numpy as np
      >>> tx = muon(0.02)
      >>> state = tx.init({"kernel": jnp.zeros((3, 2))})
      >>> portable = {"kernel": {"momentum": np.ones((3, 2)), "nonfinite_steps": np.asarray(0)}}
      >>> float(export_state(import_state(state, portable))["kernel"]["momentum"].sum())
      6.0

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """

    def replace(state: Any) -> Any:
        if not _is_muon_state(state):
            return state
        leaves = jax.tree_util.tree_flatten_with_path(state.momentum)[0]
        names = {_path_name(path) for path, _ in leaves}
        unknown = sorted(set(portable) - names)
        if unknown:
            raise ValueError(Messages.STATE_MISSING.format(
                why=f"it has entries for {unknown}, which are not parameters under Muon"))

        def load(path: Any, m: Array, *, what: str) -> Array:
            entry = portable.get(_path_name(path))
            if entry is None or what not in entry:
                return m  # a second moment the entry lacks starts from zero, as a fresh NorMuon does
            if what != "nonfinite_steps" and tuple(entry[what].shape) != tuple(m.shape):
                raise ValueError(Messages.STATE_MISMATCH.format(param=_param_name(path), what=what,
                                                                state_shape=tuple(entry[what].shape),
                                                                shape=tuple(m.shape)))
            return jnp.asarray(entry[what]).astype(m.dtype)

        return type(state)(*(jax.tree_util.tree_map_with_path(functools.partial(load, what=what), tree)
                             for what, tree in zip(state._fields, state, strict=True)))

    return jax.tree.map(replace, opt_state, is_leaf=_is_muon_state)
