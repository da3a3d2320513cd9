"""Orthogonalisation of (batched) matrices: the math of the torch twin."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

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

def newton_schulz(G: Tensor | Sequence[Tensor], coefficients: Sequence[tuple[float, float, float]], eps: float,
                  norm_scale: float = 1.0, compute_dtype: str | None = None,
                  normalization: str = "frobenius", gram: bool | None = None) -> Tensor:
    r"""Odd-polynomial Newton–Schulz iteration on every trailing matrix of ``G``: the start,
    steps and normalisations that :class:`muon_common.NSMethod` describes, in torch.

    ``gram`` picks the form of the steps: the Gram form (:func:`gram_newton_schulz`) or the
    standard one; ``None`` (the optimizers' choice) takes the cheaper for this shape and precision
    (``muon_common.use_gram``). Both give the same result up to rounding. Each standard step
    is two fused ``baddbmm`` calls (one rounding each, also in bfloat16).

    Eager, the large intermediates are written in place or into tensors reused from step to
    step (on a CPU a fresh 24 MB tensor cost more in page faults than a pass over it,
    measured); the values are bit for bit those of the plain ops. Under ``torch.compile`` the
    plain ops are traced and the compiler plans the memory.

    ``G`` may also be a sequence of tensors of the same trailing ``m x n`` and dtype (the
    optimizer's matrices of one shape): they are orthogonalised as one batch, returned as
    ``(batch, m, n)``, without stacking them first (eager, ``G / s`` is written part by part
    into the batch).
    """
    parts = [G] if isinstance(G, Tensor) else list(G)
    rows, cols = parts[0].shape[-2:]
    out_shape = G.shape if isinstance(G, Tensor) else (-1, rows, cols)
    dtype = parts[0].dtype
    Xs = [part.reshape(-1, rows, cols) for part in parts]
    eager = not torch.compiler.is_compiling()
    if len(Xs) > 1 and not eager:
        Xs = [torch.cat(Xs)]
    # max|X| from two reductions, without a |X| temporary: the same value (NaN too).
    s = torch.cat([torch.maximum(X.amax(dim=(-2, -1), keepdim=True), X.amin(dim=(-2, -1), keepdim=True).neg())
                   for X in Xs])
    s = torch.where(s > 0, s, torch.ones_like(s))

    def divided(out: Tensor | None) -> Tensor:
        """``X / s`` (a fresh tensor, or written into ``out``), part by part."""
        if out is None and len(Xs) == 1:
            return Xs[0] / s
        out = torch.empty((s.shape[0], rows, cols), dtype=dtype, device=s.device) if out is None else out
        offset = 0
        for X in Xs:
            n = X.shape[0]
            torch.div(X, s[offset:offset + n], out=out[offset:offset + n])
            offset += n
        return out

    scaled = divided(None)  # ours: worked on in place below, and reused for the result
    if normalization == "frobenius":
        # The squares go in place and X / s is formed again, with its same rounding: cheaper
        # than a second large temporary.
        sq = scaled.square_().sum(dim=(-2, -1), keepdim=True)
        if eager:
            divided(scaled)
        else:
            scaled = Xs[0] / s
        scaled.div_(torch.sqrt(sq + (cols + 1) * eps / s.square()) * norm_scale)
    X = scaled
    if compute_dtype is not None:
        X = X.to(getattr(torch, compute_dtype))
    transposed = rows > cols
    if transposed:
        X = X.mT
    gram = use_gram(rows, cols, coefficients, low_precision=X.dtype.itemsize < 4) if gram is None else gram
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
        X = gram_newton_schulz(X, A, coefficients, own=True)  # X is ours: G / s, formed above
    else:
        # Cast, X has left ``scaled``: until the result goes there, its memory can hold A and P.
        spare = scaled if X.dtype != scaled.dtype and eager else None
        X = _standard_steps(X, A, coefficients, own=True, spare=spare)
    if X.dtype != dtype and eager:
        X = scaled.view(X.shape).copy_(X)  # the cast back, into ``scaled`` (no longer read)
    if transposed:
        X = X.mT
    return X.to(dtype).reshape(out_shape)


def _standard_steps(X: Tensor, A: Tensor | None, coefficients: Sequence[tuple[float, float, float]],
                    own: bool = False, spare: Tensor | None = None) -> Tensor:
    """The standard steps on a wide ``X``: ``A = X X^T`` (or the ``A`` passed in, first),
    ``P = b A + c A^2`` and ``X <- a X + P X``, each fused product rounded once.

    Eager, every product after the first step's is written into the memory of a tensor that
    an earlier step has done with (``out=``): the previous ``A``, ``P`` and ``X`` (the input
    ``X`` too, if ``own``: the caller's to overwrite); ``A`` and ``P`` go into ``spare`` from
    the first step if it is large enough (a contiguous tensor of the caller's to overwrite,
    not ``X``). Compiled, ``out`` stays ``None``.
    """
    eager = not torch.compiler.is_compiling()
    gram_out: Tensor | None = None  # for A
    poly_out: Tensor | None = None  # for P: never the tensor holding this step's A
    b_, s_ = X.shape[0], X.shape[1]
    if eager and spare is not None and spare.numel() * spare.element_size() >= 2 * b_ * s_ * s_ * X.element_size():
        flat = spare.view(-1).view(torch.uint8)[: 2 * b_ * s_ * s_ * X.element_size()].view(X.dtype)
        gram_out, poly_out = (half.view(b_, s_, s_) for half in flat.chunk(2))
    x_out: Tensor | None = None  # for the next X: never the memory of this X
    for a, b, c in coefficients:
        A = torch.bmm(X, X.mT, out=gram_out) if A is None else A.to(X.dtype)
        P = A
        if c != 0.0:
            P = torch.baddbmm(A, A, A, beta=b, alpha=c, out=poly_out)
            b = 1.0
        X_next = torch.baddbmm(X, P, X, beta=a, alpha=b, out=x_out)
        if eager:
            gram_out = A if gram_out is None else gram_out
            poly_out = P if P is not A else poly_out
            x_out = _memory(X) if own else None
            own = True
        X, A = X_next, None
    return X


def _memory(X: Tensor) -> Tensor | None:
    """``X``'s memory as a contiguous tensor of ``X``'s shape, if ``X`` is contiguous or the
    transpose (``mT``) of a contiguous tensor; else ``None``."""
    if X.is_contiguous():
        return X
    return X.mT.view(X.shape) if X.mT.is_contiguous() else None


def _gram_matrix(X: Tensor, acc: torch.dtype) -> Tensor:
    """``X X^T`` in ``acc``: exact products of a bfloat16 ``X``, summed in float32."""
    Xa = X.to(acc)
    return torch.bmm(Xa, Xa.mT)


def gram_newton_schulz(X: Tensor, A: Tensor | None, coefficients: Sequence[tuple[float, float, float]],
                       own: bool = False) -> Tensor:
    r"""The Newton–Schulz steps on a wide ``X`` (``s x l``, ``s < l``) in Gram form, as
    :func:`muon_common.gram_costs` describes: ``s x s`` matmuls between the first ``A = X X^T``
    (passed in if already formed, in float32 at least; else ``None``) and the final ``Q X``.

    Eager, a ``Q X`` after a restart is written into the memory of the ``X`` that the restart
    replaced (the input ``X`` only if ``own``: the caller's to overwrite).
    """
    eager = not torch.compiler.is_compiling()
    acc = torch.promote_types(X.dtype, torch.float32)
    Q: Tensor | None = None
    spare: Tensor | None = None  # the memory of an X done with, for the next Q X
    last, restarts = len(coefficients) - 1, gram_restarts(coefficients)
    for k, (a, b, c) in enumerate(coefficients):
        if k in restarts and Q is not None:  # never k = 0
            X_next = torch.bmm(Q.to(X.dtype), X, out=spare)
            spare = _memory(X) if eager and own else None
            own = True
            X, Q, A = X_next, None, None
        if A is None:
            A = _gram_matrix(X, acc)
        P = b * A
        P.diagonal(dim1=-2, dim2=-1).add_(a)  # P = b A + a I, without forming I
        if c != 0.0:
            P.baddbmm_(A, A, alpha=c)  # in place: P is no operand
        Q = P if Q is None else torch.bmm(P, Q)
        A = None if k == last or k + 1 in restarts else torch.bmm(P, torch.bmm(A, P))
    return X if Q is None else torch.bmm(Q.to(X.dtype), X, out=spare)


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


def orthogonalize_(G: Tensor | Sequence[Tensor], method: Method, ns_iters: int, eps: float,
                  dtype: str | None = None, normalization: str = "frobenius") -> Tensor:
    """Unchecked :func:`orthogonalize` for the optimizer's hot path; a sequence ``G`` as
    :func:`newton_schulz` takes it."""
    if method == "svd":
        return svd_polar(G if isinstance(G, Tensor) else torch.cat([g.reshape(-1, *g.shape[-2:]) for g in G]))
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
