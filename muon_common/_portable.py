"""A framework-free optimizer state, for moving a run between the twins.

``export_state`` in either twin gives ``{parameter name: {"momentum": array,
"nonfinite_steps": array}}`` with numpy arrays (and ``"neuron_second_moment"`` with
``neuron_norm``); :func:`remap` renames the entries for
the other framework's parameter names and transposes the matrices whose layout differs
(torch ``Linear.weight`` is ``(out, in)``, Flax ``kernel`` is ``(in, out)``);
``import_state`` in the other twin loads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: A portable state, ``{parameter name: {"momentum": array, "nonfinite_steps": array}}`` with
#: numpy arrays, and ``"neuron_second_moment"`` (NorMuon's per-neuron state) with
#: ``neuron_norm``: what ``export_state`` gives and ``import_state`` takes in both twins.
#: (Kept free of imports: this module works on anything with ``.T``, ``.ndim`` and ``.copy()``.)
#:
#: Examples:
#:   >>> import numpy as np
#:   >>> state: PortableState = {"0.weight": {"momentum": np.zeros((3, 2)), "nonfinite_steps": np.array(0)}}
#:   >>> remap(state, {"0.weight": ("layers/0/kernel", True)})["layers/0/kernel"]["momentum"].shape
#:   (2, 3)
#:
#: References:
#:   - Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
#:   - Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491, 2025.
PortableState = dict[str, dict[str, Any]]

#: One entry of a mapping: the other framework's name, and whether to transpose (2-D).
Target = str | tuple[str, bool]


def remap(state: PortableState, mapping: Mapping[str, Target]) -> PortableState:
    """Rename ``state``'s entries by ``mapping`` (``name -> new_name`` or ``(new_name, transpose)``).

    Every entry must be mapped, so a parameter cannot be dropped silently. The arrays are
    copied; a transposed entry has each of its 2-D arrays transposed (its momentum, and its
    ``"neuron_second_moment"``, whose reduced axis moves with it).

    Examples:
      >>> import numpy as np
      >>> state = {"0.weight": {"momentum": np.arange(6.0).reshape(3, 2), "nonfinite_steps": np.array(0)},
      ...          "0.bias": {"momentum": np.zeros(3), "nonfinite_steps": np.array(0)}}
      >>> flax = remap(state, {"0.weight": ("layers/0/kernel", True), "0.bias": "layers/0/bias"})
      >>> sorted(flax), flax["layers/0/kernel"]["momentum"].shape
      (['layers/0/bias', 'layers/0/kernel'], (2, 3))
      >>> remap(state, {"0.weight": "w"})
      Traceback (most recent call last):
        ...
      KeyError: "remap: no mapping for ['0.bias']; map every parameter of the state."

    References:
      - Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      - Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491, 2025.
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
    """The mapping for the opposite direction.

    Examples:
      >>> invert({"0.weight": ("layers/0/kernel", True), "0.bias": "layers/0/bias"})
      {'layers/0/kernel': ('0.weight', True), 'layers/0/bias': ('0.bias', False)}

    References:
      - Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      - Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491, 2025.
    """
    out: dict[str, Target] = {}
    for name, target in mapping.items():
        new_name, transpose = (target, False) if isinstance(target, str) else target
        out[new_name] = (name, transpose)
    return out


def sequential_torch_to_flax(linear_indices: list[int]) -> dict[str, Target]:
    """Mapping from a torch ``nn.Sequential`` of ``Linear`` layers to a Flax NNX ``nnx.Sequential``.

    torch names ``"{i}.weight"``/``"{i}.bias"``; Flax NNX names ``"layers/{i}/kernel"``/
    ``"layers/{i}/bias"`` (as ``muon_jax.export_state`` spells the params' key paths).

    Examples:
      >>> for torch_name, target in sequential_torch_to_flax([0, 2]).items():
      ...     print(torch_name, target)
      0.weight ('layers/0/kernel', True)
      0.bias layers/0/bias
      2.weight ('layers/2/kernel', True)
      2.bias layers/2/bias

    References:
      - Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      - Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491, 2025.
    """
    out: dict[str, Target] = {}
    for i in linear_indices:
        out[f"{i}.weight"] = (f"layers/{i}/kernel", True)
        out[f"{i}.bias"] = f"layers/{i}/bias"
    return out

