"""``Muon``: a ``torch.optim.Optimizer`` with the reference Muon semantics."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT, _get_scalar_dtype

from muon_common import (
    ADAMW_BETAS,
    DEFAULTS,
    AdjustLR,
    Hyperparameters,
    LowPrecisionDtype,
    MatrixAxes,
    Messages,
    Method,
    Normalization,
    PortableState,
    adamw_matcher,
    neuron_moment_shape,
    resolve_matrix_axes,
    validate_betas,
    validate_lr,
)
from muon_common._docs import document_hyperparameters
from muon_torch._distributed import has_dtensor, muon_dtensor
from muon_torch._functional import adamw, local_muon

__all__ = ["Muon", "export_state", "import_state", "muon", "param_groups"]

_ALGORITHMS = ("muon", "adamw")
#: What a param group saved before an option existed gets for it (the earlier behaviour).
_GROUP_DEFAULTS: dict[str, Any] = {**DEFAULTS, "matrix_axes": None, "algorithm": "muon", "betas": ADAMW_BETAS}


@document_hyperparameters()
class Muon(Optimizer):
    r"""Muon: momentum, then orthogonalised updates for matrices.

    For each parameter ``p`` with gradient ``g`` and momentum ``m`` (zero at start):

    .. math::
        m &\leftarrow \beta m + (1 - \beta) g \\
        m &\leftarrow m \cdot \mathrm{clip} / (\|m\| + 10^{-12})
            \quad\text{if } \|m\| > \mathrm{clip} \\
        p &\leftarrow p (1 - \mathrm{lr} \cdot \mathrm{wd}) - \mathrm{lr} \cdot s \cdot U

    with ``U = orthogonalize(m)`` for matrices and ``U = m / sqrt(mean(m^2) + eps)``
    (``rms_scale=True``) or ``U = m`` otherwise; ``s = 1`` unless ``adjust_lr`` is set.
    With ``nesterov=True``, ``U`` is computed from ``beta m + (1 - beta) g`` instead of ``m``.
    With ``neuron_norm=True`` (NorMuon), a matrix's ``U`` is then normalised per output neuron
    (row): ``v <- beta2 v + (1 - beta2) mean_row(U^2)``, ``U <- U / (sqrt(v) + eps)``, rescaled
    to the Frobenius norm ``U`` had.

    A param group with ``algorithm="adamw"`` is optimised by AdamW instead
    (``torch.optim.AdamW``'s step, operation for operation, with that group's ``lr``,
    ``betas``, ``eps`` and ``weight_decay``): the usual home for biases, norms, embeddings
    and output heads. :func:`muon_torch.param_groups` splits a model this way. A NaN/Inf
    gradient skips its parameter there too: value and moments kept, counted in
    ``nonfinite_steps``.

    Args:
      params: parameters or param groups; every hyperparameter below, ``matrix_axes``,
        ``algorithm`` and ``betas`` can be set per group.
      lr: learning rate (no default): a float or a one-element Tensor, as in torch.optim.
      {hyperparameters}
      matrix_axes: which axes form the matrix (:class:`muon_common.MatrixAxes`);
        others are batch axes. ``None``: 2-D parameters are matrices, others are not.
        A matrix's rows are its fan-out and its columns its fan-in (``Linear.weight`` is
        ``(out, in)``): NorMuon's neurons are its rows.
      betas: AdamW's ``(beta1, beta2)`` for a group with ``algorithm="adamw"``.

    Examples:
      >>> import torch, muon_torch
      >>> model = torch.nn.Linear(4, 3)
      >>> opt = muon_torch.Muon(muon_torch.param_groups(model), lr=0.02)
      >>> model(torch.ones(2, 4)).square().sum().backward()
      >>> opt.step()
      >>> [g["algorithm"] for g in opt.param_groups]
      ['muon', 'adamw']

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      Liu et al., "Muon is Scalable for LLM Training" (Moonlight), arXiv:2502.16982, 2025.
      Amsel et al., "The Polar Express", arXiv:2505.16932, 2025.
      Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491, 2025.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor,
        beta: float = DEFAULTS["beta"],
        weight_decay: float = DEFAULTS["weight_decay"],
        eps: float = DEFAULTS["eps"],
        ns_iters: int = DEFAULTS["ns_iters"],
        method: Method = DEFAULTS["method"],
        rms_scale: bool = DEFAULTS["rms_scale"],
        clip_grad_norm: float | None = DEFAULTS["clip_grad_norm"],
        *,
        nesterov: bool = DEFAULTS["nesterov"],
        adjust_lr: AdjustLR | None = DEFAULTS["adjust_lr"],
        momentum_dtype: LowPrecisionDtype | None = DEFAULTS["momentum_dtype"],
        orthogonalize_dtype: LowPrecisionDtype | None = DEFAULTS["orthogonalize_dtype"],
        neuron_norm: bool = DEFAULTS["neuron_norm"],
        neuron_beta2: float = DEFAULTS["neuron_beta2"],
        normalization: Normalization = DEFAULTS["normalization"],
        matrix_axes: MatrixAxes | None = None,
        betas: tuple[float, float] = ADAMW_BETAS,
    ) -> None:
        defaults: dict[str, Any] = dict(
            lr=lr, beta=beta, weight_decay=weight_decay, eps=eps, ns_iters=ns_iters, method=method,
            rms_scale=rms_scale, clip_grad_norm=clip_grad_norm, nesterov=nesterov, adjust_lr=adjust_lr,
            momentum_dtype=momentum_dtype, orthogonalize_dtype=orthogonalize_dtype, neuron_norm=neuron_norm,
            neuron_beta2=neuron_beta2, normalization=normalization, matrix_axes=matrix_axes,
            algorithm="muon", betas=betas,
        )
        _validate(defaults)
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Fill in the hyperparameters a saved state predates (``load_state_dict``, unpickling).

        A state saved by an earlier version lacks the options added since; each gets the value
        that keeps the earlier behaviour (its default), so every saved state loads and resumes.
        """
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in _GROUP_DEFAULTS.items():
                group.setdefault(key, value)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Validate a group's overrides and tensors before adding it, so a bad group changes nothing."""
        if not isinstance(param_group, dict):
            super().add_param_group(param_group)  # raises torch's TypeError
            return
        merged = {**self.defaults, **param_group}
        _validate(merged)
        if merged["algorithm"] not in _ALGORITHMS:
            raise ValueError(Messages.ALGORITHM.format(value=merged["algorithm"]))
        if merged["algorithm"] == "adamw":
            validate_betas(merged["betas"])
        params = param_group["params"]
        if isinstance(params, Tensor):
            entries: list[Any] = [params]
        elif isinstance(params, set):
            entries = []  # torch rejects unordered params below
        else:
            # A generator (``model.parameters()``) can be read only once: keep the list.
            param_group["params"] = entries = list(params)
        names = param_group.get("param_names")
        for i, entry in enumerate(entries):
            # ``named_parameters()`` gives ``(name, tensor)`` pairs.
            name, p = entry if isinstance(entry, tuple) else (names[i] if names else None, entry)
            if not isinstance(p, Tensor):
                continue  # torch reports anything else
            param = _describe(name, i, len(self.param_groups))
            if p.is_complex():
                raise ValueError(Messages.COMPLEX_PARAM.format(param=param, dtype=_dtype_name(p.dtype)))
            if not p.is_floating_point():
                raise ValueError(Messages.NOT_FLOAT_PARAM.format(param=param, dtype=_dtype_name(p.dtype)))
            if merged["algorithm"] == "muon":
                resolve_matrix_axes(p.shape, merged["matrix_axes"], param)
        super().add_param_group(param_group)

    def _param_names(self) -> dict[int, str]:
        """``id(param) -> description`` for error messages."""
        out = {}
        for g, group in enumerate(self.param_groups):
            names = group.get("param_names")
            for i, p in enumerate(group["params"]):
                out[id(p)] = _describe(names[i] if names else None, i, g)
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state, after checking that it fits these parameters (else nothing changes)."""
        groups = state_dict.get("param_groups", [])
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups, strict=True)):
            raise ValueError(Messages.STATE_MISSING.format(
                why=f"it has {[len(g['params']) for g in groups]} parameters per group, the optimizer "
                    f"{[len(g['params']) for g in self.param_groups]}"))
        names = self._param_names()
        saved = state_dict.get("state", {})
        for a, b in zip(groups, self.param_groups, strict=True):
            for key, p in zip(a["params"], b["params"], strict=True):
                for what in ("momentum_buffer", "exp_avg", "exp_avg_sq", "neuron_second_moment"):
                    t = saved.get(key, {}).get(what)
                    expected = (_second_moment_shape(p, b.get("matrix_axes")) if what == "neuron_second_moment"
                                else tuple(p.shape))
                    if isinstance(t, Tensor) and tuple(t.shape) != expected:
                        raise ValueError(Messages.STATE_MISMATCH.format(
                            param=names[id(p)], what=what.replace("_buffer", ""), state_shape=tuple(t.shape),
                            shape=expected))
        super().load_state_dict(state_dict)
        # torch casts every loaded state tensor but "step" to its parameter's dtype; give
        # the momentum its configured dtype and the counter its integer dtype back (exact:
        # the saved values were representable in both).
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p, {})
                if "momentum_buffer" in state:
                    dtype = getattr(torch, group["momentum_dtype"]) if group["momentum_dtype"] else p.dtype
                    state["momentum_buffer"] = state["momentum_buffer"].to(dtype)
                if "nonfinite_steps" in state:
                    state["nonfinite_steps"] = state["nonfinite_steps"].to(torch.int64)

    def _init_group(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        momentum_buffers: list[Tensor],
        nonfinite_steps: list[Tensor],
        neuron_second_moments: list[Tensor | None],
    ) -> None:
        """Gather a Muon group's params with gradients, creating their momentum (and, with
        ``neuron_norm``, each matrix's per-neuron second moment)."""
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if len(state) == 0:
                dtype = getattr(torch, group["momentum_dtype"]) if group["momentum_dtype"] else p.dtype
                state["momentum_buffer"] = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
            if "nonfinite_steps" not in state:
                state["nonfinite_steps"] = torch.zeros((), dtype=torch.int64, device=p.device)
            second_moment = None
            if group["neuron_norm"]:
                axes = resolve_matrix_axes(p.shape, group["matrix_axes"])
                if axes is not None:
                    if "neuron_second_moment" not in state:
                        # Sliced from p so that a sharded (DTensor) p gives a sharded moment.
                        state["neuron_second_moment"] = torch.zeros_like(
                            _narrow(p.detach(), axes.cols), memory_format=torch.contiguous_format)
                    second_moment = state["neuron_second_moment"]
            params.append(p)
            grads.append(p.grad)
            momentum_buffers.append(state["momentum_buffer"])
            nonfinite_steps.append(state["nonfinite_steps"])
            neuron_second_moments.append(second_moment)

    def _init_adamw_group(self, group: dict[str, Any]) -> dict[str, list[Tensor]]:
        """Gather an AdamW group's params with gradients, creating their moments."""
        lists: dict[str, list[Tensor]] = defaultdict(list)
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if len(state) == 0:
                state["step"] = torch.tensor(0.0, dtype=_get_scalar_dtype())
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if "nonfinite_steps" not in state:  # also for a state saved by 0.1, which did not count
                state["nonfinite_steps"] = torch.zeros((), dtype=torch.int64, device=p.device)
            lists["params"].append(p)
            lists["grads"].append(p.grad)
            lists["exp_avgs"].append(state["exp_avg"])
            lists["exp_avg_sqs"].append(state["exp_avg_sq"])
            lists["state_steps"].append(state["step"])
            lists["nonfinite_steps"].append(state["nonfinite_steps"])
        return lists

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Perform one optimisation step; ``closure`` re-evaluates the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Check every gradient before touching any state, so a bad one changes nothing.
        names = None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.is_sparse:
                    names = names or self._param_names()
                    raise ValueError(Messages.SPARSE_GRAD.format(param=names[id(p)]))
        for group in self.param_groups:
            if group["algorithm"] == "adamw":
                lists = self._init_adamw_group(group)
                if lists:
                    beta1, beta2 = group["betas"]
                    adamw(lists["params"], lists["grads"], lists["exp_avgs"], lists["exp_avg_sqs"],
                          lists["state_steps"], lists["nonfinite_steps"], beta1=beta1, beta2=beta2,
                          lr=group["lr"], weight_decay=group["weight_decay"], eps=group["eps"])
                continue
            params: list[Tensor] = []
            grads: list[Tensor] = []
            momentum_buffers: list[Tensor] = []
            nonfinite_steps: list[Tensor] = []
            neuron_second_moments: list[Tensor | None] = []
            self._init_group(group, params, grads, momentum_buffers, nonfinite_steps, neuron_second_moments)
            muon(
                params,
                grads,
                momentum_buffers,
                lr=group["lr"],
                hyperparameters=_hyperparameters(group),
                matrix_axes=group["matrix_axes"],
                nonfinite_steps=nonfinite_steps,
                neuron_second_moments=neuron_second_moments,
            )
        return loss


