"""Framework-free data for the reference demo, shared by its PyTorch and Flax twins.

Everything is drawn with NumPy, so both twins start from identical numbers: the
initial weights of ``Linear(256, 512) -> ReLU -> Linear(512, 256)`` (torch layout,
weights ``(out, in)``) and the regression batch ``x, y``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["BATCH", "HIDDEN", "IN_FEATURES", "OUT_FEATURES", "DemoData", "make_demo"]

IN_FEATURES = 256
HIDDEN = 512
OUT_FEATURES = 256
BATCH = 32


class DemoData(NamedTuple):
    """Initial parameters (torch layout) and the batch of the reference demo."""

    w1: np.ndarray  # (HIDDEN, IN_FEATURES)
    b1: np.ndarray  # (HIDDEN,)
    w2: np.ndarray  # (OUT_FEATURES, HIDDEN)
    b2: np.ndarray  # (OUT_FEATURES,)
    x: np.ndarray  # (BATCH, IN_FEATURES)
    y: np.ndarray  # (BATCH, OUT_FEATURES)


def _linear_init(rng: np.random.Generator, fan_in: int, fan_out: int) -> tuple[np.ndarray, np.ndarray]:
    """torch's default ``nn.Linear`` init: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / np.sqrt(fan_in)
    weight = rng.uniform(-bound, bound, size=(fan_out, fan_in))
    bias = rng.uniform(-bound, bound, size=(fan_out,))
    return weight, bias


def make_demo(seed: int = 0, dtype: DTypeLike = np.float32) -> DemoData:
    """Draw the demo's initial weights and data in float64, then cast to ``dtype``.

    The float32 and float64 runs therefore start from the same numbers up to the
    float32 rounding.
    """
    rng = np.random.default_rng(seed)
    w1, b1 = _linear_init(rng, IN_FEATURES, HIDDEN)
    w2, b2 = _linear_init(rng, HIDDEN, OUT_FEATURES)
    x = rng.standard_normal((BATCH, IN_FEATURES))
    y = rng.standard_normal((BATCH, OUT_FEATURES))
    return DemoData(*(np.ascontiguousarray(a, dtype=dtype) for a in (w1, b1, w2, b2, x, y)))
