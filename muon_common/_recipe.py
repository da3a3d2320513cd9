"""The recommended configuration: one record of hyperparameters and one schedule shape.

Both ``muon_torch.recommended`` and ``muon_jax.recommended`` read :data:`RECIPE`, so a
run moved between frameworks gets the same numbers, and a better tuning reaches every
user through the two functions.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["RECIPE", "Recipe", "WSDPhases", "WSDSegment", "wsd_phases", "wsd_segments"]


@dataclass(frozen=True)
class Recipe:
    """The recommended hyperparameters (see ``docs/training.md`` for how they were tuned).

    Muon takes the hidden matrices; AdamW takes every parameter that is not a matrix and
    every matrix whose name contains one of ``adamw`` (embeddings, output head). Both
    parts follow one warmup–stable–decay schedule (:func:`wsd_phases`) scaled to their
    own peak learning rate. ``adjust_lr="match_rms_adamw"`` and the decoupled weight decay
    are Moonlight's, ``method="polar_express"`` is the Polar Express iteration and
    ``neuron_norm=True`` is NorMuon.

    Examples:
      >>> RECIPE.method, RECIPE.adjust_lr, RECIPE.neuron_norm
      ('polar_express', 'match_rms_adamw', True)
      >>> RECIPE.peak_lrs()  # (Muon part, AdamW part)
      (0.01, 0.01)
      >>> Recipe(beta=0.95).muon_options()["beta"]
      0.95

    References:
      - Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
      - Liu et al., "Muon is Scalable for LLM Training" (Moonlight), arXiv:2502.16982, 2025.
      - Amsel et al., "The Polar Express: Optimal Matrix Sign Methods and Their Application to
        the Muon Algorithm", arXiv:2505.16932, 2025.
      - Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491, 2025.
    """

    lr: float = 0.01  # peak lr of the Muon part (AdamW-sized steps: adjust_lr="match_rms_adamw")
    adamw_lr_ratio: float = 1.0  # peak lr of the AdamW part = lr * adamw_lr_ratio
    beta: float = 0.9  # LM pilots: 0.85 / 0.9 / 0.95 gave 1.434 / 1.440 / 1.477 (docs/training.md)
    nesterov: bool = True
    weight_decay: float = 0.1
    method: str = "polar_express"
    adjust_lr: str = "match_rms_adamw"
    # NorMuon (Li et al. 2025): medians of 3 seeds, LM 1.446 -> 1.429 (PyTorch), 1.456 -> 1.431 (JAX);
    # digits and charlm (5 seeds) 1% lower in both frameworks (docs/training.md, "Recipe candidates").
    neuron_norm: bool = True
    adamw_betas: tuple[float, float] = (0.9, 0.95)  # the AdamW part's (it shares weight_decay)
    adamw: tuple[str, ...] = ("embed", "head")
    warmup_fraction: float = 0.05
    decay_fraction: float = 0.5

    def peak_lrs(self, lr: Any = None, adamw_lr: Any = None) -> tuple[Any, Any]:
        """``(Muon part, AdamW part)`` peak lrs: ``None`` is :attr:`lr`, and ``lr * adamw_lr_ratio``."""
        lr = self.lr if lr is None else lr
        return lr, lr * self.adamw_lr_ratio if adamw_lr is None else adamw_lr

    def muon_options(self) -> dict[str, Any]:
        """The keyword arguments both twins' Muon take from the recipe (not the lr)."""
        return {"beta": self.beta, "nesterov": self.nesterov, "weight_decay": self.weight_decay,
                "method": self.method, "adjust_lr": self.adjust_lr, "neuron_norm": self.neuron_norm}


# (No colon on the first line: napoleon reads a data comment's "X: Y" there as type X.)
#: The recommended configuration, the :class:`Recipe` that ``muon_torch.recommended`` and
#: ``muon_jax.recommended`` read.
#:
#: Examples:
#:   >>> RECIPE.lr, RECIPE.beta, RECIPE.weight_decay
#:   (0.01, 0.9, 0.1)
#:   >>> RECIPE.adamw  # matrices whose names contain one of these go to AdamW
#:   ('embed', 'head')
#:
#: References:
#:   - Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
#:   - Liu et al., "Muon is Scalable for LLM Training" (Moonlight), arXiv:2502.16982, 2025.
#:   - Amsel et al., "The Polar Express: Optimal Matrix Sign Methods and Their Application to
#:     the Muon Algorithm", arXiv:2505.16932, 2025.
#:   - Li et al., "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491, 2025.
RECIPE = Recipe()


