"""The one place where the twins' `ns` and the reference formulation differ: eps.

The reference orthogonalises with the inverse square root of ``G^T G + eps I``; the
twins run the equivalent cubic polar iteration on ``X0 = G / sqrt(||G||^2 + (n+1) eps)``
(the same trace normalisation) without the ``eps I`` shift inside the iteration. The
shift adds ``delta = eps / (||G||^2 + (n+1) eps)`` to every eigenvalue of the normalised
Gram matrix; each cubic step grows the derivative of the result in ``delta`` by at most
``1.5^2``, so the relative difference is bounded by ``2.25^K * eps / ||G||_F^2`` for K
steps. Measured on the cases below: at most 0.2 of that bound (K=5) and 0.15 (K=8).
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import muon_jax
import muon_torch
from parity_tests.oracle import orthogonalize_ns

SHAPES = [(12, 12), (20, 8), (8, 20), (64, 64), (1, 10), (10, 1)]
SCALES = [1e-3, 1e-1, 1.0, 10.0]
ITERS = [1, 3, 5, 8]


@pytest.mark.x64  # float64 against the float64 reference
@pytest.mark.parametrize("shape,scale,iters", list(itertools.product(SHAPES, SCALES, ITERS)))
def test_ns_matches_reference_up_to_the_eps_term(shape: tuple[int, int], scale: float, iters: int) -> None:
    eps = 1e-8
    G = np.random.default_rng(0).standard_normal(shape) * scale
    reference = orthogonalize_ns(G, iters, eps)
    bound = 2.25**iters * eps / float(np.sum(G * G)) + 1e-13  # + float64 rounding floor
    for ours in (muon_torch.orthogonalize(torch.tensor(G), ns_iters=iters, eps=eps).numpy(),
                 np.asarray(muon_jax.orthogonalize(jnp.asarray(G), ns_iters=iters, eps=eps))):
        err = np.max(np.abs(ours - reference)) / np.max(np.abs(reference))
        assert err <= bound, f"relative difference {err:.3g} above the eps-term bound {bound:.3g}"
