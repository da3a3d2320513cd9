"""The recommended configuration for PyTorch: Muon + AdamW with a warmup–stable–decay schedule."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, LinearLR, LRScheduler, SequentialLR

from muon_common import RECIPE, MatrixAxes, wsd_segments
from muon_torch.optimizer import Muon, param_groups

__all__ = ["recommended", "warmup_stable_decay"]


def warmup_stable_decay(
    optimizer: Optimizer,
    total_steps: int,
    warmup_fraction: float | None = None,
    decay_fraction: float | None = None,
) -> SequentialLR:
    r"""Linear warmup, constant, then linear decay to zero, for every param group.

    Each group's lr at step ``t`` is its initial lr times ``f(t)`` of
    :func:`muon_common.wsd_phases`: ``(t+1)/W`` in warmup, ``1``, then ``(T-t)/D``.
    Built from ``torch.optim.lr_scheduler``'s ``LinearLR``, ``ConstantLR`` and
    ``SequentialLR``; call ``scheduler.step()`` after each ``optimizer.step()``.
    The twin of :func:`muon_jax.warmup_stable_decay`.

    Example::

        opt = muon_torch.Muon(model.parameters(), lr=0.02)
        sched = muon_torch.warmup_stable_decay(opt, total_steps=1000)
        for batch in batches:
            loss(batch).backward(); opt.step(); opt.zero_grad(); sched.step()
    """
    segments = wsd_segments(total_steps, warmup_fraction, decay_fraction)
    schedulers: list[LRScheduler] = [
        LinearLR(optimizer, start_factor=s.init, end_factor=s.end, total_iters=s.transition) if s.transition
        else ConstantLR(optimizer, factor=s.init, total_iters=0) for s in segments]
    milestones = [s.start for s in segments[1:]]
    return SequentialLR(optimizer, schedulers, milestones)


def recommended(
    model: torch.nn.Module,
    total_steps: int,
    lr: float | None = None,
    adamw: Callable[[str, Tensor], bool] | Sequence[str] = RECIPE.adamw,
    *,
    adamw_lr: float | None = None,
    matrix_axes: MatrixAxes | None = None,
    warmup_fraction: float | None = None,
    decay_fraction: float | None = None,
    **muon_overrides: Any,
) -> tuple[Muon, SequentialLR]:
    """The recommended Muon for training ``model`` for ``total_steps`` steps: ``(optimizer, scheduler)``.

    Muon (``muon_common.RECIPE``: Polar Express, Nesterov momentum 0.9, weight decay
    0.1, AdamW-sized steps) on the hidden matrices; AdamW (betas 0.9, 0.95, the same
    weight decay) on every parameter that is not a matrix and on the matrices whose
    names contain one of ``adamw`` (default: embeddings and output head); both under
    :func:`warmup_stable_decay`. ``lr=None`` is the tuned peak lr ``RECIPE.lr``;
    ``adamw_lr=None`` is ``lr * RECIPE.adamw_lr_ratio``. ``muon_overrides`` replace
    recipe options (e.g. ``beta=0.95``). The twin of :func:`muon_jax.recommended`.

    Example::

        opt, sched = muon_torch.recommended(model, total_steps=1000)
        for batch in batches:
            loss(batch).backward(); opt.step(); opt.zero_grad(); sched.step()
    """
    lr, adamw_lr = RECIPE.peak_lrs(lr, adamw_lr)
    options = {**RECIPE.muon_options(), **muon_overrides}
    groups = param_groups(model, adamw=adamw, adamw_lr=adamw_lr, matrix_axes=matrix_axes,
                          adamw_betas=RECIPE.adamw_betas)
    optimizer = Muon(groups, lr=lr, **options)
    return optimizer, warmup_stable_decay(optimizer, total_steps, warmup_fraction, decay_fraction)