class WSDPhases(NamedTuple):
    """Step counts of a warmup–stable–decay schedule; they add up to the total.

    Examples:
      >>> phases = wsd_phases(1000)
      >>> phases
      WSDPhases(warmup=50, stable=450, decay=500)
      >>> sum(phases)
      1000

    References:
      - Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """

    warmup: int
    stable: int
    decay: int


_WSD_ERROR = "Invalid {name}: {value!r}. It must be {what}, e.g. {name}={example}."


def wsd_phases(total_steps: int, warmup_fraction: float | None = None,
               decay_fraction: float | None = None) -> WSDPhases:
    r"""Split ``total_steps`` into warmup, stable and decay steps.

    The learning rate at step ``t`` (0-based, the ``t``-th ``step()``/``update``) is the
    peak times

    .. math::
        f(t) = \begin{cases}
          (t + 1) / W & t < W \\
          1 & W \le t < T - D \\
          (T - t) / D & T - D \le t < T
        \end{cases}

    with ``W = max(1, round(warmup_fraction T))`` and ``D = min(T - W, round(decay_fraction T))``:
    the first step already moves, and the last one is ``1/D`` of the peak, reaching zero
    at ``T`` (the warmup–stable–decay shape of the Muon speedruns; ``decay_fraction=1``
    is a linear decay from the end of warmup). ``None`` takes the fraction from
    :data:`RECIPE`.

    Examples:
      >>> wsd_phases(100, 0.05, 0.5)
      WSDPhases(warmup=5, stable=45, decay=50)
      >>> wsd_phases(10, decay_fraction=1.0)  # warmup, then a linear decay to zero
      WSDPhases(warmup=1, stable=0, decay=9)

    References:
      - Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """
    warmup_fraction = RECIPE.warmup_fraction if warmup_fraction is None else warmup_fraction
    decay_fraction = RECIPE.decay_fraction if decay_fraction is None else decay_fraction
    if not (isinstance(total_steps, numbers.Integral) and not isinstance(total_steps, bool) and total_steps >= 1):
        raise ValueError(_WSD_ERROR.format(name="total_steps", value=total_steps, what="a positive int",
                                           example=1000))
    for name, value in (("warmup_fraction", warmup_fraction), ("decay_fraction", decay_fraction)):
        if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and 0.0 <= value <= 1.0):
            raise ValueError(_WSD_ERROR.format(name=name, value=value, what="a number in [0, 1]", example=0.1))
    total = int(total_steps)
    warmup = min(total, max(1, math.floor(warmup_fraction * total + 0.5)))
    decay = min(total - warmup, math.floor(decay_fraction * total + 0.5))
    return WSDPhases(warmup, total - warmup - decay, decay)


class WSDSegment(NamedTuple):
    """One linear piece of the schedule: from step ``start``, the factor goes from ``init`` to
    ``end`` over ``transition`` steps (``transition == 0``: it stays at ``init``).

    Examples:
      >>> warmup = wsd_segments(100, 0.05, 0.5)[0]
      >>> warmup.start, warmup.init, warmup.end, warmup.transition
      (0, 0.2, 1.0, 4)

    References:
      - Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """

    start: int
    init: float
    end: float
    transition: int


def wsd_segments(total_steps: int, warmup_fraction: float | None = None,
                 decay_fraction: float | None = None) -> list[WSDSegment]:
    """:func:`wsd_phases` as the linear pieces that each twin builds from its library's schedules
    (``LinearLR``/``ConstantLR`` in torch, ``linear_schedule``/``constant_schedule`` in optax).

    Examples:
      >>> for segment in wsd_segments(100, 0.05, 0.5):
      ...     print(segment)
      WSDSegment(start=0, init=0.2, end=1.0, transition=4)
      WSDSegment(start=5, init=1.0, end=1.0, transition=0)
      WSDSegment(start=50, init=1.0, end=0.0, transition=50)

    References:
      - Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """
    warmup, stable, decay = wsd_phases(total_steps, warmup_fraction, decay_fraction)
    segments = []
    if warmup > 1:
        segments.append(WSDSegment(0, 1.0 / warmup, 1.0, warmup - 1))
    if stable > 0 or warmup == 1 or not decay:  # warmup == 1 is one step at the peak
        segments.append(WSDSegment(warmup if segments else 0, 1.0, 1.0, 0))
    if decay:
        segments.append(WSDSegment(total_steps - decay, 1.0, 0.0, decay))
    return segments
