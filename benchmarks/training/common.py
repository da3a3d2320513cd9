"""Framework-free parts of the training benchmark: optimizer configurations, tasks, metrics."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

__all__ = [
    "CONFIGS",
    "EXAMPLES",
    "LR_GRIDS",
    "TASKS",
    "Config",
    "RunResult",
    "Task",
    "steps_to_stay",
]

#: The learning-rate grids. "spectral": the step is ``lr`` times an orthogonal matrix
#: (our default lr 0.02, Keller Jordan's 0.02); "adamw": the step has the RMS of an AdamW
#: step (AdamW itself, and Muon with ``match_rms_adamw``/``consistent_rms=0.2``). Both are
#: the same multiplicative grid: four learning rates, each twice the last.
LR_GRIDS: dict[str, tuple[float, ...]] = {
    "spectral": (0.01, 0.02, 0.04, 0.08),
    "adamw": (0.0025, 0.005, 0.01, 0.02),
}


@dataclass(frozen=True)
class Config:
    """One optimizer configuration; ``key`` is what the framework modules dispatch on."""

    key: str
    label: str  # markdown
    ours: bool
    scale: str  # a key of LR_GRIDS
    tuned: bool = False  # a peer given the options we recommend, beyond its defaults


#: In table order: ours, then the peers. "AdamW(...)" lists what a hybrid gives to AdamW, at
#: the same lr as its Muon part (optax.contrib.muon's default); "β2 0.95": with betas
#: (0.9, 0.95) rather than (0.9, 0.999). "match_rms" is ``adjust_lr="match_rms_adamw"``;
#: "non-matrix" is every parameter that is not a matrix.
CONFIGS: dict[str, Config] = {c.key: c for c in (
    # Muon(params, lr): cubic Newton–Schulz, beta 0.9, wd 0.01, every matrix (the reference).
    Config("ns", "ours: reference defaults (`ns`)", True, "spectral"),
    Config("svd", "ours: `svd`", True, "spectral"),
    Config("quintic", "ours: `quintic`", True, "spectral"),
    Config("polar_express", "ours: `polar_express`", True, "spectral"),
    # Every matrix to Muon (embed and head too), the rest to AdamW.
    Config("pe_nesterov_rms", "ours: `polar_express` + nesterov + match_rms + AdamW(non-matrix, β2 0.95)", True,
           "adamw"),
    # Muon on the hidden matrices only.
    Config("quintic_hybrid", "ours: `quintic` + nesterov + match_rms + AdamW(embed, head, non-matrix, β2 0.95)",
           True, "adamw"),
    Config("recommended", "**ours, recommended: `polar_express` + nesterov + match_rms + AdamW(embed, head, "
           "non-matrix, β2 0.95)**", True, "adamw"),
    # Peers, with their own defaults but the lr (torch.optim.Muon: quintic in bf16, momentum 0.95,
    # nesterov, wd 0.1, "original" lr scaling; optax.contrib.muon: quintic, beta 0.95, nesterov, wd 0,
    # width lr scaling, Adam for non-matrices) ...
    Config("adamw", "AdamW", False, "adamw"),
    Config("torch_muon", "torch.optim.Muon + AdamW(non-matrix)", False, "spectral"),
    Config("optax_muon", "optax.contrib.muon", False, "spectral"),
    # ... and given the recommended split, AdamW-matched step sizes and AdamW betas.
    Config("torch_muon_hybrid", "torch.optim.Muon(match_rms_adamw) + AdamW(embed, head, non-matrix, β2 0.95)",
           False, "adamw", tuned=True),
    Config("optax_muon_hybrid", "optax.contrib.muon(consistent_rms=0.2, adam_b2=0.95), Adam(embed, head, "
           "non-matrix)", False, "adamw", tuned=True),
)}


@dataclass(frozen=True)
class Task:
    """A training task: what is run, for how long, and the target of the metric."""

    key: str
    title: str
    steps: int
    eval_every: int  # the loss is measured before training and every eval_every steps
    target: float
    loss_name: str
    configs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # framework -> config keys

    @property
    def eval_steps(self) -> np.ndarray:
        return np.arange(0, self.steps + 1, self.eval_every)


_OURS_SPECTRAL = ("ns", "svd", "quintic", "polar_express")
_OURS_HYBRID = ("pe_nesterov_rms", "quintic_hybrid", "recommended")

TASKS: dict[str, Task] = {
    "digits": Task(
        "digits", "digits MLP 64→256→256→10, batch 128", steps=300, eval_every=1, target=0.1,
        loss_name="cross-entropy on the whole training split (1437 images)",
        configs={
            "torch": (*_OURS_SPECTRAL, *_OURS_HYBRID, "adamw", "torch_muon", "torch_muon_hybrid"),
            "jax": (*_OURS_SPECTRAL, *_OURS_HYBRID, "adamw", "optax_muon", "optax_muon_hybrid"),
        }),
    "charlm": Task(
        "charlm", "char transformer (2 blocks, d 64, 4 heads, context 64), batch 32", steps=300, eval_every=10,
        target=1.8, loss_name="cross-entropy on 64 fixed windows of the training text (4096 characters)",
        configs={
            "torch": ("ns", "polar_express", *_OURS_HYBRID, "adamw", "torch_muon", "torch_muon_hybrid"),
            "jax": ("ns", "recommended", "optax_muon", "optax_muon_hybrid"),
        }),
}


@dataclass
class RunResult:
    """One training run: the loss at ``Task.eval_steps`` and the wall time of a training step."""

    task: str
    framework: str
    config: str
    lr: float
    seed: int
    losses: list[float]
    ms_per_step: float


def steps_to_stay(eval_steps: np.ndarray, losses: np.ndarray, target: float) -> int | None:
    """The first measured step from which the loss stays ``<= target`` to the end; ``None`` if it ends above.

    A NaN counts as above the target.
    """
    above = ~(np.asarray(losses) <= target)
    if above[-1]:
        return None
    last_above = np.flatnonzero(above)
    return int(eval_steps[last_above[-1] + 1]) if last_above.size else int(eval_steps[0])
