"""Defaults, coefficient tables, axes handling and validation shared by both twins."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple, get_args

from muon_common._docs import document_hyperparameters

#: AdamW's ``(beta1, beta2)`` for the parameters a hybrid gives to AdamW (torch.optim.AdamW's
#: and optax.adamw's default).
ADAMW_BETAS: tuple[float, float] = (0.9, 0.999)

#: A named orthogonalisation method (see :data:`NS_METHODS`; ``"svd"`` is the exact polar factor).
MethodName = Literal["ns", "quintic", "polar_express", "svd"]
#: The type of ``method``, a :data:`MethodName` or the user's own per-step ``(a, b, c)`` triples.
Method = MethodName | Sequence[Sequence[float]]
#: The names ``adjust_lr`` takes (or ``None``), for a matrix's learning-rate factor.
AdjustLR = Literal["original", "match_rms_adamw"]
#: The names ``normalization`` takes, for how Newton–Schulz scales its input.
Normalization = Literal["frobenius", "aol"]
#: The reduced precisions ``momentum_dtype`` and ``orthogonalize_dtype`` take (or ``None``).
LowPrecisionDtype = Literal["bfloat16"]

#: The ``adjust_lr`` choices, each a factor on a matrix's learning rate from its fan-in/fan-out.
#: ``"original"`` is Keller Jordan's ``sqrt(max(1, fan_out / fan_in))``; ``"match_rms_adamw"``
#: (Moonlight, Liu et al. 2025) is ``0.2 * sqrt(max(fan_in, fan_out))``, which gives the
#: update the RMS of a typical AdamW update. The names follow ``torch.optim.Muon``.
ADJUST_LR: tuple[str, ...] = get_args(AdjustLR)

#: The ``normalization`` choices, for how Newton–Schulz scales its input before the first step.
#: ``"frobenius"`` (the reference) divides by ``||G||_F``; ``"aol"`` (Turbo-Muon, Boissin et al.
#: 2025, arXiv:2512.04632) rescales by ``(sum_j |G G^T|_ij)^(-1/2)`` per row of the small side,
#: which bounds the spectral norm by 1 at no extra matmul. Being a row scaling, it also changes
#: the singular vectors: the iteration then tends to the polar factor of the rescaled matrix.
NORMALIZATIONS: tuple[str, ...] = get_args(Normalization)

#: Reduced-precision choices for ``momentum_dtype`` and ``orthogonalize_dtype``.
LOW_PRECISION_DTYPES: tuple[str, ...] = get_args(LowPrecisionDtype)


def lr_adjustment(adjust_lr: str | None, fan_in: int, fan_out: int) -> float:
    """The learning-rate factor of a ``fan_out x fan_in`` matrix under ``adjust_lr``.

    Examples:
      >>> from muon_common import lr_adjustment
      >>> lr_adjustment(None, 256, 1024), lr_adjustment("original", 256, 1024)
      (1.0, 2.0)
      >>> round(lr_adjustment("match_rms_adamw", 256, 1024), 6)
      6.4

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      Liu et al., "Muon is Scalable for LLM Training" (Moonlight), arXiv:2502.16982, 2025.
    """
    if adjust_lr is None:
        return 1.0
    if adjust_lr == "original":
        return math.sqrt(max(1.0, fan_out / fan_in))
    return 0.2 * math.sqrt(max(fan_in, fan_out))

#: Added to the momentum norm when clipping, as in the reference, so
#: ``m <- m * clip / (||m|| + CLIP_EPS)`` whenever ``||m|| > clip``.
CLIP_EPS = 1e-12

Coefficients = tuple[float, float, float]


class NSMethod(NamedTuple):
    """An odd-polynomial Newton–Schulz method, and how both twins run one.

    Step ``k`` maps ``X <- a X + b (X X^T) X + c (X X^T)^2 X`` with ``(a, b, c) =
    coefficients[k]``; the last triple repeats when more steps are asked for.
    ``norm_scale`` is the method's safety factor ``k`` below. ``newton_schulz`` in either
    twin computes it on every trailing matrix of ``G`` as follows.

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

    Examples:
      >>> from muon_common import NS_METHODS
      >>> NS_METHODS["quintic"].coefficients, NS_METHODS["polar_express"].norm_scale
      (((3.4445, -4.775, 2.0315),), 1.01)

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      Amsel et al., "The Polar Express", arXiv:2505.16932, 2025.
      Boissin, Massena, Mamalet, Serrurier (2025), "Turbo-Muon: Accelerating
      Orthogonality-Based Optimization with Pre-Conditioning", arXiv:2512.04632, and its
      code (github.com/thib-s/flash-newton-schulz, ``NS_ours``): the AOL rescaling fused into
      the first step. Prach and Lampert (2022), "Almost-Orthogonal Layers for Efficient
      General-Purpose Lipschitz Networks", arXiv:2208.03160: ``d`` and the bound.
    """

    coefficients: tuple[Coefficients, ...]
    norm_scale: float = 1.0


def _polar_express() -> NSMethod:
    # Amsel, Persson, Musco, Gower (2025), "The Polar Express: Optimal Matrix Sign Methods
    # and Their Application to the Muon Algorithm", arXiv:2505.16932, Algorithm 1: the
    # per-step minimax degree-5 polynomials for l = 1e-3, every step but the last divided
    # by the safety factor 1.01 (a / 1.01, b / 1.01^3, c / 1.01^5), and the input
    # normalised by 1.01 * ||G||_F.
    raw = (
        (8.28721201814563, -23.595886519098837, 17.300387312530933),
        (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
        (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
        (3.3184196573706015, -2.488488024314874, 0.51004894012372),
        (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
        (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
        (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
        (1.875, -1.25, 0.375),
    )
    safety = 1.01
    steps = (*((a / safety, b / safety**3, c / safety**5) for a, b, c in raw[:-1]), raw[-1])
    return NSMethod(steps, norm_scale=safety)


#: Gram Newton–Schulz re-forms its Gram matrix from the iterate (a restart) whenever carrying
#: it one more step would grow its drift past this factor (:func:`gram_restarts`). Iterated on
#: its own, ``A <- p(A) A p(A)`` drifts from positive semidefinite in float32 and bfloat16: a
#: negative eigenvalue ``-d`` (rounding, ``~1e-7`` of ``||A||``) becomes ``-d p(-d)^2``, about
#: ``a^2 d`` a step, and once it is no longer small it grows without bound (NaN after 20-30
#: steps, measured); re-formed, ``A = X X^T`` is PSD to rounding. ``1e4`` keeps the drift near
#: ``1e-3``: a restart every 3 quintic steps, every 11 cubic ``ns`` steps. Measured over 100 steps
#: of every schedule on rank-deficient input: finite up to ``1e5``; at ``1e6`` bfloat16 with the
#: AOL start goes NaN.
GRAM_GROWTH_LIMIT = 1e4


def gram_restarts(coefficients: Sequence[Coefficients]) -> frozenset[int]:
    """The steps ``k`` before which Gram Newton–Schulz re-forms its iterate and Gram matrix.

    A Gram matrix formed before step ``r`` is carried through steps ``r..k`` while
    ``prod_{j=r..k} a_j^2 <= GRAM_GROWTH_LIMIT`` (the growth of its drift: see
    :data:`GRAM_GROWTH_LIMIT`), and always through one step.

    Examples:
      >>> from muon_common import NS_METHODS, gram_restarts, ns_schedule
      >>> sorted(gram_restarts(ns_schedule("quintic", 10)[0]))
      [3, 6, 9]
      >>> sorted(gram_restarts(ns_schedule("ns", 5)[0]))
      []

    References:
      Dao-AILab, gram-newton-schulz (2026): the Gram iteration with restarts.
    """
    restarts, start, growth = set(), 0, 1.0
    for k, (a, _, _) in enumerate(coefficients):
        if k > start and growth * a * a > GRAM_GROWTH_LIMIT:
            restarts.add(k)
            start, growth = k, 1.0
        growth *= a * a
    return frozenset(restarts)


def gram_costs(rows: int, cols: int, coefficients: Sequence[Coefficients]) -> tuple[int, int]:
    """Multiply-adds of Newton–Schulz on a ``rows x cols`` matrix: ``(standard, gram)``.

    With ``s <= l`` its sides, a standard step forms ``A = X X^T`` and ``A X`` (``2 s^2 l``),
    plus ``A^2`` when ``c != 0`` (``s^3``). The Gram form iterates on the ``s x s`` Gram matrix
    alone: with ``p(A) = a I + b A + c A^2`` a step is ``X <- p(A) X``, and since ``p(A)``
    commutes with ``A`` the next Gram matrix is ``p(A) A p(A)`` and ``X_k = Q_k X_0`` with
    ``Q <- p(A) Q``. A step then costs ``s^3`` matmuls only; ``A`` is formed once and
    ``Q X_0`` at the end (``s^2 l`` each), and again at each restart: before every step of
    :func:`gram_restarts` the iterate and its Gram matrix are formed afresh, which keeps ``A``
    positive semidefinite (it drifts in low precision). In exact arithmetic
    the result is that of the standard steps.

    How both twins run it (``gram_newton_schulz``): ``A``, ``p(A)`` and ``Q`` are kept in
    float32 at least, and ``A`` is formed there even from a bfloat16 ``X``: rounded to
    bfloat16, its zero eigenvalues (a rank-deficient input) turn into negative ones of about
    ``4e-3``, which ``p`` grows to NaN within ten steps (measured).

    Examples:
      >>> from muon_common import NS_METHODS, gram_costs
      >>> standard, gram = gram_costs(4096, 1024, NS_METHODS["polar_express"].coefficients[:5])
      >>> round(gram / standard, 2)
      0.67

    References:
      Amsel et al., "The Polar Express", arXiv:2505.16932, 2025.
      Dao-AILab, gram-newton-schulz (2026): the Gram iteration with restarts, used by
      microsoft/dion and DeepSpeed for rectangular matrices.
    """
    s, l = min(rows, cols), max(rows, cols)
    big, small = s * s * l, s * s * s
    standard = sum(2 * big + (small if c != 0.0 else 0) for _, _, c in coefficients)
    gram = 2 * big  # the first A, and the final Q X
    last, restarts = len(coefficients) - 1, gram_restarts(coefficients)
    for k, (_, _, c) in enumerate(coefficients):
        restart = k in restarts
        gram += 2 * big if restart else 0
        gram += small if c != 0.0 else 0  # A^2
        gram += small if k > 0 and not restart else 0  # Q <- P Q
        gram += 2 * small if k < last and k + 1 not in restarts else 0  # A <- P A P
    return standard, gram


def use_gram(rows: int, cols: int, coefficients: Sequence[Coefficients], low_precision: bool = False) -> bool:
    """Whether the Gram form of Newton–Schulz is the cheaper on a ``rows x cols`` matrix
    (rectangular enough: from about 3:2 for five steps of every named method).

    Never for a ``low_precision`` (bfloat16) iteration: the Gram form multiplies in float32
    (see :func:`gram_costs`), so there it trades the standard form's bfloat16 matmuls for
    float32 ones. Where bfloat16 matmuls are fast (GPU tensor cores, TPUs, a CPU's AMX) that
    loses: in torch on an AMX CPU the Gram form took 1.4-3.1x the standard bfloat16 steps' time
    on 4096x1024, 1024x4096 and 2048x1024 (``benchmarks/bench.py``, section 5). JAX on a CPU,
    whose bfloat16 dots XLA does not accelerate, ran it at 0.59-0.93x: the rule follows the
    hardware bfloat16 is used on.

    Examples:
      >>> from muon_common import NS_METHODS, use_gram
      >>> quintic = NS_METHODS["quintic"].coefficients * 5
      >>> use_gram(4096, 1024, quintic), use_gram(1024, 1024, quintic)
      (True, False)
      >>> use_gram(4096, 1024, quintic, low_precision=True)
      False

    References:
      Dao-AILab, gram-newton-schulz (2026): the Gram iteration with restarts.
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """
    if low_precision:
        return False
    standard, gram = gram_costs(rows, cols, coefficients)
    return gram < standard


#: The named iterative methods.
#:
#: ``ns`` is the reference: the seed computes ``G (G^T G + eps I)^(-1/2)`` with the
#: coupled Newton–Schulz inverse square root, which in exact arithmetic is this cubic
#: polar iteration on ``X0 = G / sqrt(tr(G^T G + eps I) + eps)`` (up to the ``eps I``
#: shift inside its iteration). ``quintic`` is Keller Jordan's Muon iteration.
NS_METHODS: dict[str, NSMethod] = {
    "ns": NSMethod(((1.5, -0.5, 0.0),)),
    "quintic": NSMethod(((3.4445, -4.7750, 2.0315),)),
    "polar_express": _polar_express(),
}

#: Every accepted ``method`` string; a sequence of ``(a, b, c)`` triples is accepted too.
METHODS: tuple[str, ...] = get_args(MethodName)
assert set(METHODS) == {*NS_METHODS, "svd"}


def ns_schedule(method: Method, ns_iters: int) -> tuple[list[Coefficients], float]:
    """The ``ns_iters`` per-step coefficients of an iterative ``method``, and its norm scale.

    ``method`` is a name of :data:`NS_METHODS` or the user's own list of triples; a
    list shorter than ``ns_iters`` repeats its last triple, a longer one is cut.

    Examples:
      >>> from muon_common import ns_schedule
      >>> ns_schedule("ns", 3)
      ([(1.5, -0.5, 0.0), (1.5, -0.5, 0.0), (1.5, -0.5, 0.0)], 1.0)
      >>> ns_schedule([(3.0, -3.2, 1.2), (2.0, -1.5, 0.5)], 3)[0]
      [(3.0, -3.2, 1.2), (2.0, -1.5, 0.5), (2.0, -1.5, 0.5)]

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      Amsel et al., "The Polar Express", arXiv:2505.16932, 2025.
    """
    spec = NS_METHODS[method] if isinstance(method, str) else NSMethod(tuple(map(tuple, method)))  # type: ignore[arg-type]
    coeffs = list(spec.coefficients[:ns_iters])
    coeffs += [spec.coefficients[-1]] * (ns_iters - len(coeffs))
    return coeffs, spec.norm_scale


def _is_coefficient_list(method: Any) -> bool:
    if isinstance(method, (str, bytes)) or not isinstance(method, Sequence) or len(method) == 0:
        return False
    return all(
        isinstance(t, Sequence) and len(t) == 3
        and all(_is_real(x) and math.isfinite(x) for x in t) for t in method
    )


class Messages:
    """Error messages, formatted identically by both twins.

    Examples:
      >>> from muon_common import Messages
      >>> Messages.EPS.format(value=-1)
      'Invalid eps: -1. It must be a positive number, e.g. eps=1e-8.'

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """

    LR = "Invalid {name}: {value!r}. It must be a positive number, e.g. {name}=0.02."
    BETA = "Invalid beta: {value!r}. It must satisfy 0 <= beta < 1, e.g. beta=0.9."
    WEIGHT_DECAY = (
        "Invalid weight_decay: {value!r}. It must be >= 0; pass weight_decay=0.0 to turn "
        "decay off."
    )
    EPS = "Invalid eps: {value!r}. It must be a positive number, e.g. eps=1e-8."
    NS_ITERS = "Invalid ns_iters: {value!r}. It must be a positive int, e.g. ns_iters=5."
    NS_ITERS_TRACED = (
        "Invalid ns_iters: it is traced, but it sets the number of Newton–Schulz steps when the "
        "update is traced. Pass a Python int, e.g. optax.inject_hyperparams(muon, "
        "static_args=('ns_iters',))(..., ns_iters=5)."
    )
    METHOD = (
        "Invalid method: {value!r}. It must be one of {choices}, or a list of (a, b, c) "
        "Newton–Schulz coefficient triples, one per step."
    )
    CLIP = (
        "Invalid clip_grad_norm: {value!r}. It must be a positive number, or None to "
        "turn clipping off."
    )
    RMS_SCALE = "Invalid rms_scale: {value!r}. It must be True or False."
    ALGORITHM = "Invalid algorithm: {value!r}. It must be 'muon' or 'adamw'."
    BETAS = "Invalid betas: {value!r}. It must be a pair (beta1, beta2) with 0 <= beta < 1, e.g. (0.9, 0.95)."
    NESTEROV = "Invalid nesterov: {value!r}. It must be True or False."
    NEURON_NORM = "Invalid neuron_norm: {value!r}. It must be True or False."
    NEURON_BETA2 = (
        "Invalid neuron_beta2: {value!r}. It must satisfy 0 <= neuron_beta2 < 1, e.g. neuron_beta2=0.95."
    )
    NORMALIZATION = "Invalid normalization: {value!r}. It must be one of {choices}."
    NORMALIZATION_SVD = (
        "Invalid normalization: {value!r} with method='svd'. The SVD needs no starting "
        "normalisation: pass normalization='frobenius', or a Newton–Schulz method."
    )
    ADJUST_LR = "Invalid adjust_lr: {value!r}. It must be None, 'original' or 'match_rms_adamw'."
    DTYPE = "Invalid {name}: {value!r}. It must be None (the parameter's dtype) or 'bfloat16'."
    SVD_DTYPE = (
        "Invalid orthogonalize_dtype: {value!r} with method='svd'. The SVD runs in the "
        "parameter's dtype: pass orthogonalize_dtype=None, or a Newton–Schulz method."
    )
    NEEDS_PARAMS = (
        "muon: weight_decay={value!r} needs the current params: call "
        "update(updates, state, params), or pass weight_decay=0.0."
    )
    ORTHOGONALIZE_NDIM = (
        "orthogonalize needs a tensor of shape (..., m, n), got shape {shape}."
    )
    COMPLEX_PARAM = (
        "Muon cannot optimise {param}: its dtype {dtype} is complex. Optimise its real and "
        "imaginary parts as separate real parameters."
    )
    NOT_FLOAT_PARAM = (
        "Muon cannot optimise {param}: its dtype {dtype} is not floating point. Leave it out "
        "of the optimizer (or mask it out)."
    )
    SPARSE_GRAD = (
        "Muon cannot use the sparse gradient of {param}: densify it (grad.to_dense()) or give "
        "that parameter to an optimizer for sparse gradients."
    )
    STATE_MISMATCH = (
        "The optimizer state does not match {param}: its {what} has shape {state_shape}, the "
        "parameter has shape {shape}. Load a state saved for these parameters."
    )
    STATE_MISSING = (
        "The optimizer state does not match the parameters: {why}. Load a state saved for "
        "these parameters."
    )
    MATRIX_AXES = (
        "Invalid matrix_axes {axes!r} for {param} of shape {shape}: {why}. Give "
        "MatrixAxes(rows=..., cols=...) with disjoint, in-range axes, or None for the "
        "default rule (2-D parameters are matrices, others are RMS-scaled)."
    )


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and not math.isnan(x)


#: A value that cannot be known before the computation runs (a traced JAX array): not checked.
_UNKNOWN = object()


def _known(value: Any) -> Any:
    """``value`` as checked: plain Python values as they are, a one-element array (numpy, JAX,
    torch) as its number, a traced array (``optax.inject_hyperparams`` under ``jax.jit``) as
    :data:`_UNKNOWN`, and anything else as it is (then rejected, with its value in the message)."""
    if value is None or isinstance(value, (numbers.Number, str, bytes, Sequence)):
        return value
    shape = getattr(value, "shape", None)
    if shape is None or math.prod(shape) != 1:
        return value
    try:
        return value.item()
    except TypeError:  # jax.errors.ConcretizationTypeError: a traced value is checked when concrete
        return _UNKNOWN


def validate_lr(lr: Any, name: str = "lr") -> None:
    """Raise ``ValueError`` unless ``lr`` is a positive finite number (or a one-element array of
    one); ``name`` is how the message calls it (``"learning_rate"`` in JAX).

    Examples:
      >>> from muon_common import validate_lr
      >>> validate_lr(0.02)
      >>> validate_lr(0.0, "learning_rate")
      Traceback (most recent call last):
      ...
      ValueError: Invalid learning_rate: 0.0. It must be a positive number, e.g. learning_rate=0.02.

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """
    value = _known(lr)
    if value is not _UNKNOWN and not (_is_real(value) and value > 0 and math.isfinite(value)):
        raise ValueError(Messages.LR.format(name=name, value=lr))


def _is_probability(x: Any) -> bool:
    return _is_real(x) and 0.0 <= x < 1.0


def _is_positive(x: Any) -> bool:
    return _is_real(x) and x > 0.0 and math.isfinite(x)


#: Per field of :class:`Hyperparameters`: what a valid value satisfies, and the message otherwise.
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "beta": (_is_probability, Messages.BETA),
    "weight_decay": (lambda x: _is_real(x) and x >= 0.0 and math.isfinite(x), Messages.WEIGHT_DECAY),
    "eps": (_is_positive, Messages.EPS),
    "ns_iters": (lambda x: isinstance(x, numbers.Integral) and not isinstance(x, bool) and int(x) >= 1,
                 Messages.NS_ITERS),
    "method": (lambda x: (isinstance(x, str) and x in METHODS) or _is_coefficient_list(x), Messages.METHOD),
    "rms_scale": (lambda x: isinstance(x, bool), Messages.RMS_SCALE),
    "clip_grad_norm": (lambda x: x is None or (_is_real(x) and x > 0.0), Messages.CLIP),
    "nesterov": (lambda x: isinstance(x, bool), Messages.NESTEROV),
    "adjust_lr": (lambda x: x is None or x in ADJUST_LR, Messages.ADJUST_LR),
    "momentum_dtype": (lambda x: x is None or x in LOW_PRECISION_DTYPES, Messages.DTYPE),
    "orthogonalize_dtype": (lambda x: x is None or x in LOW_PRECISION_DTYPES, Messages.DTYPE),
    "neuron_norm": (lambda x: isinstance(x, bool), Messages.NEURON_NORM),
    "neuron_beta2": (_is_probability, Messages.NEURON_BETA2),
    "normalization": (lambda x: isinstance(x, str) and x in NORMALIZATIONS, Messages.NORMALIZATION),
}


@document_hyperparameters()
@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    r"""Muon's hyperparameters but the learning rate: one frozen record, validated when made.

    The defaults are the reference algorithm's (:data:`DEFAULTS` lists them); everything
    past ``clip_grad_norm`` is an option beyond it, off by default. Both twins build one
    record from their arguments and hand it down their step whole. Per parameter ``p`` with
    gradient ``g`` and momentum ``m``:

    .. math::
        m &\leftarrow \beta m + (1 - \beta) g, \qquad
        m \leftarrow m \cdot \mathrm{clip} / (\|m\| + 10^{-12})
            \ \text{if } \|m\| > \mathrm{clip} \\
        p &\leftarrow p (1 - \mathrm{lr}\,\lambda) - \mathrm{lr} \cdot s \cdot U

    with ``U`` the orthogonalised ``m`` for matrices and ``m / sqrt(mean(m^2) + eps)`` for other
    parameters (``rms_scale``).

    A numeric field may hold a one-element array (``optax.inject_hyperparams``); it is checked
    by its value, and a traced one (under ``jax.jit``) is checked when it was concrete.

    Attributes:
      {hyperparameters}

    Examples:
      >>> from muon_common import Hyperparameters
      >>> Hyperparameters().method, Hyperparameters(beta=0.95).beta
      ('ns', 0.95)
      >>> Hyperparameters(beta=1.5)
      Traceback (most recent call last):
      ...
      ValueError: Invalid beta: 1.5. It must satisfy 0 <= beta < 1, e.g. beta=0.9.

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      Liu et al., "Muon is Scalable for LLM Training" (Moonlight), arXiv:2502.16982, 2025.
      Amsel et al., "The Polar Express", arXiv:2505.16932, 2025.
      Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491, 2025.
    """

    beta: float = 0.9
    weight_decay: float = 0.01
    eps: float = 1e-8
    ns_iters: int = 5
    method: Method = "ns"
    rms_scale: bool = True
    clip_grad_norm: float | None = None
    nesterov: bool = False
    adjust_lr: AdjustLR | None = None
    momentum_dtype: LowPrecisionDtype | None = None
    orthogonalize_dtype: LowPrecisionDtype | None = None
    neuron_norm: bool = False
    neuron_beta2: float = 0.95
    normalization: Normalization = "frobenius"

    def __post_init__(self) -> None:
        for name, (valid, message) in _CHECKS.items():
            value = _known(getattr(self, name))
            if value is not _UNKNOWN and not valid(value):
                choices = ", ".join(map(repr, METHODS if name == "method" else NORMALIZATIONS))
                raise ValueError(message.format(name=name, value=value, choices=choices))
        if self.orthogonalize_dtype is not None and self.method == "svd":
            raise ValueError(Messages.SVD_DTYPE.format(value=self.orthogonalize_dtype))
        if self.normalization != "frobenius" and self.method == "svd":
            raise ValueError(Messages.NORMALIZATION_SVD.format(value=self.normalization))
        if not isinstance(self.method, str):  # a user's list of triples: kept immutable
            object.__setattr__(self, "method", tuple(tuple(float(x) for x in t) for t in self.method))


#: Default hyperparameters of the reference algorithm (``lr`` has no default): the fields of
#: :class:`Hyperparameters`.
DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Hyperparameters)}


def adamw_matcher(adamw: Callable[[str, Any], bool] | Sequence[str]) -> Callable[[str, Any], bool]:
    """The predicate on ``(name, param)`` that sends a matrix to AdamW in a hybrid: ``adamw``
    itself if callable, else "the name contains one of these substrings".

    Examples:
      >>> from muon_common import adamw_matcher
      >>> to_adamw = adamw_matcher(("embed", "head"))
      >>> to_adamw("embed.weight", None), to_adamw("blocks.0.attn.weight", None)
      (True, False)

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      Liu et al., "Muon is Scalable for LLM Training" (Moonlight), arXiv:2502.16982, 2025.
    """
    if callable(adamw):
        return adamw
    names = tuple(adamw)
    return lambda name, _: any(n in name for n in names)


def neuron_moment_shape(shape: Sequence[int], fan_in: Sequence[int]) -> tuple[int, ...]:
    """The shape of a matrix's per-neuron second moment (NorMuon): ``shape`` with its fan-in
    axes ``fan_in`` reduced to 1, so one value per output neuron and slice. The fan-in axes
    are a torch weight's columns and a Flax kernel's rows.

    Examples:
      >>> from muon_common import neuron_moment_shape
      >>> neuron_moment_shape((256, 512), fan_in=(1,))  # a torch Linear.weight, (out, in)
      (256, 1)
      >>> neuron_moment_shape((4, 512, 256), fan_in=(1,))  # a stack of 4 Flax kernels, (in, out)
      (4, 1, 256)

    References:
      Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491, 2025.
    """
    return tuple(1 if a in fan_in else n for a, n in enumerate(shape))


def validate_betas(betas: Any) -> None:
    """Raise ``ValueError`` unless ``betas`` is AdamW's ``(beta1, beta2)`` in ``[0, 1)``.

    Examples:
      >>> from muon_common import validate_betas
      >>> validate_betas((0.9, 0.95))
      >>> validate_betas((0.9, 1.0))
      Traceback (most recent call last):
      ...
      ValueError: Invalid betas: (0.9, 1.0). It must be a pair (beta1, beta2) with 0 <= beta < 1, e.g. (0.9, 0.95).

    References:
      Loshchilov and Hutter, "Decoupled Weight Decay Regularization" (AdamW), arXiv:1711.05101, 2019.
    """
    if not (isinstance(betas, Sequence) and len(betas) == 2 and all(_is_real(b) and 0.0 <= b < 1.0 for b in betas)):
        raise ValueError(Messages.BETAS.format(value=betas))


Axes = int | Sequence[int]


class MatrixAxes(NamedTuple):
    """Which axes of a parameter form the matrix that is orthogonalised.

    ``rows`` and ``cols`` are an axis or a sequence of axes (flattened in order);
    every other axis is a batch axis, orthogonalised independently. A Flax
    ``nn.scan`` stack ``(layers, in, out)`` is ``MatrixAxes(rows=1, cols=2)``; a
    torch conv kernel ``(out, in, kh, kw)`` flattened to ``(out, in*kh*kw)`` is
    ``MatrixAxes(rows=0, cols=(1, 2, 3))``.

    Examples:
      >>> from muon_common import MatrixAxes, resolve_matrix_axes
      >>> resolve_matrix_axes((12, 64, 256), MatrixAxes(rows=1, cols=2))  # 12 stacked layers
      ResolvedAxes(batch=(0,), rows=(1,), cols=(2,))

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """

    rows: Axes = -2
    cols: Axes = -1


class ResolvedAxes(NamedTuple):
    """Normalised, non-negative axes: ``batch + rows + cols`` is a permutation.

    Examples:
      >>> from muon_common import MatrixAxes, resolve_matrix_axes
      >>> resolve_matrix_axes((32, 16, 3, 3), MatrixAxes(rows=0, cols=(1, 2, 3)))  # a conv kernel
      ResolvedAxes(batch=(), rows=(0,), cols=(1, 2, 3))

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """

    batch: tuple[int, ...]
    rows: tuple[int, ...]
    cols: tuple[int, ...]


def _normalise(axes: Axes, ndim: int, spec: Any, shape: tuple[int, ...], param: str) -> tuple[int, ...]:
    seq: tuple[Any, ...] = (axes,) if isinstance(axes, numbers.Integral) else tuple(axes)  # type: ignore[arg-type]
    out = []
    for a in seq:
        if not isinstance(a, numbers.Integral) or not -ndim <= int(a) < ndim:
            raise ValueError(
                Messages.MATRIX_AXES.format(axes=spec, param=param, shape=shape, why=f"axis {a!r} is out of range")
            )
        out.append(int(a) % ndim)
    if not out:
        raise ValueError(Messages.MATRIX_AXES.format(axes=spec, param=param, shape=shape, why="an axis group is empty"))
    return tuple(out)


def resolve_matrix_axes(shape: Sequence[int], axes: MatrixAxes | None, param: str = "a parameter"
                        ) -> ResolvedAxes | None:
    """Resolve ``axes`` for a parameter of ``shape``; ``None`` means "not a matrix".

    ``param`` names the parameter in the error a description that does not fit raises.

    With ``axes=None`` the reference rule applies: a 2-D parameter is a matrix
    (rows = axis 0, cols = axis 1), anything else is not.

    Examples:
      >>> from muon_common import resolve_matrix_axes
      >>> resolve_matrix_axes((3, 4), None), resolve_matrix_axes((4,), None)
      (ResolvedAxes(batch=(), rows=(0,), cols=(1,)), None)

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """
    shape = tuple(int(s) for s in shape)
    ndim = len(shape)
    if axes is None:
        return ResolvedAxes((), (0,), (1,)) if ndim == 2 else None

    def error(why: str) -> ValueError:
        return ValueError(Messages.MATRIX_AXES.format(axes=axes, param=param, shape=shape, why=why))

    if not isinstance(axes, MatrixAxes):
        raise error("it is not a MatrixAxes")
    if ndim < 2:
        raise error("a matrix needs at least 2 axes")
    rows = _normalise(axes.rows, ndim, axes, shape, param)
    cols = _normalise(axes.cols, ndim, axes, shape, param)
    if len(set(rows + cols)) != len(rows) + len(cols):
        raise error("rows and cols overlap")
    batch = tuple(a for a in range(ndim) if a not in rows + cols)
    return ResolvedAxes(batch, rows, cols)
