"""Muon for PyTorch: a ``torch.optim.Optimizer`` twin of ``muon_jax``."""

import torch

from muon_common import MatrixAxes
from muon_torch._orthogonalize import orthogonalize
from muon_torch._recipe import recommended, warmup_stable_decay
from muon_torch.muon import Muon, export_state, import_state, muon, param_groups

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
