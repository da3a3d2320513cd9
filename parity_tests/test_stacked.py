"""Stacked and flattened matrices: a scan stack, MoE experts, a conv kernel, a batch axis in the middle.

Torch describes them through param groups (``matrix_axes=MatrixAxes(...)``), JAX through a
pytree of ``MatrixAxes``; the oracle orthogonalises every slice in a plain loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import muon_jax
import muon_torch
from muon_common import MatrixAxes
from parity_tests.harness import LR, make_grads, make_params, max_rel_err, run_jax, run_oracle, run_torch

# name -> (shape, axes); None follows the reference rule (2-D matrix, else RMS).
LAYOUT: dict[str, tuple[tuple[int, ...], MatrixAxes | None]] = {
    "scan_stack": ((3, 6, 10), MatrixAxes(rows=1, cols=2)),     # Flax nn.scan: (layers, in, out)
    "experts": ((4, 10, 6), MatrixAxes(rows=-2, cols=-1)),      # MoE: (experts, in, out)
    "conv": ((8, 3, 3, 3), MatrixAxes(rows=0, cols=(1, 2, 3))),  # torch conv (out, in, kh, kw)
    "middle_batch": ((6, 2, 5), MatrixAxes(rows=0, cols=2)),     # batch axis between the matrix axes
    "dense": ((5, 7), None),
    "bias": ((7,), None),
}
SHAPES = {k: s for k, (s, _) in LAYOUT.items()}
PARAMS = make_params(seed=2, shapes=SHAPES)
GRADS = make_grads(seed=3, shapes=SHAPES)


def _oracle_axes() -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    def norm(a: int | tuple[int, ...], ndim: int) -> tuple[int, ...]:
        return tuple(x % ndim for x in ((a,) if isinstance(a, int) else a))

    return {name: (norm(axes.rows, len(shape)), norm(axes.cols, len(shape)))  # type: ignore[arg-type]
            for name, (shape, axes) in LAYOUT.items() if axes is not None}


def _torch_groups(params: list[torch.nn.Parameter], **kw: Any) -> torch.optim.Optimizer:
    groups = [{"params": [p], "matrix_axes": axes} for p, (_, axes) in zip(params, LAYOUT.values(), strict=True)]
    return muon_torch.Muon(groups, lr=LR, **kw)


# Measured (float64 with eps=1e-16, float32 with the default eps): see test_parity_grid.py for
# the reasoning; worst errors measured here: float64 1.5e-15, float32 6.9e-7.
@pytest.mark.parametrize("method", ["ns", "svd"])
@pytest.mark.parametrize("dtype,eps,tol", [pytest.param(np.float64, 1e-16, 1e-12, marks=pytest.mark.x64),
                                           (np.float32, 1e-8, 1e-5)])
def test_stacked_matrices_match_oracle(method: str, dtype: Any, eps: float, tol: float) -> None:
    config = dict(method=method, eps=eps, beta=0.9, weight_decay=0.1, rms_scale=True, clip_grad_norm=None)
    oracle = run_oracle({**config, "matrix_axes": _oracle_axes()}, PARAMS, GRADS)
    tx = muon_jax.muon(LR, **config, matrix_axes={k: axes for k, (_, axes) in LAYOUT.items()})
    results = {
        "torch": run_torch(config, PARAMS, GRADS, dtype, make_optimizer=_torch_groups),
        "jax": run_jax(config, PARAMS, GRADS, dtype, tx=tx),
    }
    for name, (params, momentum) in results.items():
        assert max_rel_err(params, oracle[0], PARAMS) <= tol, name
        assert max_rel_err(momentum, oracle[1]) <= tol, name
    assert max_rel_err(results["torch"][0], results["jax"][0], PARAMS) <= tol


def test_stacked_differs_from_rms_default() -> None:
    """The axes description is used: without it a 3-D stack takes the RMS path."""
    config = dict(method="svd", eps=1e-8, beta=0.9, weight_decay=0.0, rms_scale=True, clip_grad_norm=None)
    with_axes = run_torch(config, PARAMS, GRADS[:1], np.float64, make_optimizer=_torch_groups)[0]
    default = run_torch(config, PARAMS, GRADS[:1], np.float64)[0]
    assert max_rel_err(with_axes, default, PARAMS) > 1e-3
