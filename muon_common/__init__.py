"""Framework-free definitions shared by ``muon_torch`` and ``muon_jax``.

Nothing here imports torch or jax: defaults, method names, Newton–Schulz
coefficient tables, the axes description of stacked matrices, and the
validation that both twins run so that they reject the same input with the
same message.
"""

from muon_common._portable import (
    PortableState,
    invert,
    remap,
    sequential_torch_to_flax,
)
from muon_common._recipe import RECIPE, Recipe, WSDPhases, WSDSegment, wsd_phases, wsd_segments
from muon_common._spec import (
    ADAMW_BETAS,
    ADJUST_LR,
    CLIP_EPS,
    DEFAULTS,
    GRAM_RESTART_EVERY,
    METHODS,
    NORMALIZATIONS,
    NS_METHODS,
    AdjustLR,
    Hyperparameters,
    LowPrecisionDtype,
    MatrixAxes,
    Messages,
    Method,
    MethodName,
    Normalization,
    NSMethod,
    ResolvedAxes,
    adamw_matcher,
    gram_costs,
    lr_adjustment,
    neuron_moment_shape,
    ns_schedule,
    resolve_matrix_axes,
    use_gram,
    validate_betas,
    validate_lr,
)

__all__ = [
    "ADAMW_BETAS",
    "ADJUST_LR",
    "CLIP_EPS",
    "DEFAULTS",
    "GRAM_RESTART_EVERY",
    "METHODS",
    "NORMALIZATIONS",
    "NS_METHODS",
    "RECIPE",
    "AdjustLR",
    "Hyperparameters",
    "LowPrecisionDtype",
    "MatrixAxes",
    "Messages",
    "Method",
    "MethodName",
    "NSMethod",
    "Normalization",
    "PortableState",
    "Recipe",
    "ResolvedAxes",
    "WSDPhases",
    "WSDSegment",
    "adamw_matcher",
    "gram_costs",
    "invert",
    "lr_adjustment",
    "neuron_moment_shape",
    "ns_schedule",
    "remap",
    "resolve_matrix_axes",
    "sequential_torch_to_flax",
    "use_gram",
    "validate_betas",
    "validate_lr",
    "wsd_phases",
    "wsd_segments",
]
