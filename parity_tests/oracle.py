"""A plain numpy float64 Muon, written straight from the reference spec.

No cleverness on purpose: the coupled Newton–Schulz inverse square root of
``G^T G + eps I`` exactly as the reference writes it (column side, three matmuls
a step), ``U V^T`` from a full SVD, one parameter at a time. Both twins are
held against this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np

from muon_common import NS_METHODS


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


def orthogonalize_polynomial(G: np.ndarray, steps: list[tuple[float, float, float]], norm_scale: float,
                             eps: float, normalization: str = "frobenius") -> np.ndarray:
    """The odd-polynomial iteration ``X <- a X + b (X X^T) X + c (X X^T)^2 X``, as written.

    ``normalization="frobenius"`` starts from ``G / (norm_scale sqrt(||G||_F^2 + (n+1) eps))``;
    ``"aol"`` from ``diag(d) X`` on the small side ``X`` (``G`` or ``G^T``, fewer rows), with
    ``d_i = 1 / (norm_scale sqrt(sum_j |X X^T|_ij + eps))``.
    """
    transposed = normalization == "aol" and G.shape[0] > G.shape[1]  # AOL scales the rows of the small side
    X = G.T if transposed else G
    if normalization == "aol":
        S = X @ X.T
        d = 1.0 / (norm_scale * np.sqrt(np.sum(np.abs(S), axis=1) + eps))
        X = d[:, None] * X
    else:
        X = X / (norm_scale * np.sqrt(np.sum(G * G) + (G.shape[1] + 1) * eps))
    for a, b, c in steps:
        A = X @ X.T
        X = a * X + b * (A @ X) + c * (A @ A @ X)
    return X.T if transposed else X


def to_bfloat16(x: np.ndarray) -> np.ndarray:
    """Round to bfloat16 (nearest, ties to even) and back to float64."""
    return x.astype(ml_dtypes.bfloat16).astype(np.float64)


@dataclass
class OracleMuon:
    """The reference optimizer over a dict of float64 numpy arrays, plus the options.

    Options beyond the reference: ``method`` may name a polynomial method or be a list
    of triples; ``nesterov``; ``adjust_lr`` (torch layout: rows are the fan-out);
    ``momentum_dtype="bfloat16"`` rounds the stored momentum; ``neuron_norm`` (NorMuon)
    normalises each matrix's rows; ``adamw`` names the params that AdamW optimises instead.
    """

    lr: float
    beta: float = 0.9
    weight_decay: float = 0.01
    eps: float = 1e-8
    ns_iters: int = 5
    method: Any = "ns"
    rms_scale: bool = True
    clip_grad_norm: float | None = None
    nesterov: bool = False
    adjust_lr: str | None = None
    momentum_dtype: str | None = None
    neuron_norm: bool = False
    neuron_beta2: float = 0.95
    normalization: str = "frobenius"
    #: name -> (row axes, col axes) for stacked matrices; others follow the 2-D rule.
    matrix_axes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    #: names of the params optimised by AdamW, and its (lr, beta1, beta2).
    adamw: tuple[str, ...] = ()
    adamw_hyper: tuple[float, float, float] = (1e-3, 0.9, 0.999)
    momentum: dict[str, np.ndarray] = field(default_factory=dict)
    #: per param, the steps skipped because its gradient had a NaN/Inf.
    nonfinite_steps: dict[str, int] = field(default_factory=dict)
    adamw_state: dict[str, list[Any]] = field(default_factory=dict)
    #: per matrix, NorMuon's per-neuron second moment (torch layout: the columns reduced to 1).
    neuron_second_moment: dict[str, np.ndarray] = field(default_factory=dict)

    def _neuron_normalise(self, name: str, U: np.ndarray, rows: tuple[int, ...], cols: tuple[int, ...]) -> np.ndarray:
        """NorMuon: divide each neuron's (row's) update by the running RMS of that row, then
        give every matrix slice back the Frobenius norm it had."""
        v = self.neuron_second_moment.setdefault(name, np.zeros([1 if a in cols else n for a, n in enumerate(U.shape)]))
        v[...] = self.neuron_beta2 * v + (1.0 - self.neuron_beta2) * np.mean(U * U, axis=cols, keepdims=True)
        normed = U / (np.sqrt(v) + self.eps)
        before = np.sqrt(np.sum(U * U, axis=rows + cols, keepdims=True))
        after = np.sqrt(np.sum(normed * normed, axis=rows + cols, keepdims=True))
        ratio = np.divide(before, after, out=np.zeros_like(after), where=after > 0)
        return normed * ratio

    def _orthogonalize(self, m: np.ndarray) -> np.ndarray:
        if self.method == "svd":
            return orthogonalize_svd(m)
        if self.method == "ns" and self.normalization == "frobenius":
            return orthogonalize_ns(m, self.ns_iters, self.eps)
        if isinstance(self.method, str):
            table, norm_scale = NS_METHODS[self.method].coefficients, NS_METHODS[self.method].norm_scale
        else:
            table, norm_scale = tuple(self.method), 1.0
        steps = [table[min(k, len(table) - 1)] for k in range(self.ns_iters)]
        return orthogonalize_polynomial(m, steps, norm_scale, self.eps, self.normalization)

    def _lr_factor(self, fan_out: int, fan_in: int) -> float:
        if self.adjust_lr == "original":
            return float(np.sqrt(max(1.0, fan_out / fan_in)))
        if self.adjust_lr == "match_rms_adamw":
            return 0.2 * float(np.sqrt(max(fan_in, fan_out)))
        return 1.0

    def _adamw_step(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        lr, b1, b2 = self.adamw_hyper
        state = self.adamw_state.setdefault(name, [0, np.zeros_like(p), np.zeros_like(p)])
        state[0] += 1  # the step count advances even when the parameter sits the step out (optax's count)
        self.nonfinite_steps.setdefault(name, 0)
        if not np.all(np.isfinite(g)):
            self.nonfinite_steps[name] += 1
            return
        t, mu, nu = state
        mu *= b1
        mu += (1.0 - b1) * g
        nu *= b2
        nu += (1.0 - b2) * g * g
        mu_hat = mu / (1.0 - b1**t)
        nu_hat = nu / (1.0 - b2**t)
        p *= 1.0 - lr * self.weight_decay
        p -= lr * mu_hat / (np.sqrt(nu_hat) + self.eps)

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        for name, p in params.items():
            g = grads[name]
            if name in self.adamw:
                self._adamw_step(name, p, g)
                continue
            m = self.momentum.setdefault(name, np.zeros_like(p))
            self.nonfinite_steps.setdefault(name, 0)
            if not np.all(np.isfinite(g)):  # this parameter and its momentum sit this step out
                self.nonfinite_steps[name] += 1
                continue
            m *= self.beta
            m += (1.0 - self.beta) * g
            if self.clip_grad_norm is not None:
                norm = np.sqrt(np.sum(m * m))
                if norm > self.clip_grad_norm:
                    m *= self.clip_grad_norm / (norm + 1e-12)
            direction_input = self.beta * m + (1.0 - self.beta) * g if self.nesterov else m.copy()
            if self.momentum_dtype == "bfloat16":
                m[...] = to_bfloat16(m)
            if self.weight_decay != 0.0:
                p *= 1.0 - self.lr * self.weight_decay
            factor = 1.0
            if name in self.matrix_axes:
                rows, cols = self.matrix_axes[name]
                U = orthogonalize_stacked(direction_input, rows, cols, self._orthogonalize)
                factor = self._lr_factor(int(np.prod([p.shape[a] for a in rows])),
                                         int(np.prod([p.shape[a] for a in cols])))
                if self.neuron_norm:
                    U = self._neuron_normalise(name, U, rows, cols)
            elif p.ndim == 2:
                U = self._orthogonalize(direction_input)
                factor = self._lr_factor(*p.shape)
                if self.neuron_norm:
                    U = self._neuron_normalise(name, U, (0,), (1,))
            elif self.rms_scale:
                U = direction_input / np.sqrt(np.mean(direction_input * direction_input) + self.eps)
            else:
                U = direction_input
            p -= self.lr * factor * U