def _hyperparameters(group: dict[str, Any]) -> Hyperparameters:
    """A param group's Muon hyperparameters as one (validated) record."""
    return Hyperparameters(**{k: group[k] for k in DEFAULTS})


def _validate(group: dict[str, Any]) -> None:
    """Check a group's hyperparameters; ``lr`` may be a float or a one-element Tensor, as in torch.optim."""
    lr = group["lr"]
    validate_lr(lr if not isinstance(lr, Tensor) or lr.is_floating_point() else lr.tolist())
    _hyperparameters(group)


def _describe(name: str | None, index: int, group: int) -> str:
    """How an error message names a parameter: its name if known, else its place."""
    return f"parameter {name!r}" if name else f"parameter {index} of param group {group}"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _second_moment_shape(p: Tensor, matrix_axes: MatrixAxes | None) -> tuple[int, ...]:
    """The shape of ``p``'s NorMuon second moment (its columns reduced to 1); ``()`` for a non-matrix."""
    axes = resolve_matrix_axes(p.shape, matrix_axes)
    return () if axes is None else neuron_moment_shape(p.shape, axes.cols)


def _narrow(t: Tensor, dims: Sequence[int]) -> Tensor:
    """``t`` cut to length 1 along ``dims``."""
    for d in dims:
        t = t.narrow(d, 0, 1)
    return t


