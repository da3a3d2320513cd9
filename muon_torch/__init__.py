"""Muon for PyTorch: a ``torch.optim.Optimizer`` twin of ``muon_jax``."""

from muon_common import MatrixAxes
from muon_torch._orthogonalize import orthogonalize
from muon_torch.muon import Muon, muon

__all__ = ["MatrixAxes", "Muon", "muon", "orthogonalize"]
