"""A plain numpy float64 Muon, written straight from the reference spec.

No cleverness on purpose: the coupled Newton–Schulz inverse square root of
``G^T G + eps I`` exactly as the reference writes it (column side, three matmuls
a step), ``U V^T`` from a full SVD, one parameter at a time. Both twins are
held against this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


def inv_sqrt_newton_schulz(A: np.ndarray, iters: int, eps: float) -> np.ndarray:
    """``A^{-1/2}`` of a symmetric positive definite ``A`` by coupled Newton–Schulz."""
    trace = np.trace(A)
    A_norm = A / (trace + eps)
    eye = np.eye(A.shape[-1])
    Y = A_norm.copy()
    Z = eye.copy()
    for _ in range(iters):
        T = 0.5 * (3.0 * eye - Z @ Y)
        Y = Y @ T
        Z = T @ Z
    return Z / np.sqrt(trace + eps)


def orthogonalize_ns(G: np.ndarray, iters: int, eps: float) -> np.ndarray:
    """``G (G^T G + eps I)^{-1/2}`` with the inverse square root by Newton–Schulz."""
    S = G.T @ G + eps * np.eye(G.shape[1])
    return G @ inv_sqrt_newton_schulz(S, iters, eps)


def orthogonalize_svd(G: np.ndarray) -> np.ndarray:
    """Nearest orthogonal matrix ``U V^T`` of ``G = U S V^T``."""
    U, _, Vh = np.linalg.svd(G, full_matrices=False)
    return U @ Vh


def orthogonalize_stacked(m: np.ndarray, rows: tuple[int, ...], cols: tuple[int, ...],
                          fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``fn`` to every matrix of ``m`` whose row/col axes are ``rows``/``cols``, one at a time."""
    batch = [a for a in range(m.ndim) if a not in rows + cols]
    perm = batch + list(rows) + list(cols)
    t = np.transpose(m, perm)
    batch_shape = t.shape[: len(batch)]
    n_rows = int(np.prod([m.shape[a] for a in rows]))
    n_cols = int(np.prod([m.shape[a] for a in cols]))
    t = t.reshape((*batch_shape, n_rows, n_cols))
    out = np.empty_like(t)
    for idx in np.ndindex(*batch_shape):
        out[idx] = fn(t[idx])
    return np.transpose(out.reshape([m.shape[a] for a in perm]), np.argsort(perm))


@dataclass
class OracleMuon:
    """The reference optimizer over a dict of float64 numpy arrays."""

    lr: float
    beta: float = 0.9
    weight_decay: float = 0.01
    eps: float = 1e-8
    ns_iters: int = 5
    method: str = "ns"
    rms_scale: bool = True
    clip_grad_norm: float | None = None
    #: name -> (row axes, col axes) for stacked matrices; others follow the 2-D rule.
    matrix_axes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    momentum: dict[str, np.ndarray] = field(default_factory=dict)

    def _orthogonalize(self, m: np.ndarray) -> np.ndarray:
        if self.method == "svd":
            return orthogonalize_svd(m)
        return orthogonalize_ns(m, self.ns_iters, self.eps)

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        for name, p in params.items():
            g = grads[name]
            m = self.momentum.setdefault(name, np.zeros_like(p))
            m *= self.beta
            m += (1.0 - self.beta) * g
            if self.clip_grad_norm is not None:
                norm = np.sqrt(np.sum(m * m))
                if norm > self.clip_grad_norm:
                    m *= self.clip_grad_norm / (norm + 1e-12)
            if self.weight_decay != 0.0:
                p *= 1.0 - self.lr * self.weight_decay
            if name in self.matrix_axes:
                rows, cols = self.matrix_axes[name]
                U = orthogonalize_stacked(m, rows, cols, self._orthogonalize)
            elif p.ndim == 2:
                U = self._orthogonalize(m)
            elif self.rms_scale:
                U = m / np.sqrt(np.mean(m * m) + self.eps)
            else:
                U = m
            p -= self.lr * U
