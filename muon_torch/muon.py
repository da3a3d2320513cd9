"""``Muon``: a ``torch.optim.Optimizer`` with the reference Muon semantics."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT

from muon_common import (
    CLIP_EPS,
    DEFAULTS,
    MatrixAxes,
    resolve_matrix_axes,
    validate_hyperparameters,
)
from muon_common._spec import ResolvedAxes
from muon_torch._orthogonalize import Method, orthogonalize_

__all__ = ["Muon", "muon"]

_HYPERPARAMETERS = ("lr", "beta", "weight_decay", "eps", "ns_iters", "method", "rms_scale",
                    "clip_grad_norm")


class Muon(Optimizer):
    r"""Muon: momentum, then orthogonalised updates for matrices.

    For each parameter ``p`` with gradient ``g`` and momentum ``m`` (zero at start):

    .. math::
        m &\leftarrow \beta m + (1 - \beta) g \\
        m &\leftarrow m \cdot \mathrm{clip} / (\|m\| + 10^{-12})
            \quad\text{if } \|m\| > \mathrm{clip} \\
        p &\leftarrow p (1 - \mathrm{lr} \cdot \mathrm{wd}) - \mathrm{lr} \cdot U

    with ``U = orthogonalize(m)`` for matrices (``"ns"``: Newton–Schulz polar
    iteration, ``"svd"``: exact ``U V^T``) and ``U = m / sqrt(mean(m^2) + eps)``
    (``rms_scale=True``) or ``U = m`` otherwise.

    Args:
      params: parameters or param groups; every hyperparameter below, and
        ``matrix_axes``, can be overridden per group.
      lr: learning rate (no default).
      beta: momentum coefficient.
      weight_decay: decoupled weight decay (multiplied by ``lr``).
      eps: numerical stabiliser of the normalisations.
      ns_iters: Newton–Schulz steps.
      method: ``"ns"`` or ``"svd"``.
      rms_scale: RMS-normalise the momentum of non-matrix parameters.
      clip_grad_norm: if set, the stored momentum of each parameter is rescaled
        to this L2 norm whenever it is larger.
      matrix_axes: which axes form the matrix (:class:`muon_common.MatrixAxes`);
        others are batch axes. ``None``: 2-D parameters are matrices, others are not.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float,
        beta: float = DEFAULTS["beta"],
        weight_decay: float = DEFAULTS["weight_decay"],
        eps: float = DEFAULTS["eps"],
        ns_iters: int = DEFAULTS["ns_iters"],
        method: Method = DEFAULTS["method"],
        rms_scale: bool = DEFAULTS["rms_scale"],
        clip_grad_norm: float | None = DEFAULTS["clip_grad_norm"],
        *,
        matrix_axes: MatrixAxes | None = None,
    ) -> None:
        defaults: dict[str, Any] = dict(lr=lr, beta=beta, weight_decay=weight_decay, eps=eps, ns_iters=ns_iters,
                        method=method, rms_scale=rms_scale, clip_grad_norm=clip_grad_norm,
                        matrix_axes=matrix_axes)
        validate_hyperparameters(**{k: defaults[k] for k in _HYPERPARAMETERS})
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Validate a group's overrides before adding it, so a bad group changes nothing."""
        if not isinstance(param_group, dict):
            super().add_param_group(param_group)  # raises torch's TypeError
            return
        merged = {**self.defaults, **param_group}
        validate_hyperparameters(**{k: merged[k] for k in _HYPERPARAMETERS})
        params = param_group["params"]
        if isinstance(params, Tensor):
            tensors: list[Any] = [params]
        elif isinstance(params, set):
            tensors = []  # torch rejects unordered params below
        else:
            # A generator (``model.parameters()``) can be read only once: keep the list.
            param_group["params"] = list(params)
            # ``named_parameters()`` gives ``(name, tensor)`` pairs.
            tensors = [p[1] if isinstance(p, tuple) else p for p in param_group["params"]]
        for p in tensors:
            if isinstance(p, Tensor):  # torch reports anything else
                resolve_matrix_axes(p.shape, merged["matrix_axes"])
        super().add_param_group(param_group)

    def _init_group(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        momentum_buffers: list[Tensor],
    ) -> None:
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("Muon does not support sparse gradients.")
            state = self.state[p]
            if len(state) == 0:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            momentum_buffers.append(state["momentum_buffer"])

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Perform one optimisation step; ``closure`` re-evaluates the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params: list[Tensor] = []
            grads: list[Tensor] = []
            momentum_buffers: list[Tensor] = []
            self._init_group(group, params, grads, momentum_buffers)
            muon(
                params,
                grads,
                momentum_buffers,
                **{k: group[k] for k in _HYPERPARAMETERS},
                matrix_axes=group["matrix_axes"],
            )
        return loss


