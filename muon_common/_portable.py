"""A framework-free optimizer state, for moving a run between the twins.

``export_state`` in either twin gives ``{parameter name: {"momentum": array,
"nonfinite_steps": array}}`` with numpy arrays; :func:`remap` renames the entries for
the other framework's parameter names and transposes the matrices whose layout differs
(torch ``Linear.weight`` is ``(out, in)``, Flax ``kernel`` is ``(in, out)``);
``import_state`` in the other twin loads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: A portable state: parameter name -> {"momentum": numpy array, "nonfinite_steps": numpy array}.
#: (Kept free of imports: this module works on anything with ``.T``, ``.ndim`` and ``.copy()``.)
PortableState = dict[str, dict[str, Any]]

#: One entry of a mapping: the other framework's name, and whether to transpose (2-D).
Target = str | tuple[str, bool]


def remap(state: PortableState, mapping: Mapping[str, Target]) -> PortableState:
    """Rename ``state``'s entries by ``mapping`` (``name -> new_name`` or ``(new_name, transpose)``).

    Every entry must be mapped, so a parameter cannot be dropped silently.
    """
    missing = sorted(set(state) - set(mapping))
    if missing:
        raise KeyError(f"remap: no mapping for {missing}; map every parameter of the state.")
    out: PortableState = {}
    for name, entry in state.items():
        target = mapping[name]
        new_name, transpose = (target, False) if isinstance(target, str) else target
        out[new_name] = {k: (v.T.copy() if transpose and v.ndim == 2 else v.copy()) for k, v in entry.items()}
    return out


def invert(mapping: Mapping[str, Target]) -> dict[str, Target]:
    """The mapping for the opposite direction."""
    out: dict[str, Target] = {}
    for name, target in mapping.items():
        new_name, transpose = (target, False) if isinstance(target, str) else target
        out[new_name] = (name, transpose)
    return out


def sequential_torch_to_flax(linear_indices: list[int]) -> dict[str, Target]:
    """Mapping from a torch ``nn.Sequential`` of ``Linear`` layers to a Flax NNX ``nnx.Sequential``.

    torch names ``"{i}.weight"``/``"{i}.bias"``; Flax NNX names ``"layers/{i}/kernel"``/
    ``"layers/{i}/bias"`` (as ``muon_jax.export_state`` spells the params' key paths).
    """
    out: dict[str, Target] = {}
    for i in linear_indices:
        out[f"{i}.weight"] = (f"layers/{i}/kernel", True)
        out[f"{i}.bias"] = f"layers/{i}/bias"
    return out

