"""Muon for JAX: Optax gradient transformations, a twin of ``muon_torch``."""

from muon_common import MatrixAxes
from muon_jax._muon import (
    ScaleByMuonState,
    ScaleByNorMuonState,
    SkipNonfiniteLeavesState,
    export_state,
    import_state,
    muon,
    muon_labels,
    muon_with_adamw,
    scale_by_muon,
    skip_nonfinite_leaves,
    zero_nonfinite_updates,
)
from muon_jax._orthogonalize import orthogonalize
from muon_jax._recipe import recommended, warmup_stable_decay

__all__ = [
    "MatrixAxes",
    "ScaleByMuonState",
    "ScaleByNorMuonState",
    "SkipNonfiniteLeavesState",
    "export_state",
    "import_state",
    "muon",
    "muon_labels",
    "muon_with_adamw",
    "orthogonalize",
    "recommended",
    "scale_by_muon",
    "skip_nonfinite_leaves",
    "warmup_stable_decay",
    "zero_nonfinite_updates",
]
