"""The hyperparameters' argument docs, written once for both twins.

Each twin's docstring has a line holding only ``{hyperparameters}`` in its ``Args:`` section;
:func:`document_hyperparameters` replaces it with the entries below, indented to match, so
``help()``, Sphinx and the doctests all read the same text in ``muon_torch`` and ``muon_jax``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = ["HYPERPARAMETER_DOCS", "document_hyperparameters"]

#: One entry per field of ``Hyperparameters``, in field order.
HYPERPARAMETER_DOCS: dict[str, str] = {
    "beta": "momentum coefficient: ``m <- beta m + (1 - beta) g``.",
    "weight_decay": "decoupled weight decay ``lambda``: ``p <- p (1 - lr lambda)`` before the update.",
    "eps": "numerical stabiliser of the normalisations (Newton–Schulz's start, the RMS scaling, NorMuon).",
    "ns_iters": "Newton–Schulz steps (ignored by ``method=\"svd\"``).",
    "method": (
        "``\"ns\"`` (the reference's cubic Newton–Schulz), ``\"quintic\"`` (Keller Jordan's), "
        "``\"polar_express\"`` (Amsel et al. 2025), a list of per-step ``(a, b, c)`` triples "
        "(the last repeats), or ``\"svd\"`` (the exact polar factor ``U V^T``)."
    ),
    "rms_scale": "divide the momentum of a parameter that is not a matrix by its RMS: "
                 "``m / sqrt(mean(m^2) + eps)``; ``False`` uses ``m`` as it is.",
    "clip_grad_norm": "if set, the stored momentum of each parameter is rescaled to this L2 norm "
                      "whenever it is larger; ``None`` turns clipping off.",
    "nesterov": "orthogonalise the Nesterov look-ahead ``beta m + (1 - beta) g`` instead of ``m``.",
    "adjust_lr": (
        "the factor ``s`` on a matrix's learning rate: ``None`` (1), ``\"original\"`` "
        "(``sqrt(max(1, fan_out / fan_in))``, Keller Jordan's) or ``\"match_rms_adamw\"`` "
        "(``0.2 sqrt(max(fan_in, fan_out))``, Moonlight's: the RMS of an AdamW update)."
    ),
    "momentum_dtype": "``\"bfloat16\"`` stores the momentum in bfloat16 (the step itself runs in the "
                      "parameter's dtype); ``None`` keeps the parameter's dtype.",
    "orthogonalize_dtype": "``\"bfloat16\"`` runs the Newton–Schulz steps in bfloat16; ``None`` in the "
                           "momentum's dtype.",
    "neuron_norm": (
        "NorMuon: divide each output neuron's orthogonalised update by the running RMS of that "
        "neuron's updates, ``v <- beta2 v + (1 - beta2) mean_fan_in(U^2)``, ``U <- U / (sqrt(v) + eps)``, "
        "rescaled to the Frobenius norm ``U`` had (one value of state per neuron)."
    ),
    "neuron_beta2": "the coefficient ``beta2`` of NorMuon's running mean square.",
    "normalization": (
        "how Newton–Schulz scales its input before the first step: ``\"frobenius\"`` (the "
        "reference, ``G / ||G||_F``) or ``\"aol\"`` (Turbo-Muon's per-row rescaling, closer to "
        "orthogonal from the start; the steps then tend to the polar factor of the rescaled matrix)."
    ),
}

_F = TypeVar("_F", bound=Callable[..., object])
_MARKER = "{hyperparameters}"


def hyperparameter_args(names: Iterable[str], indent: str, aliases: dict[str, str] | None = None) -> str:
    """Google-style ``name: text`` entries for ``names``, each wrapped and indented by ``indent``
    (continuation lines two spaces more); ``aliases`` renames an entry (``{"orthogonalize_dtype": "dtype"}``)."""
    aliases = aliases or {}
    lines = []
    for name in names:
        entry = f"{aliases.get(name, name)}: {HYPERPARAMETER_DOCS[name]}"
        lines.append(textwrap.fill(entry, width=96, initial_indent=indent, subsequent_indent=indent + "  ",
                                   break_on_hyphens=False))
    return "\n".join(lines)


def document_hyperparameters(names: Iterable[str] | None = None, *, exclude: Iterable[str] = (),
                             aliases: dict[str, str] | None = None) -> Callable[[_F], _F]:
    """Decorator: fill the ``{hyperparameters}`` line of a docstring with the entries of ``names``
    (default: every field but ``exclude``), at that line's indentation."""
    chosen = [n for n in (HYPERPARAMETER_DOCS if names is None else names) if n not in set(exclude)]

    def decorate(obj: _F) -> _F:
        doc = obj.__doc__ or ""
        lines = doc.split("\n")
        at = [i for i, line in enumerate(lines) if line.strip() == _MARKER]
        if len(at) != 1:
            raise ValueError(f"{obj.__qualname__}: its docstring needs one line holding only {_MARKER}")
        indent = lines[at[0]][: len(lines[at[0]]) - len(lines[at[0]].lstrip())]
        lines[at[0]] = hyperparameter_args(chosen, indent, aliases)
        obj.__doc__ = "\n".join(lines)
        return obj

    return decorate