def muon(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffers: list[Tensor],
    *,
    lr: float | Tensor,
    hyperparameters: Hyperparameters = Hyperparameters(),  # noqa: B008 (a frozen record)
    matrix_axes: MatrixAxes | None = None,
    nonfinite_steps: list[Tensor] | None = None,
    neuron_second_moments: Sequence[Tensor | None] | None = None,
) -> None:
    """Functional Muon step over lists of tensors (see :class:`Muon`), in place.

    ``hyperparameters`` holds every hyperparameter but the learning rate
    (:class:`muon_common.Hyperparameters`, the reference's by default). Matrices of equal
    ``(batch, rows, cols)`` shape, dtype and device are orthogonalised together in one batched
    computation. A parameter whose gradient has a NaN or Inf keeps its value and momentum this
    step (selected on the device, without a host synchronisation) and, if given, its
    ``nonfinite_steps`` counter goes up by one.

    ``DTensor`` parameters (FSDP2's ``fully_shard``) are stepped on their local shards,
    with whole-tensor norms and NaN checks, each matrix orthogonalised by one rank of
    its group (see ``muon_torch/_distributed.py``).

    With ``neuron_norm``, ``neuron_second_moments`` holds each matrix's per-neuron second
    moment (its shape with the column axes reduced to 1; ``None`` for other parameters),
    updated in place.

    Examples:
      >>> import torch, muon_torch
      >>> from muon_common import Hyperparameters
      >>> p, m = torch.ones(2, 2), torch.zeros(2, 2)
      >>> muon_torch.muon([p], [torch.eye(2)], [m], lr=0.1, hyperparameters=Hyperparameters(weight_decay=0.0))
      >>> p
      tensor([[0.9000, 1.0000],
              [1.0000, 0.9000]])

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """
    if hyperparameters.neuron_norm and neuron_second_moments is None:
        raise ValueError("muon: neuron_norm=True needs neuron_second_moments, one per parameter (None for "
                         "non-matrices), each shaped like the matrix with its columns reduced to 1.")
    if any(p.numel() == 0 for p in params):
        # A zero-size parameter has nothing to update: it steps as a no-op, as in torch.optim.AdamW.
        nonempty = [i for i, p in enumerate(params) if p.numel() > 0]
        params, grads, momentum_buffers = ([x[i] for i in nonempty] for x in (params, grads, momentum_buffers))
        if nonfinite_steps is not None:
            nonfinite_steps = [nonfinite_steps[i] for i in nonempty]
        if neuron_second_moments is not None:
            neuron_second_moments = [neuron_second_moments[i] for i in nonempty]
    if not params:
        return
    # Sharded parameters (FSDP2) take local elementwise work, global scalars and each matrix
    # orthogonalised once in the group (muon_torch/_distributed.py); others the one-process step.
    step = muon_dtensor if has_dtensor(params) else local_muon
    step(params, grads, momentum_buffers, lr=lr, hyperparameters=hyperparameters, matrix_axes=matrix_axes,
         nonfinite_steps=nonfinite_steps, neuron_second_moments=neuron_second_moments)


