"""Muon on sharded ``DTensor`` parameters (FSDP2's ``fully_shard``, or any one-dimension ``Shard``).

The functional step :func:`muon_torch.muon` hands its work here when a parameter is a
``torch.distributed.tensor.DTensor``. Everything elementwise (momentum, clip scaling,
decay, the update) runs on each rank's local shard; every whole-tensor quantity is computed
exactly with explicit collectives, batched over all parameters:

1. whether a gradient has a NaN/Inf anywhere (one ``all_reduce(MAX)`` of per-parameter flags);
2. the clip's norm, if ``clip_grad_norm`` is set, and the mean of the RMS fallback, if
   ``rms_scale`` is set and a non-matrix parameter is sharded (one ``all_gather`` each of
   every shard's ``max|m|`` and ``sum((m / max|m|)^2)``, combined on every rank into the
   global ``max|m|`` and ``sum((m / max|m|)^2)``: the single-process formulas of
   ``_robust_norm`` / ``_rms_normalise``, up to rounding).

Matrices are orthogonalised exactly once in the group, as in ZeRO-1 / Moonlight / Dion:
each matrix gets an owner rank (greedy by Newton–Schulz cost), one ``all_to_all_single``
brings every owner the shards of the matrices it owns, the owner orthogonalises them
(batched where shapes match), and a second ``all_to_all_single`` returns every rank its
shard of each direction. A stacked parameter (``matrix_axes``) sharded along one of its
batch axes needs no gather: each rank orthogonalises the slices it holds.

Supported layouts: a ``DTensor`` whose placements are ``Shard(d)`` on one mesh dimension
and ``Replicate()`` on the others (FSDP2, and HSDP's ``(Replicate(), Shard(0))``, whose
replicas compute the same result side by side), or ``Replicate()`` only. Any other layout
(several ``Shard``s, ``_StridedShard``, ``Partial``) is gathered whole on every rank and
stepped there (correct, but every rank does all the work). Every rank of a group must
step the same parameters in the same order (as FSDP2 guarantees). Owners are assigned
afresh in each call (one call per param group), and an owner holds the whole matrices it
owns only during the step.
"""

from __future__ import annotations

import functools
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from muon_common import Hyperparameters, MatrixAxes, ResolvedAxes, resolve_matrix_axes
from muon_torch._functional import (
    all_finite,
    apply_direction,
    local_muon,
    momentum_and_decay,
    neuron_normalise,
    nonzero_or_one,
    orthogonalize_many,
)

__all__ = ["has_dtensor", "muon_dtensor", "owners"]


def _dtensor_module() -> Any:
    """The module holding ``DTensor`` if it has been imported (no DTensor can exist otherwise)."""
    for name in ("torch.distributed.tensor", "torch.distributed._tensor"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "DTensor"):
            return module
    return None


def has_dtensor(tensors: Sequence[Tensor]) -> bool:
    """Whether any of ``tensors`` is a ``DTensor`` (without importing ``torch.distributed.tensor``)."""
    module = _dtensor_module()
    return module is not None and any(isinstance(t, module.DTensor) for t in tensors)