def _to_batched(t: Tensor, axes: ResolvedAxes) -> Tensor:
    """View ``t`` as ``(batch, rows, cols)`` following ``axes``."""
    perm = axes.batch + axes.rows + axes.cols
    shape = t.shape
    rows = 1
    for a in axes.rows:
        rows *= shape[a]
    cols = 1
    for a in axes.cols:
        cols *= shape[a]
    return t.permute(perm).reshape(-1, rows, cols)


def _from_batched(u: Tensor, like: Tensor, axes: ResolvedAxes) -> Tensor:
    """Inverse of :func:`_to_batched` for a tensor shaped like ``like``."""
    perm = axes.batch + axes.rows + axes.cols
    permuted_shape = [like.shape[a] for a in perm]
    inverse = [0] * len(perm)
    for i, a in enumerate(perm):
        inverse[a] = i
    return u.reshape(permuted_shape).permute(inverse)


def muon(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffers: list[Tensor],
    *,
    lr: float,
    beta: float,
    weight_decay: float,
    eps: float,
    ns_iters: int,
    method: Method,
    rms_scale: bool,
    clip_grad_norm: float | None,
    matrix_axes: MatrixAxes | None = None,
) -> None:
    """Functional Muon step over lists of tensors (see :class:`Muon`).

    Matrices of equal ``(batch, rows, cols)`` shape, dtype and device are
    orthogonalised together in one batched computation.
    """
    if not params:
        return
    torch._foreach_mul_(momentum_buffers, beta)
    torch._foreach_add_(momentum_buffers, grads, alpha=1.0 - beta)
    if clip_grad_norm is not None:
        norms = torch._foreach_norm(momentum_buffers)
        scales = [torch.where(n > clip_grad_norm, clip_grad_norm / (n + CLIP_EPS), 1.0).to(n.dtype)
                  for n in norms]
        torch._foreach_mul_(momentum_buffers, scales)
    if weight_decay != 0.0:
        # p - (lr*wd) p rather than p * (1 - lr*wd): the factor 1 - lr*wd rounds to
        # float32 with a relative error that accumulates into a drift (1.3e-6 after 50
        # steps at lr*wd = 2e-3, measured); lr*wd's rounding only touches the small term.
        torch._foreach_add_(params, params, alpha=-lr * weight_decay)

    buckets: dict[Any, list[tuple[Tensor, Tensor, ResolvedAxes]]] = defaultdict(list)
    for p, m in zip(params, momentum_buffers, strict=True):
        axes = resolve_matrix_axes(p.shape, matrix_axes)
        if axes is None:
            if rms_scale:
                update = m / torch.sqrt(m.square().mean() + eps)
            else:
                update = m
            p.add_(update, alpha=-lr)
        else:
            mb = _to_batched(m, axes)
            buckets[(tuple(mb.shape[1:]), m.dtype, m.device)].append((p, mb, axes))

    for bucket in buckets.values():
        batched = torch.cat([mb for _, mb, _ in bucket]) if len(bucket) > 1 else bucket[0][1]
        directions = orthogonalize_(batched, method, ns_iters, eps)
        offset = 0
        for p, mb, axes in bucket:
            n = mb.shape[0]
            p.add_(_from_batched(directions[offset:offset + n], p, axes), alpha=-lr)
            offset += n