def param_groups(
    model: torch.nn.Module,
    *,
    adamw: Callable[[str, Tensor], bool] | Sequence[str] = (),
    adamw_lr: float | None = None,
    adamw_betas: tuple[float, float] | None = None,
    adamw_weight_decay: float | None = None,
    matrix_axes: MatrixAxes | None = None,
    **adamw_overrides: Any,
) -> list[dict[str, Any]]:
    """Split ``model``'s parameters into a Muon group and an AdamW group.

    Matrices (2-D, or those ``matrix_axes`` describes) go to Muon, everything else
    to AdamW (``algorithm="adamw"``). ``adamw`` moves matrices to AdamW too: a
    predicate on ``(name, param)`` or substrings of the parameter name, e.g.
    ``("embed", "head")``. The twin of ``muon_jax.muon_labels``.

    The AdamW group takes ``adamw_lr``, ``adamw_betas`` and ``adamw_weight_decay`` when
    given (the names ``muon_jax.muon_with_adamw`` uses), else the optimizer's ``lr``,
    ``betas`` and ``weight_decay``; ``adamw_overrides`` sets any other group key.

    Examples:
      >>> import torch, muon_torch
      >>> model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 10))
      >>> groups = muon_torch.param_groups(model, adamw=("0.", "2."), adamw_lr=3e-3)
      >>> [(g.get("algorithm", "muon"), len(g["params"])) for g in groups]
      [('muon', 1), ('adamw', 4)]

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      Liu et al., "Muon is Scalable for LLM Training" (Moonlight), arXiv:2502.16982, 2025.
    """
    to_adamw = adamw_matcher(adamw)
    muon_params: list[Tensor] = []
    adamw_params: list[Tensor] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_matrix = resolve_matrix_axes(p.shape, matrix_axes if p.ndim >= 2 else None) is not None
        (muon_params if is_matrix and not to_adamw(name, p) else adamw_params).append(p)
    adamw_group: dict[str, Any] = {"params": adamw_params, "algorithm": "adamw", **adamw_overrides}
    for key, value in (("lr", adamw_lr), ("betas", adamw_betas), ("weight_decay", adamw_weight_decay)):
        if value is not None:
            adamw_group[key] = value
    muon_group: dict[str, Any] = {"params": muon_params}
    if matrix_axes is not None:
        muon_group["matrix_axes"] = matrix_axes
    return [g for g in (muon_group, adamw_group) if g["params"]]


