"""Orthogonalisation of (batched) matrices: the math of the JAX twin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
from jax import Array, lax
from jax.typing import ArrayLike

from muon_common import (
    DEFAULTS,
    Hyperparameters,
    LowPrecisionDtype,
    Messages,
    Method,
    Normalization,
    gram_restarts,
    ns_schedule,
    use_gram,
)
from muon_common._docs import document_hyperparameters

__all__ = ["orthogonalize"]

def _matmul(x: Array, y: Array, acc: Any) -> Array:
    """``x @ y`` accumulated in ``acc``. Operands of float32 or wider are multiplied in full
    precision (``Precision.HIGHEST``) on every backend: JAX's default on a GPU rounds float32
    operands to TF32 or bfloat16 first, where torch multiplies float32 in float32, so the twins
    would part at about 1e-3 there. bfloat16 operands keep the default (they are exact)."""
    precision = lax.Precision.HIGHEST if jnp.finfo(x.dtype).bits >= 32 else None
    return jnp.matmul(x, y, preferred_element_type=acc, precision=precision)


def newton_schulz(G: Array, coefficients: Sequence[tuple[float, float, float]], eps: float,
                  norm_scale: float = 1.0, compute_dtype: str | None = None,
                  normalization: str = "frobenius", gram: bool | None = None) -> Array:
    r"""Odd-polynomial Newton–Schulz iteration on every trailing matrix of ``G``: the start,
    steps and normalisations that :class:`muon_common.NSMethod` describes, in JAX.

    ``gram`` picks the form of the steps: the Gram form (:func:`gram_newton_schulz`) or the
    standard one; ``None`` (the optimizers' choice) takes the cheaper for this shape and precision
    (``muon_common.use_gram``). Both give the same result up to rounding. Each step
    accumulates in float32 at least and rounds once, as torch's fused ``baddbmm`` does.
    """
    rows, cols = G.shape[-2:]
    s = jnp.max(jnp.abs(G), axis=(-2, -1), keepdims=True)
    s = jnp.where(s > 0, s, jnp.ones_like(s))
    X = G / s
    if normalization == "frobenius":
        sq = jnp.sum(jnp.square(X), axis=(-2, -1), keepdims=True)
        X = X / (jnp.sqrt(sq + (cols + 1) * eps / jnp.square(s)) * norm_scale)
    if compute_dtype is not None:
        X = X.astype(compute_dtype)
    # Each step accumulates in float32 at least and rounds once, as torch's fused
    # ``baddbmm`` does in bfloat16 (three separate roundings cost 10x the error there).
    acc = jnp.promote_types(X.dtype, jnp.float32)

    def mm(x: Array, y: Array) -> Array:
        return _matmul(x, y, acc)

    transposed = rows > cols
    if transposed:
        X = jnp.swapaxes(X, -1, -2)
    gram = use_gram(rows, cols, coefficients, low_precision=X.dtype.itemsize < 4) if gram is None else gram
    A = None  # the next step's Gram matrix (in ``acc``), when the normalisation has formed it already
    if normalization == "aol":
        S = mm(X, jnp.swapaxes(X, -1, -2))
        if not gram:  # rounded like every step's Gram matrix; the Gram form keeps it unrounded
            S = S.astype(X.dtype).astype(acc)
        row_sums = jnp.sum(jnp.abs(S), axis=-1, keepdims=True) + eps / jnp.square(s.astype(acc))
        d = lax.rsqrt(jnp.maximum(row_sums, jnp.finfo(acc).tiny)) / norm_scale
        A = d * S * jnp.swapaxes(d, -1, -2)
        X = (d * X.astype(acc)).astype(X.dtype)
    if gram:
        X = gram_newton_schulz(X, A, coefficients)
    else:
        for a, b, c in coefficients:
            A = mm(X, jnp.swapaxes(X, -1, -2)).astype(X.dtype) if A is None else A.astype(X.dtype)
            if c != 0.0:
                A = (b * A.astype(acc) + c * mm(A, A)).astype(X.dtype)
                b = 1.0
            X = (a * X.astype(acc) + b * mm(A, X)).astype(X.dtype)
            A = None
    if transposed:
        X = jnp.swapaxes(X, -1, -2)
    return X.astype(G.dtype)


def gram_newton_schulz(X: Array, A: Array | None, coefficients: Sequence[tuple[float, float, float]]) -> Array:
    r"""The Newton–Schulz steps on a wide ``X`` (``s x l``, ``s < l``) in Gram form, as
    :func:`muon_common.gram_costs` describes: ``s x s`` matmuls between the first ``A = X X^T``
    (passed in if already formed, in float32 at least; else ``None``) and the final ``Q X``.
    """
    acc = jnp.promote_types(X.dtype, jnp.float32)

    def mm(x: Array, y: Array) -> Array:
        return _matmul(x, y, acc)

    eye = jnp.eye(X.shape[-2], dtype=acc)
    Q: Array | None = None
    last, restarts = len(coefficients) - 1, gram_restarts(coefficients)
    for k, (a, b, c) in enumerate(coefficients):
        if k in restarts and Q is not None:  # never k = 0
            X, Q, A = mm(Q.astype(X.dtype), X).astype(X.dtype), None, None
        if A is None:
            A = mm(X, jnp.swapaxes(X, -1, -2))
        P = b * A + a * eye
        if c != 0.0:
            P = P + c * mm(A, A)
        Q = P if Q is None else mm(P, Q)
        A = None if k == last or k + 1 in restarts else mm(P, mm(A, P))
    return X if Q is None else mm(Q.astype(X.dtype), X).astype(X.dtype)


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
    return _matmul(U, Vh * (S > tol).astype(X.dtype)[..., None], X.dtype).astype(G.dtype)


def orthogonalize_(G: Array, method: Method, ns_iters: int, eps: float,
                  dtype: str | None = None, normalization: str = "frobenius") -> Array:
    """Unchecked :func:`orthogonalize` for the optimizer's hot path."""
    if method == "svd":
        return svd_polar(G)
    coefficients, norm_scale = ns_schedule(method, ns_iters)
    return newton_schulz(G, coefficients, eps, norm_scale, dtype, normalization)


@document_hyperparameters(("method", "ns_iters", "eps", "normalization"))
def orthogonalize(
    G: ArrayLike,
    method: Method = DEFAULTS["method"],
    ns_iters: int = DEFAULTS["ns_iters"],
    eps: float = DEFAULTS["eps"],
    dtype: LowPrecisionDtype | None = None,
    normalization: Normalization = DEFAULTS["normalization"],
) -> Array:
    r"""Approximate the polar factor ``G (G^T G)^{-1/2}`` of each trailing matrix.

    Args:
      G: an array of shape ``(..., m, n)``; leading axes are batch axes and each
        trailing ``m x n`` matrix is orthogonalised on its own.
      {hyperparameters}
      dtype: ``"bfloat16"`` runs the Newton–Schulz steps in bfloat16; ``None`` in
        ``G``'s dtype.

    Returns:
      An array of the shape and dtype of ``G``.

    Examples:
      >>> import jax, jax.numpy as jnp, muon_jax
      >>> G = jax.random.normal(jax.random.key(0), (2, 64, 32))
      >>> U = muon_jax.orthogonalize(G, method="svd")
      >>> bool(jnp.allclose(U.mT @ U, jnp.eye(32), atol=1e-5))
      True
      >>> muon_jax.orthogonalize(G, method="polar_express").shape
      (2, 64, 32)

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      Amsel et al., "The Polar Express", arXiv:2505.16932, 2025.
    """
    Hyperparameters(eps=eps, ns_iters=ns_iters, method=method, orthogonalize_dtype=dtype,
                    normalization=normalization)  # validates
    G = jnp.asarray(G)
    if G.ndim < 2:
        raise ValueError(Messages.ORTHOGONALIZE_NDIM.format(shape=tuple(G.shape)))
    return orthogonalize_(G, method, ns_iters, eps, dtype, normalization)
