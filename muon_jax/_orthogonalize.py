"""Orthogonalisation of (batched) matrices: the math of the JAX twin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
from jax import Array, lax
from jax.typing import ArrayLike

from muon_common import (
    DEFAULTS,
    GRAM_RESTART_EVERY,
    Messages,
    ns_schedule,
    use_gram,
    validate_hyperparameters,
)

__all__ = ["orthogonalize"]

Method = str | Sequence[Sequence[float]]


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
    r"""Odd-polynomial Newton–Schulz iteration on every trailing matrix of ``G``.

    ``gram`` picks the form of the steps: the Gram form (:func:`gram_newton_schulz`) or the
    standard one; ``None`` (the optimizers' choice) takes the cheaper for this shape
    (``muon_common.use_gram``). Both give the same result up to rounding.

    Per step ``X <- a X + b (X X^T) X + c (X X^T)^2 X``, with ``X X^T`` formed on the
    smaller side of the matrix (``X`` is ``s x l``, ``s <= l``). For ``c = 0`` this costs two
    matmuls a step, otherwise three. With ``compute_dtype="bfloat16"`` the steps run in
    bfloat16 and the result is cast back. The start ``X0`` depends on ``normalization``
    (``k = norm_scale``, the method's safety factor):

    * ``"frobenius"`` (the reference): ``X0 = G / (k sqrt(||G||_F^2 + (n + 1) eps))`` with
      ``n = G.shape[-1]``, the trace normalisation of ``G^T G + eps I``; computed in ``G``'s
      dtype.
    * ``"aol"`` (Turbo-Muon): with ``S = X X^T`` on the small side,
      ``X0 = D X``, ``D = diag(d)``, ``d_i = 1 / (k sqrt(sum_j |S_ij| + eps))``: the
      almost-orthogonal-layer rescaling of ``S + eps I``. By the Schur test
      ``||X0||_2 <= 1 / k``, usually with a larger smallest singular value than the
      Frobenius start. The first step reuses ``S`` as ``X0 X0^T = D S D`` (an elementwise
      scaling), so the matmul count is unchanged. ``S`` is formed in the compute dtype like
      every step's Gram matrix; the row sums (clamped below at the smallest normal number,
      so that a row whose squares underflow keeps a finite ``d``), ``d``, ``D X`` and
      ``D S D`` are computed in float32 (or ``G``'s dtype if wider) and rounded once.
      ``D`` is not a multiple of ``I`` unless all row sums are equal, so ``X0`` has other
      singular vectors than ``G``: the iteration tends to the polar factor of ``D X``,
      which differs from that of ``G`` by a rotation (``R U V^T`` with ``R`` orthogonal,
      ``s x s``). The two agree for equal row sums; ``benchmarks/quality.py`` measures the
      gap (0.7% relative on a Gaussian matrix, 43% on a real momentum matrix). The
      method's coefficients are applied as they are; Turbo-Muon's code instead runs the
      last four triples of Dion's five-step table.

    ``G`` is first divided by its largest entry ``m`` (the same ``X0`` in exact arithmetic,
    with ``eps`` read as ``eps / m^2``): ``||G||^2`` and ``G G^T`` would overflow float32 for
    entries above ~1e19 and underflow below ~1e-19. So a zero matrix maps to zero and an
    input far below ``sqrt(eps)`` to nearly zero, as in the reference.

    The reference also adds ``eps I`` inside its iteration; that shift moves the
    result by about ``30 eps / ||G||_F^2`` relative (measured, 5 steps) and is
    not applied here.

    References:
      Boissin, Massena, Mamalet, Serrurier (2025), "Turbo-Muon: Accelerating
      Orthogonality-Based Optimization with Pre-Conditioning", arXiv:2512.04632, and its
      code (github.com/thib-s/flash-newton-schulz, ``NS_ours``): the AOL rescaling fused into
      the first step. Prach and Lampert (2022), "Almost-Orthogonal Layers for Efficient
      General-Purpose Lipschitz Networks", arXiv:2208.03160: ``d`` and the bound.
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
    gram = use_gram(rows, cols, coefficients) if gram is None else gram
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
    r"""The Newton–Schulz steps on a wide ``X`` (``s x l``, ``s < l``) in Gram form.

    With ``p(A) = a I + b A + c A^2``, a step is ``X <- p(A) X`` with ``A = X X^T``; since
    ``p(A)`` commutes with ``A``, the next Gram matrix is ``p(A) A p(A)``, and
    ``X_k = Q_k X_0`` with ``Q <- p(A) Q``. So only ``s x s`` matmuls run between the first
    ``A`` and the final ``Q X_0``; before every step ``k`` with ``k % GRAM_RESTART_EVERY == 0``
    the iterate and its Gram matrix are formed afresh, which keeps ``A`` positive
    semidefinite (it drifts in low precision). ``A``, ``p(A)`` and ``Q`` are kept in float32
    at least, and ``A`` is formed there even from a bfloat16 ``X``: rounded to bfloat16, its
    zero eigenvalues (a rank-deficient input) turn into negative ones of about ``4e-3``, which
    ``p`` grows to NaN within ten steps (measured). ``A`` is ``X X^T`` (in float32 at least)
    if already formed, else ``None``. In exact arithmetic the result is that of the standard
    steps.

    References:
      Dao-AILab, gram-newton-schulz (2026): the Gram iteration with restarts, used by
      microsoft/dion and DeepSpeed for rectangular matrices.
    """
    acc = jnp.promote_types(X.dtype, jnp.float32)

    def mm(x: Array, y: Array) -> Array:
        return _matmul(x, y, acc)

    eye = jnp.eye(X.shape[-2], dtype=acc)
    Q: Array | None = None
    last = len(coefficients) - 1
    for k, (a, b, c) in enumerate(coefficients):
        if Q is not None and k % GRAM_RESTART_EVERY == 0:
            X, Q, A = mm(Q.astype(X.dtype), X).astype(X.dtype), None, None
        if A is None:
            A = mm(X, jnp.swapaxes(X, -1, -2))
        P = b * A + a * eye
        if c != 0.0:
            P = P + c * mm(A, A)
        Q = P if Q is None else mm(P, Q)
        A = None if k == last or (k + 1) % GRAM_RESTART_EVERY == 0 else mm(P, mm(A, P))
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


def orthogonalize(
    G: ArrayLike,
    method: Method = DEFAULTS["method"],
    ns_iters: int = DEFAULTS["ns_iters"],
    eps: float = DEFAULTS["eps"],
    dtype: str | None = None,
    normalization: str = DEFAULTS["normalization"],
) -> Array:
    r"""Approximate the polar factor ``G (G^T G)^{-1/2}`` of each trailing matrix.

    Args:
      G: an array of shape ``(..., m, n)``; leading axes are batch axes and each
        trailing ``m x n`` matrix is orthogonalised on its own.
      method: ``"ns"`` (the reference's cubic Newton–Schulz, ``X <- 1.5 X - 0.5 X X^T X``),
        ``"quintic"`` (Keller Jordan's), ``"polar_express"`` (Amsel et al. 2025), a list of
        per-step ``(a, b, c)`` triples, or ``"svd"`` (exact ``U V^T``).
      ns_iters: Newton–Schulz steps (ignored by ``"svd"``).
      eps: stabiliser of the starting normalisation.
      dtype: ``"bfloat16"`` runs the Newton–Schulz steps in bfloat16; ``None`` in
        ``G``'s dtype.
      normalization: how the Newton–Schulz input is scaled before the first step:
        ``"frobenius"`` (the reference, ``G / ||G||_F``) or ``"aol"`` (Turbo-Muon's
        per-row rescaling ``D G = diag(sum_j |G G^T|_ij)^(-1/2) G`` on the smaller side, at
        no extra matmul; the steps then tend to the polar factor of ``D G``, not of ``G``:
        see :func:`newton_schulz`). Not allowed with ``"svd"``.

    Returns:
      An array of the shape and dtype of ``G``.
    """
    validate_hyperparameters(
        beta=DEFAULTS["beta"], weight_decay=0.0, eps=eps, ns_iters=ns_iters, method=method,
        rms_scale=True, clip_grad_norm=None, orthogonalize_dtype=dtype, normalization=normalization,
    )
    G = jnp.asarray(G)
    if G.ndim < 2:
        raise ValueError(Messages.ORTHOGONALIZE_NDIM.format(shape=tuple(G.shape)))
    return orthogonalize_(G, method, ns_iters, eps, dtype, normalization)