def export_state(optimizer: Muon, named_params: Iterable[tuple[str, Tensor]]) -> PortableState:
    """The Muon state of each named parameter as numpy arrays (see ``muon_common.remap``).

    ``named_params`` is usually ``model.named_parameters()``. Parameters without state
    (no step yet, or in an AdamW group) are left out. bfloat16 momentum comes out as
    float32 (exactly). With ``neuron_norm``, a matrix's entry also has its
    ``"neuron_second_moment"`` (shaped like the matrix with its columns reduced to 1).

    Examples:
      >>> import torch, muon_torch
      >>> model = torch.nn.Linear(3, 2, bias=False)
      >>> opt = muon_torch.Muon(model.parameters(), lr=0.02)
      >>> model(torch.ones(1, 3)).sum().backward()
      >>> opt.step()
      >>> state = muon_torch.export_state(opt, model.named_parameters())
      >>> state["weight"]["momentum"].shape, int(state["weight"]["nonfinite_steps"])
      ((2, 3), 0)

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """
    out: PortableState = {}
    for name, p in named_params:
        state = optimizer.state.get(p, {})
        if "momentum_buffer" in state:
            m = state["momentum_buffer"].detach()
            out[name] = {"momentum": (m.float() if m.dtype == torch.bfloat16 else m).cpu().numpy().copy(),
                         "nonfinite_steps": state["nonfinite_steps"].cpu().numpy().copy()}
            if "neuron_second_moment" in state:
                out[name]["neuron_second_moment"] = state["neuron_second_moment"].detach().cpu().numpy().copy()
    return out


