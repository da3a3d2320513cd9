"""Orthogonalisation of (batched) matrices: the math of the torch twin."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from muon_common import (
    DEFAULTS,
    GRAM_RESTART_EVERY,
    Hyperparameters,
    LowPrecisionDtype,
    Messages,
    Method,
    Normalization,
    ns_schedule,
    use_gram,
)
from muon_common._docs import document_hyperparameters

__all__ = ["orthogonalize"]

def newton_schulz(G: Tensor, coefficients: Sequence[tuple[float, float, float]], eps: float,
                  norm_scale: float = 1.0, compute_dtype: str | None = None,
                  normalization: str = "frobenius", gram: bool | None = None) -> Tensor:
    r"""Odd-polynomial Newton–Schulz iteration on every trailing matrix of ``G``: the start,
    steps and normalisations that :class:`muon_common.NSMethod` describes, in torch.

    ``gram`` picks the form of the steps: the Gram form (:func:`gram_newton_schulz`) or the
    standard one; ``None`` (the optimizers' choice) takes the cheaper for this shape
    (``muon_common.use_gram``). Both give the same result up to rounding. Each standard step
    is two fused ``baddbmm`` calls (one rounding each, also in bfloat16).
    """
    rows, cols = G.shape[-2:]
    X = G.reshape(-1, rows, cols)
    s = X.abs().amax(dim=(-2, -1), keepdim=True)
    s = torch.where(s > 0, s, torch.ones_like(s))
    X = X / s
    if normalization == "frobenius":
        sq = X.square().sum(dim=(-2, -1), keepdim=True)
        X = X / (torch.sqrt(sq + (cols + 1) * eps / s.square()) * norm_scale)
    if compute_dtype is not None:
        X = X.to(getattr(torch, compute_dtype))
    transposed = rows > cols
    if transposed:
        X = X.mT
    gram = use_gram(rows, cols, coefficients) if gram is None else gram
    acc = torch.promote_types(X.dtype, torch.float32)
    A = None  # the next step's Gram matrix (in ``acc``), when the normalisation has formed it already
    if normalization == "aol":
        # The Gram form keeps its Gram matrices unrounded (see gram_newton_schulz).
        S = _gram_matrix(X, acc) if gram else torch.bmm(X, X.mT).to(acc)
        row_sums = S.abs().sum(dim=-1, keepdim=True) + eps / s.to(acc).square()
        d = torch.rsqrt(row_sums.clamp_min(torch.finfo(acc).tiny)) / norm_scale
        A = d * S * d.mT
        X = (d * X.to(acc)).to(X.dtype)
    if gram:
        X = gram_newton_schulz(X, A, coefficients)
    else:
        for a, b, c in coefficients:
            A = torch.bmm(X, X.mT) if A is None else A.to(X.dtype)
            if c != 0.0:
                A = torch.baddbmm(A, A, A, beta=b, alpha=c)
                b = 1.0
            X = torch.baddbmm(X, A, X, beta=a, alpha=b)
            A = None
    if transposed:
        X = X.mT
    return X.to(G.dtype).reshape(G.shape)


def _gram_matrix(X: Tensor, acc: torch.dtype) -> Tensor:
    """``X X^T`` in ``acc``: exact products of a bfloat16 ``X``, summed in float32."""
    Xa = X.to(acc)
    return torch.bmm(Xa, Xa.mT)


def gram_newton_schulz(X: Tensor, A: Tensor | None, coefficients: Sequence[tuple[float, float, float]]) -> Tensor:
    r"""The Newton–Schulz steps on a wide ``X`` (``s x l``, ``s < l``) in Gram form, as
    :func:`muon_common.gram_costs` describes: ``s x s`` matmuls between the first ``A = X X^T``
    (passed in if already formed, in float32 at least; else ``None``) and the final ``Q X``.
    """
    acc = torch.promote_types(X.dtype, torch.float32)
    eye = torch.eye(X.shape[-2], dtype=acc, device=X.device)
    Q: Tensor | None = None
    last = len(coefficients) - 1
    for k, (a, b, c) in enumerate(coefficients):
        if Q is not None and k % GRAM_RESTART_EVERY == 0:
            X, Q, A = torch.bmm(Q.to(X.dtype), X), None, None
        if A is None:
            A = _gram_matrix(X, acc)
        P = b * A + a * eye
        if c != 0.0:
            P = torch.baddbmm(P, A, A, alpha=c)
        Q = P if Q is None else torch.bmm(P, Q)
        A = None if k == last or (k + 1) % GRAM_RESTART_EVERY == 0 else torch.bmm(P, torch.bmm(A, P))
    return X if Q is None else torch.bmm(Q.to(X.dtype), X)


def svd_polar(G: Tensor) -> Tensor:
    r"""Exact polar factor ``U V^T`` of every trailing matrix, ``G = U S V^T``.

    Directions whose singular value is below ``eps_dtype * sigma_max`` (the
    numerical null space, where ``U`` and ``V`` are arbitrary) are left out, so a zero
    matrix gives zero and a rank-deficient one its partial isometry.
    """
    X = G.float() if G.dtype in (torch.bfloat16, torch.float16) else G  # LAPACK has no half precision
    s = X.abs().amax(dim=(-2, -1), keepdim=True)
    s = torch.where(s > 0, s, torch.ones_like(s))
    U, S, Vh = torch.linalg.svd(X / s, full_matrices=False)
    tol = S[..., :1] * torch.finfo(X.dtype).eps
    return (U @ (Vh * (S > tol).to(X.dtype).unsqueeze(-1))).to(G.dtype)


def orthogonalize_(G: Tensor, method: Method, ns_iters: int, eps: float,
                  dtype: str | None = None, normalization: str = "frobenius") -> Tensor:
    """Unchecked :func:`orthogonalize` for the optimizer's hot path."""
    if method == "svd":
        return svd_polar(G)
    coefficients, norm_scale = ns_schedule(method, ns_iters)
    return newton_schulz(G, coefficients, eps, norm_scale, dtype, normalization)


@torch.no_grad()
@document_hyperparameters(("method", "ns_iters", "eps", "normalization"))
def orthogonalize(
    G: Tensor,
    method: Method = DEFAULTS["method"],
    ns_iters: int = DEFAULTS["ns_iters"],
    eps: float = DEFAULTS["eps"],
    dtype: LowPrecisionDtype | None = None,
    normalization: Normalization = DEFAULTS["normalization"],
) -> Tensor:
    r"""Approximate the polar factor ``G (G^T G)^{-1/2}`` of each trailing matrix.

    Args:
      G: a tensor of shape ``(..., m, n)``; leading axes are batch axes and each
        trailing ``m x n`` matrix is orthogonalised on its own.
      {hyperparameters}
      dtype: ``"bfloat16"`` runs the Newton–Schulz steps in bfloat16; ``None`` in
        ``G``'s dtype.

    Returns:
      A tensor of the shape and dtype of ``G``.

    Examples:
      >>> import torch, muon_torch
      >>> G = torch.randn(2, 64, 32, dtype=torch.float64)
      >>> U = muon_torch.orthogonalize(G, method="svd")
      >>> torch.allclose(U.mT @ U, torch.eye(32, dtype=torch.float64).expand(2, 32, 32))
      True
      >>> muon_torch.orthogonalize(G, method="polar_express").shape
      torch.Size([2, 64, 32])

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      Amsel et al., "The Polar Express", arXiv:2505.16932, 2025.
    """
    Hyperparameters(eps=eps, ns_iters=ns_iters, method=method, orthogonalize_dtype=dtype,
                    normalization=normalization)  # validates
    if G.ndim < 2:
        raise ValueError(Messages.ORTHOGONALIZE_NDIM.format(shape=tuple(G.shape)))
    return orthogonalize_(G, method, ns_iters, eps, dtype, normalization)