@dataclass(frozen=True)
class _Layout:
    """How a parameter is split: along tensor axis ``dim`` over the ``size`` ranks of ``group``.

    ``group is None`` means each rank holds the whole tensor (a plain tensor or a replicated
    DTensor). Rank ``r`` holds ``torch.chunk``'s ``r``-th piece (``Shard``'s rule): pieces of
    ``ceil(n / size)`` along ``dim``, the last ones shorter or empty.
    """

    group: Any
    rank: int
    size: int
    dim: int
    shape: tuple[int, ...]

    def span(self, r: int) -> tuple[int, int]:
        """``(start, length)`` of rank ``r``'s piece along ``dim``."""
        n = self.shape[self.dim]
        chunk = -(-n // self.size)
        start = min(r * chunk, n)
        return start, min(n, start + chunk) - start

    def local_shape(self, r: int) -> tuple[int, ...]:
        shape = list(self.shape)
        shape[self.dim] = self.span(r)[1]
        return tuple(shape)


_WHOLE = _Layout(None, 0, 1, 0, ())


def _layout(p: Tensor) -> _Layout | None:
    """``p``'s layout, or ``None`` where only the generic (gather everything) path applies."""
    module = _dtensor_module()
    if module is None or not isinstance(p, module.DTensor):
        return _WHOLE
    placements = p.placements
    sharded = [(i, pl) for i, pl in enumerate(placements) if not pl.is_replicate()]
    if not sharded:
        return _WHOLE
    if len(sharded) != 1 or type(sharded[0][1]) is not module.Shard:
        return None
    mesh_dim, placement = sharded[0]
    mesh = p.device_mesh
    layout = _Layout(mesh.get_group(mesh_dim), mesh.get_local_rank(mesh_dim), mesh.size(mesh_dim),
                     placement.dim % p.ndim, tuple(p.shape))
    if tuple(p.to_local().shape) != layout.local_shape(layout.rank):
        raise ValueError(
            f"Muon cannot step a DTensor of shape {tuple(p.shape)} whose local shard has shape "
            f"{tuple(p.to_local().shape)} on rank {layout.rank} of {layout.size}: {placements} splits like "
            f"torch.chunk, which gives {layout.local_shape(layout.rank)}.")
    return layout


def _local(t: Tensor) -> Tensor:
    module = _dtensor_module()
    return t.to_local() if module is not None and isinstance(t, module.DTensor) else t


def _like(g: Any, p: Any) -> Any:
    """Gradient ``g`` laid out as parameter ``p`` (FSDP2's already are)."""
    module = _dtensor_module()
    if isinstance(g, module.DTensor) and tuple(g.placements) != tuple(p.placements):
        return g.redistribute(p.device_mesh, p.placements)
    return g


def _group_key(group: Any) -> int:
    return id(group)


def _all_reduce_max(values: list[Tensor], layouts: list[_Layout]) -> list[Tensor]:
    """Per-parameter 0-d ``values``, maximised over each parameter's group (one ``all_reduce`` a group)."""
    out = list(values)
    by_group: dict[int, list[int]] = defaultdict(list)
    for i, layout in enumerate(layouts):
        if layout.group is not None:
            by_group[_group_key(layout.group)].append(i)
    for indices in by_group.values():
        group = layouts[indices[0]].group
        stacked = torch.stack([values[i].to(torch.float64) for i in indices])
        dist.all_reduce(stacked, op=dist.ReduceOp.MAX, group=group)
        for j, i in enumerate(indices):
            out[i] = stacked[j].to(values[i].dtype)
    return out


def _all_reduce_sum(t: Tensor, group: Any) -> Tensor:
    """``t`` summed over the ranks of ``group`` (a new tensor)."""
    out = t.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
    return out


#: ``all_gather_into_tensor`` was renamed ``all_gather_single`` (torch 2.10); the old name warns.
_all_gather: Any = getattr(dist, "all_gather_single", None) or getattr(dist, "all_gather_into_tensor", None)


def _local_scaled_squares(t: Tensor) -> tuple[Tensor, Tensor]:
    """``(max|t|, sum((t / max|t|)^2))`` of one shard (``max|t| = 0`` for an empty or zero shard)."""
    if t.numel() == 0:
        zero = torch.zeros((), dtype=t.dtype, device=t.device)
        return zero, zero
    s = t.abs().amax()
    return s, (t / nonzero_or_one(s)).square().sum()


def _scaled_squares(tensors: list[Tensor], layouts: list[_Layout]) -> list[tuple[Tensor, Tensor]]:
    """For each whole tensor: ``(S, sum((t / S)^2))`` with ``S = max|t|`` (``1`` for a zero tensor).

    Each shard sends its own ``(s_r, q_r = sum((t_r / s_r)^2))`` in one ``all_gather`` a group;
    every rank then forms ``S = max_r s_r`` and ``sum_r (s_r / S)^2 q_r``, which equals the
    single-process ``sum((t / S)^2)`` up to rounding, with no square overflowing or underflowing.
    """
    stats = [_local_scaled_squares(t) for t in tensors]
    out: list[tuple[Tensor, Tensor]] = []
    for s, q in stats:
        out.append((nonzero_or_one(s), q))
    by_group: dict[int, list[int]] = defaultdict(list)
    for i, layout in enumerate(layouts):
        if layout.group is not None:
            by_group[_group_key(layout.group)].append(i)
    for indices in by_group.values():
        layout = layouts[indices[0]]
        mine = torch.stack([torch.stack(stats[i]).to(torch.float64) for i in indices])  # (k, 2)
        gathered = torch.empty((layout.size * len(indices), 2), dtype=mine.dtype, device=mine.device)
        _all_gather(gathered, mine, group=layout.group)
        gathered = gathered.view(layout.size, len(indices), 2)
        s_all, q_all = gathered[..., 0], gathered[..., 1]  # (size, k)
        S = nonzero_or_one(s_all.amax(dim=0))
        total = ((s_all / S).square() * q_all).sum(dim=0)
        for j, i in enumerate(indices):
            dtype = tensors[i].dtype
            out[i] = (S[j].to(dtype), total[j].to(dtype))
    return out


def owners(costs: Sequence[float], size: int) -> list[int]:
    """Owner rank of each matrix: the greedy longest-processing-time split of ``costs`` over ``size`` ranks.

    Deterministic (ties go to the lower index and the lower rank), so every rank computes
    the same assignment from the same shapes.
    """
    load = [0.0] * size
    out = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        r = min(range(size), key=lambda r: (load[r], r))
        out[i] = r
        load[r] += costs[i]
    return out


def _ns_cost(axes: ResolvedAxes, shape: tuple[int, ...]) -> float:
    batch = math.prod(shape[a] for a in axes.batch)
    rows = math.prod(shape[a] for a in axes.rows)
    cols = math.prod(shape[a] for a in axes.cols)
    return float(batch * rows * cols * min(rows, cols))


def _exchange(send: list[list[Tensor]], recv_numels: list[int], group: Any, like: Tensor) -> list[Tensor]:
    """One ``all_to_all_single``: ``send[q]`` (flattened, concatenated) goes to rank ``q``.

    Returns the flat piece received from each rank (``recv_numels[r]`` elements from rank ``r``).
    """
    in_splits = [sum(t.numel() for t in pieces) for pieces in send]
    flat = [t.reshape(-1) for pieces in send for t in pieces]
    send_buffer = torch.cat(flat) if flat else like.new_empty(0)
    recv_buffer = like.new_empty(sum(recv_numels))
    dist.all_to_all_single(recv_buffer, send_buffer, recv_numels, in_splits, group=group)
    return list(torch.split(recv_buffer, recv_numels))


def _owned_directions(entries: list[tuple[Tensor, ResolvedAxes, _Layout]], hyperparameters: Hyperparameters
                      ) -> list[Tensor]:
    """This rank's shard of the direction of each matrix of ``entries`` (all on one group, one dtype).

    ``entries`` hold this rank's shard of each input, its axes (of the whole tensor) and its
    layout. Owners gather, orthogonalise and send back: two ``all_to_all_single`` in all.
    """
    layout0 = entries[0][2]
    size, me, group = layout0.size, layout0.rank, layout0.group
    owner = owners([_ns_cost(axes, layout.shape) for _, axes, layout in entries], size)
    mine = [i for i in range(len(entries)) if owner[i] == me]

    # 1. Every rank sends its shard of each matrix to that matrix's owner.
    send: list[list[Tensor]] = [[] for _ in range(size)]
    for i, (t, _, _) in enumerate(entries):
        send[owner[i]].append(t)
    recv_numels = [sum(math.prod(entries[i][2].local_shape(r)) for i in mine) for r in range(size)]
    received = _exchange(send, recv_numels, group, entries[0][0])
    pieces: list[list[Tensor]] = [[] for _ in mine]
    for r, flat in enumerate(received):
        offset = 0
        for j, i in enumerate(mine):
            shape = entries[i][2].local_shape(r)
            n = math.prod(shape)
            pieces[j].append(flat[offset:offset + n].view(shape))
            offset += n
    whole = [torch.cat(p, dim=entries[i][2].dim) for p, i in zip(pieces, mine, strict=True)]

    # 2. The owner orthogonalises its matrices, batched by shape.
    directions = orthogonalize_many([(w, entries[i][1]) for w, i in zip(whole, mine, strict=True)], hyperparameters)

    # 3. Each rank gets its shard of every direction back.
    send = [[] for _ in range(size)]
    for d, i in zip(directions, mine, strict=True):
        layout = entries[i][2]
        for r in range(size):
            start, length = layout.span(r)
            send[r].append(d.narrow(layout.dim, start, length))
    recv_numels = [sum(t.numel() for i, (t, _, _) in enumerate(entries) if owner[i] == r) for r in range(size)]
    received = _exchange(send, recv_numels, group, entries[0][0])
    out: list[Tensor] = [torch.empty(0)] * len(entries)
    for r, flat in enumerate(received):
        offset = 0
        for i, (t, _, _) in enumerate(entries):
            if owner[i] == r:
                out[i] = flat[offset:offset + t.numel()].view(t.shape)
                offset += t.numel()
    return out


def _generic_step(params: list[Any], grads: list[Any], momentum_buffers: list[Any],
                  nonfinite_steps: list[Tensor] | None, neuron_second_moments: list[Any],
                  lr: float | Tensor, hyperparameters: Hyperparameters, matrix_axes: MatrixAxes | None) -> None:
    """Any other DTensor layout: step whole copies on every rank, then keep the local shards."""
    module = _dtensor_module()
    full_p = [p.full_tensor() for p in params]
    full_g = [g.full_tensor() for g in grads]
    full_m = [m.full_tensor() for m in momentum_buffers]
    full_v = [None if v is None else v.full_tensor() for v in neuron_second_moments]
    local_muon(full_p, full_g, full_m, lr=lr, hyperparameters=hyperparameters, matrix_axes=matrix_axes,
               nonfinite_steps=nonfinite_steps, neuron_second_moments=full_v)
    moments = [(w, v) for w, v in zip(full_v, neuron_second_moments, strict=True) if v is not None]
    for whole, target in [*zip(full_p + full_m, params + momentum_buffers, strict=True), *moments]:
        replicated = module.DTensor.from_local(whole, target.device_mesh,
                                               [module.Replicate()] * target.device_mesh.ndim, run_check=False)
        target.to_local().copy_(replicated.redistribute(target.device_mesh, target.placements).to_local())


def muon_dtensor(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffers: list[Tensor],
    *,
    lr: float | Tensor,
    hyperparameters: Hyperparameters,
    matrix_axes: MatrixAxes | None = None,
    nonfinite_steps: list[Tensor] | None = None,
    neuron_second_moments: Sequence[Tensor | None] | None = None,
) -> None:
    """:func:`muon_torch.muon` where some parameters are ``DTensor``s (see the module's docstring)."""
    hp = hyperparameters
    moments: list[Any] = list(neuron_second_moments or [None] * len(params))
    layouts = [_layout(p) for p in params]
    axes = [resolve_matrix_axes(p.shape, matrix_axes) for p in params]
    if hp.neuron_norm:
        # A matrix split along its columns (fan-in) would need its neurons' sums gathered
        # across ranks as well: such layouts take the whole-tensor path.
        for i, (layout, a) in enumerate(zip(layouts, axes, strict=True)):
            if layout is not None and layout.group is not None and a is not None and layout.dim in a.cols:
                layouts[i] = None
    generic = [i for i, layout in enumerate(layouts) if layout is None]
    if generic:
        _generic_step([params[i] for i in generic], [grads[i] for i in generic],
                      [momentum_buffers[i] for i in generic],
                      None if nonfinite_steps is None else [nonfinite_steps[i] for i in generic],
                      [moments[i] for i in generic], lr, hp, matrix_axes)
        kept = [i for i, layout in enumerate(layouts) if layout is not None]
        params, grads, momentum_buffers, moments = ([xs[i] for i in kept]
                                                    for xs in (params, grads, momentum_buffers, moments))
        axes = [axes[i] for i in kept]
        if nonfinite_steps is not None:
            nonfinite_steps = [nonfinite_steps[i] for i in kept]
        layouts = [layouts[i] for i in kept]
        if not params:
            return
    lays: list[_Layout] = [layout for layout in layouts if layout is not None]
    grads = [_like(g, p) for p, g in zip(params, grads, strict=True)]
    shapes = [tuple(p.shape) for p in params]
    params = [_local(p) for p in params]
    grads = [_local(g) for g in grads]
    momentum_buffers = [_local(m) for m in momentum_buffers]
    moments = [None if v is None else _local(v) for v in moments]

    # From here on, the steps of ``muon_torch.muon`` on local shards, with global scalars.
    bad = _all_reduce_max([(~all_finite(g)).to(g.dtype) for g in grads], lays)
    inputs, keep = momentum_and_decay(
        params, grads, momentum_buffers, [b == 0 for b in bad], lr=lr, hyperparameters=hp,
        nonfinite_steps=nonfinite_steps,
        norms=lambda ms: [s * torch.sqrt(q) for s, q in _scaled_squares(ms, lays)],  # robust_norm, whole tensors
    )

    vectors = [i for i, a in enumerate(axes) if a is None]
    if vectors:
        if hp.rms_scale:
            stats = _scaled_squares([inputs[i] for i in vectors], [lays[i] for i in vectors])
            for i, (s, q) in zip(vectors, stats, strict=True):
                # rms_normalise of the whole tensor: m / sqrt(mean(m^2) + eps), on m / max|m|.
                update = (inputs[i] / s) / torch.sqrt(q / math.prod(shapes[i]) + hp.eps / s.square())
                apply_direction(params[i], update, keep[i], lr, shapes[i], None, hp.adjust_lr)
        else:
            for i in vectors:
                apply_direction(params[i], inputs[i], keep[i], lr, shapes[i], None, hp.adjust_lr)

    # Matrices: local where no gather is needed, else split between the ranks of their group.
    local: list[int] = []
    shared: dict[tuple[int, torch.dtype], list[int]] = defaultdict(list)
    for i, a in enumerate(axes):
        if a is None:
            continue
        layout = lays[i]
        if layout.group is None or layout.dim in a.batch:
            if inputs[i].numel() > 0:
                local.append(i)
        else:
            shared[(_group_key(layout.group), inputs[i].dtype)].append(i)
    directions: dict[int, Tensor] = {}
    if local:
        found = orthogonalize_many([(inputs[i], axes[i]) for i in local], hp)  # type: ignore[misc]
        directions.update(zip(local, found, strict=True))
    for indices in shared.values():
        found = _owned_directions([(inputs[i], axes[i], lays[i]) for i in indices], hp)  # type: ignore[misc]
        directions.update(zip(indices, found, strict=True))
    if hp.neuron_norm:
        for i, d in directions.items():
            # The slices' squared norms are summed over the ranks holding their other rows.
            split_rows = lays[i].group is not None and lays[i].dim in axes[i].rows  # type: ignore[union-attr]
            directions[i] = neuron_normalise(d, moments[i], keep[i], hp.neuron_beta2, hp.eps, axes[i],  # type: ignore[arg-type]
                                             functools.partial(_all_reduce_sum, group=lays[i].group)
                                             if split_rows else lambda t: t)
    for i, d in directions.items():
        apply_direction(params[i], d, keep[i], lr, shapes[i], axes[i], hp.adjust_lr)