def import_state(optimizer: Muon, named_params: Iterable[tuple[str, Tensor]], portable: PortableState) -> None:
    """Load a portable state (e.g. exported by ``muon_jax`` and remapped) into ``optimizer``.

    Every entry must name one of ``named_params`` with the same shape; it is checked in
    full before anything is loaded. The momentum keeps the optimizer's momentum dtype. A
    ``"neuron_second_moment"`` is loaded where the group has ``neuron_norm`` (else dropped; an
    entry without one starts it from zero, as a fresh NorMuon does).

    Examples:
      >>> import torch, muon_torch
      >>> model = torch.nn.Linear(3, 2, bias=False)
      >>> opt = muon_torch.Muon(model.parameters(), lr=0.02)
      >>> portable = {"weight": {"momentum": torch.ones(2, 3).numpy(), "nonfinite_steps": torch.tensor(0).numpy()}}
      >>> muon_torch.import_state(opt, model.named_parameters(), portable)
      >>> opt.state[model.weight]["momentum_buffer"].sum().item()
      6.0

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """
    params = dict(named_params)
    names = {id(p): n for n, p in params.items()}
    unknown = sorted(set(portable) - set(params))
    if unknown:
        raise ValueError(Messages.STATE_MISSING.format(why=f"it has entries for {unknown}, which are not parameters"))
    groups = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    for name, entry in portable.items():
        p = params[name]
        if id(p) not in groups or groups[id(p)]["algorithm"] != "muon":
            raise ValueError(Messages.STATE_MISSING.format(why=f"parameter {name!r} is not in a Muon param group"))
        if tuple(entry["momentum"].shape) != tuple(p.shape):
            raise ValueError(Messages.STATE_MISMATCH.format(param=f"parameter {names[id(p)]!r}", what="momentum",
                                                            state_shape=tuple(entry["momentum"].shape),
                                                            shape=tuple(p.shape)))
        if "neuron_second_moment" in entry:
            expected = _second_moment_shape(p, groups[id(p)]["matrix_axes"])
            if tuple(entry["neuron_second_moment"].shape) != expected:
                raise ValueError(Messages.STATE_MISMATCH.format(
                    param=f"parameter {names[id(p)]!r}", what="neuron_second_moment",
                    state_shape=tuple(entry["neuron_second_moment"].shape), shape=expected))
    for name, entry in portable.items():
        p = params[name]
        momentum_dtype = groups[id(p)]["momentum_dtype"]
        dtype = getattr(torch, momentum_dtype) if momentum_dtype else p.dtype
        optimizer.state[p] = {
            "momentum_buffer": torch.as_tensor(entry["momentum"]).to(device=p.device, dtype=dtype).clone(),
            "nonfinite_steps": torch.as_tensor(entry["nonfinite_steps"], dtype=torch.int64).to(p.device).clone(),
        }
        if "neuron_second_moment" in entry and groups[id(p)]["neuron_norm"]:
            optimizer.state[p]["neuron_second_moment"] = torch.as_tensor(entry["neuron_second_moment"]).to(
                device=p.device, dtype=p.dtype).clone()
