"""Muon for JAX: Optax gradient transformations, a twin of ``muon_torch``."""

from muon_common import MatrixAxes
from muon_jax._muon import ScaleByMuonState, muon, scale_by_muon
from muon_jax._orthogonalize import orthogonalize

__all__ = ["MatrixAxes", "ScaleByMuonState", "muon", "orthogonalize", "scale_by_muon"]
