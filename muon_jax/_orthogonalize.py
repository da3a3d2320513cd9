"""Orthogonalisation of (batched) matrices: the math of the JAX twin."""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from muon_common import DEFAULTS, Messages, ns_schedule, validate_hyperparameters

__all__ = ["orthogonalize"]

Method = str | Sequence[Sequence[float]]


def newton_schulz(G: Array, coefficients: Sequence[tuple[float, float, float]], eps: float,
                  norm_scale: float = 1.0, compute_dtype: str | None = None) -> Array:
    r"""Odd-polynomial Newton–Schulz iteration on every trailing matrix of ``G``.

    ``X0 = G / (s sqrt(||G||_F^2 + (n + 1) eps))`` with ``n = G.shape[-1]`` (the
    reference's trace normalisation of ``G^T G + eps I``; ``s = norm_scale``), then per step
    ``X <- a X + b (X X^T) X + c (X X^T)^2 X``, with ``X X^T`` formed on the
    smaller side of the matrix. For ``c = 0`` this costs two matmuls a step.
    With ``compute_dtype="bfloat16"`` the steps run in bfloat16 (the normalisation in
    ``G``'s dtype) and the result is cast back.

    The reference also adds ``eps I`` inside its iteration; that shift moves the
    result by about ``30 eps / ||G||_F^2`` relative (measured, 5 steps) and is
    not applied here.
    """
    rows, cols = G.shape[-2:]
    # Divide by the largest entry first (the same X0 in exact arithmetic): ||G||^2 would
    # overflow float32 for entries above ~1e19 and underflow below ~1e-19.
    s = jnp.max(jnp.abs(G), axis=(-2, -1), keepdims=True)
    s = jnp.where(s > 0, s, jnp.ones_like(s))
    X = G / s
    sq = jnp.sum(jnp.square(X), axis=(-2, -1), keepdims=True)
    X = X / (jnp.sqrt(sq + (cols + 1) * eps / jnp.square(s)) * norm_scale)
    if compute_dtype is not None:
        X = X.astype(compute_dtype)
    # Each step accumulates in float32 at least and rounds once, as torch's fused
    # ``baddbmm`` does in bfloat16 (three separate roundings cost 10x the error there).
    acc = jnp.promote_types(X.dtype, jnp.float32)

    def mm(x: Array, y: Array) -> Array:
        return jnp.matmul(x, y, preferred_element_type=acc)

    transposed = rows > cols
    if transposed:
        X = jnp.swapaxes(X, -1, -2)
    for a, b, c in coefficients:
        A = mm(X, jnp.swapaxes(X, -1, -2)).astype(X.dtype)
        if c != 0.0:
            A = (b * A.astype(acc) + c * mm(A, A)).astype(X.dtype)
            b = 1.0
        X = (a * X.astype(acc) + b * mm(A, X)).astype(X.dtype)
    if transposed:
        X = jnp.swapaxes(X, -1, -2)
    return X.astype(G.dtype)


def svd_polar(G: Array) -> Array:
    r"""Exact polar factor ``U V^T`` of every trailing matrix, ``G = U S V^T``.

    Directions whose singular value is below ``eps_dtype * sigma_max`` (the
    numerical null space, where ``U`` and ``V`` are arbitrary) are left out, so a zero
    matrix gives zero and a rank-deficient one its partial isometry.
    """
    X = G.astype(jnp.promote_types(G.dtype, jnp.float32))  # LAPACK has no half precision
    s = jnp.max(jnp.abs(X), axis=(-2, -1), keepdims=True)
    s = jnp.where(s > 0, s, jnp.ones_like(s))
    U, S, Vh = jnp.linalg.svd(X / s, full_matrices=False)
    tol = S[..., :1] * jnp.finfo(X.dtype).eps
    return (U @ (Vh * (S > tol).astype(X.dtype)[..., None])).astype(G.dtype)


def orthogonalize_(G: Array, method: Method, ns_iters: int, eps: float,
                  dtype: str | None = None, normalization: str = "frobenius") -> Array:
    """Unchecked :func:`orthogonalize` for the optimizer's hot path."""
    if method == "svd":
        return svd_polar(G)
    coefficients, norm_scale = ns_schedule(method, ns_iters)
    return newton_schulz(G, coefficients, eps, norm_scale, dtype)


def orthogonalize(
    G: ArrayLike,
    method: Method = DEFAULTS["method"],
    ns_iters: int = DEFAULTS["ns_iters"],
    eps: float = DEFAULTS["eps"],
    dtype: str | None = None,
) -> Array:
    r"""Approximate the polar factor ``G (G^T G)^{-1/2}`` of each trailing matrix.

    Args:
      G: an array of shape ``(..., m, n)``; leading axes are batch axes and each
        trailing ``m x n`` matrix is orthogonalised on its own.
      method: ``"ns"`` (the reference's cubic Newton–Schulz, ``X <- 1.5 X - 0.5 X X^T X``),
        ``"quintic"`` (Keller Jordan's), ``"polar_express"`` (Amsel et al. 2025), a list of
        per-step ``(a, b, c)`` triples, or ``"svd"`` (exact ``U V^T``).
      ns_iters: Newton–Schulz steps (ignored by ``"svd"``).
      eps: stabiliser of the Frobenius normalisation.
      dtype: ``"bfloat16"`` runs the Newton–Schulz steps in bfloat16; ``None`` in
        ``G``'s dtype.

    Returns:
      An array of the shape and dtype of ``G``.
    """
    validate_hyperparameters(
        beta=DEFAULTS["beta"], weight_decay=0.0, eps=eps, ns_iters=ns_iters, method=method,
        rms_scale=True, clip_grad_norm=None, orthogonalize_dtype=dtype,
    )
    G = jnp.asarray(G)
    if G.ndim < 2:
        raise ValueError(Messages.ORTHOGONALIZE_NDIM.format(shape=tuple(G.shape)))
    return orthogonalize_(G, method, ns_iters, eps, dtype)
