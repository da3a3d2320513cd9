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

    Examples:
      >>> import torch, muon_torch
      >>> model = torch.nn.Linear(4, 4, bias=False)
      >>> opt = muon_torch.Muon(model.parameters(), lr=1.0)
      >>> sched = warmup_stable_decay(opt, total_steps=10, warmup_fraction=0.2, decay_fraction=0.5)
      >>> lrs = []
      >>> for _ in range(10):  # in training: loss.backward() before each step
      ...     lrs.append(round(opt.param_groups[0]["lr"], 2))
      ...     opt.step(); opt.zero_grad(); sched.step()
      >>> lrs
      [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2]

    References:
      - Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
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

    Examples:
      >>> import torch
      >>> model = torch.nn.ModuleDict({"embed": torch.nn.Embedding(10, 4), "hidden": torch.nn.Linear(4, 4),
      ...                              "head": torch.nn.Linear(4, 10)})
      >>> opt, sched = recommended(model, total_steps=100)
      >>> [(group["algorithm"], len(group["params"]), group["lr"]) for group in opt.param_groups]
      [('muon', 1, 0.002), ('adamw', 4, 0.002)]

      Muon takes ``hidden.weight``; AdamW the embedding, the head and the biases, both at
      the peak lr ``RECIPE.lr = 0.01`` times the warmup's first factor ``1/5``. In training,
      call ``loss.backward(); opt.step(); opt.zero_grad(); sched.step()`` for each batch.

    References:
      - Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      - Liu et al., "Muon is Scalable for LLM Training" (Moonlight), arXiv:2502.16982, 2025.
      - Amsel et al., "The Polar Express: Optimal Matrix Sign Methods and Their Application to
        the Muon Algorithm", arXiv:2505.16932, 2025.
      - Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491, 2025.
    """
    lr, adamw_lr = RECIPE.peak_lrs(lr, adamw_lr)
    options = {**RECIPE.muon_options(), **muon_overrides}
    groups = param_groups(model, adamw=adamw, adamw_lr=adamw_lr, matrix_axes=matrix_axes,
                          adamw_betas=RECIPE.adamw_betas)
    optimizer = Muon(groups, lr=lr, **options)
    return optimizer, warmup_stable_decay(optimizer, total_steps, warmup_fraction, decay_fraction)
