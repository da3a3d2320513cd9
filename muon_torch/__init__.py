"""Muon for PyTorch: a ``torch.optim.Optimizer`` twin of ``muon_jax``."""

import sys

import torch

from muon_common import MatrixAxes
from muon_torch import optimizer as _optimizer
from muon_torch._orthogonalize import orthogonalize
from muon_torch._recipe import recommended, warmup_stable_decay
from muon_torch.optimizer import Muon, export_state, import_state, muon, param_groups

__all__ = [
    "MatrixAxes",
    "Muon",
    "export_state",
    "import_state",
    "muon",
    "orthogonalize",
    "param_groups",
    "recommended",
    "warmup_stable_decay",
]

# Param groups may hold a ``MatrixAxes``: let ``torch.load(weights_only=True)`` (the
# default since torch 2.6) read back an optimizer checkpoint that has one.
torch.serialization.add_safe_globals([MatrixAxes])

# Until 0.1 the optimizer lived in ``muon_torch/muon.py``, a module the function ``muon`` hid.
# Objects pickled then (``torch.save(optimizer)``) name ``muon_torch.muon.Muon``: keep that path
# importable without a module of that name.
sys.modules[f"{__name__}.muon"] = _optimizer
