"""The recommended configuration for Optax: Muon + AdamW with a warmup–stable–decay schedule."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import optax
from jax import Array

from muon_common import RECIPE, wsd_segments
from muon_jax._muon import MatrixAxesTree, muon_with_adamw

__all__ = ["recommended", "warmup_stable_decay"]


def warmup_stable_decay(
    peak_value: float | Array,
    total_steps: int,
    warmup_fraction: float | None = None,
    decay_fraction: float | None = None,
) -> optax.Schedule:
    r"""Linear warmup, constant, then linear decay to zero: an optax schedule.

    ``peak_value * f(t)`` with ``f`` of :func:`muon_common.wsd_phases`: ``(t+1)/W``
    in warmup, ``1``, then ``(T-t)/D``, where ``t`` is the update count (0 at the first
    update). ``optax.join_schedules`` over ``optax.linear_schedule`` and
    ``optax.constant_schedule``; the twin of :func:`muon_torch.warmup_stable_decay`.

    Examples:
      >>> schedule = warmup_stable_decay(1.0, total_steps=10, warmup_fraction=0.2, decay_fraction=0.5)
      >>> [round(float(schedule(t)), 2) for t in range(10)]
      [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2]

    References:
      - Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """
    segments = wsd_segments(total_steps, warmup_fraction, decay_fraction)
    schedules = [optax.linear_schedule(peak_value * s.init, peak_value * s.end, s.transition) if s.transition
                 else optax.constant_schedule(peak_value * s.init) for s in segments]
    boundaries = [s.start for s in segments[1:]]
    return optax.join_schedules(schedules, boundaries) if boundaries else schedules[0]


def recommended(
    total_steps: int,
    learning_rate: float | Array | None = None,
    adamw: Callable[[str, Array], bool] | Sequence[str] = RECIPE.adamw,
    matrix_axes: MatrixAxesTree = None,
    *,
    adamw_lr: float | Array | None = None,
    warmup_fraction: float | None = None,
    decay_fraction: float | None = None,
    **muon_overrides: Any,
) -> optax.GradientTransformation:
    """The recommended Muon for a run of ``total_steps`` updates, schedule inside.

    Muon (``muon_common.RECIPE``: Polar Express, Nesterov momentum 0.9, weight decay
    0.1, AdamW-sized steps) on the hidden matrices; AdamW (betas 0.9, 0.95, the same
    weight decay) on every leaf that is not a matrix and on the matrices whose key path
    contains one of ``adamw`` (default: embeddings and output head); both under
    :func:`warmup_stable_decay`. ``learning_rate=None`` is the tuned peak lr
    ``RECIPE.lr``; it may be an array, traced under ``jit`` (e.g. to sweep peak lrs in one
    compiled function). ``adamw_lr=None`` is ``learning_rate *
    RECIPE.adamw_lr_ratio``. ``matrix_axes`` describes stacked layers (see
    :func:`scale_by_muon`); ``muon_overrides`` replace recipe options. The twin of
    :func:`muon_torch.recommended`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> params = {"embed": jnp.ones((10, 4)), "hidden": jnp.ones((4, 4)), "bias": jnp.zeros(4)}
      >>> tx = recommended(total_steps=100)
      >>> state = tx.init(params)
      >>> grads = jax.tree.map(jnp.ones_like, params)
      >>> updates, state = tx.update(grads, state, params)
      >>> round(float(updates["bias"][0]), 6)  # AdamW's first step: the lr at step 0, 0.01 / 5
      -0.002

    References:
      - Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      - Liu et al., "Muon is Scalable for LLM Training" (Moonlight), arXiv:2502.16982, 2025.
      - Amsel et al., "The Polar Express: Optimal Matrix Sign Methods and Their Application to
        the Muon Algorithm", arXiv:2505.16932, 2025.
      - Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491, 2025.
    """
    lr, adamw_lr = RECIPE.peak_lrs(learning_rate, adamw_lr)
    options = {**RECIPE.muon_options(), **muon_overrides}
    return muon_with_adamw(
        warmup_stable_decay(lr, total_steps, warmup_fraction, decay_fraction),
        adamw_lr=warmup_stable_decay(adamw_lr, total_steps, warmup_fraction, decay_fraction),
        adamw_betas=RECIPE.adamw_betas,
        adamw=adamw,
        matrix_axes=matrix_axes,
        **options,
    )
