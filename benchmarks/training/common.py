"""Framework-free parts of the training benchmark: optimizer configurations, tasks, metrics."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from data import CharLMConfig  # noqa: E402

from muon_common import NS_METHODS  # noqa: E402

__all__ = [
    "CONFIGS",
    "EXAMPLES",
    "LR_GRIDS",
    "METRICS",
    "TASKS",
    "VARIANTS",
    "Config",
    "RunResult",
    "Task",
    "first_at_or_under",
    "steps_to_stay",
    "tasks_for",
]

#: The default peak learning-rate grids. "spectral": the step is ``lr`` times an orthogonal matrix
#: (our reference default lr 0.02, Keller Jordan's 0.02); "adamw": the step has the RMS of an
#: AdamW step (AdamW itself, and Muon with ``match_rms_adamw``/``consistent_rms=0.2``). Both are
#: multiplicative grids, each lr twice the last. A task may widen or shift them (``Task.lr_grids``)
#: where a pilot put a best lr at an edge; every configuration of a family shares its task's grid.
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
    adamw: bool = False  # plain AdamW (the reference of "steps to AdamW's final held-out loss")


#: In table order: ours, then the peers. Every configuration runs under the same
#: warmup–stable–decay schedule shape (``muon_common.RECIPE``'s fractions), scaled to its peak lr;
#: a hybrid gives its AdamW part the same peak lr as its Muon part (ours: ``RECIPE.adamw_lr_ratio``).
CONFIGS: dict[str, Config] = {c.key: c for c in (
    Config("recommended", "**ours: `recommended`** (NorMuon)", True, "adamw"),
    # The recipe candidates measured against the 0.1 recipe, each that recipe with one change: NorMuon
    # won and is the recipe now (``recommended``); the AOL start did not.
    Config("recommended_0_1", "ours: the 0.1 recipe (no NorMuon)", True, "adamw"),
    Config("recommended_aol4", "ours: the 0.1 recipe + AOL start, Polar Express steps 2-5 (Turbo-Muon)", True,
           "adamw"),
    # Muon(params, lr) / muon(lr): cubic Newton–Schulz, beta 0.9, wd 0.01, every matrix (the reference).
    Config("ns", "ours: reference defaults (`ns`)", True, "spectral"),
    Config("adamw", "AdamW (β 0.9, 0.95; wd 0.1)", False, "adamw", adamw=True),
    Config("adamw_default", "AdamW (β 0.9, 0.999; wd 0.01)", False, "adamw", adamw=True),
    # Peers at their defaults but the lr (torch.optim.Muon: quintic in bf16, momentum 0.95, nesterov,
    # wd 0.1, "original" lr scaling, AdamW (defaults, wd 0.01) for non-matrices; optax.contrib.muon:
    # quintic, beta 0.95, nesterov, wd 0, width lr scaling, Adam for non-matrices) ...
    Config("torch_muon", "torch.optim.Muon + AdamW(non-matrix)", False, "spectral"),
    Config("optax_muon", "optax.contrib.muon", False, "spectral"),
    # ... and given the options we recommend that they offer.
    Config("torch_muon_hybrid", "torch.optim.Muon(match_rms_adamw) + AdamW(embed, head, non-matrix; β2 0.95, "
           "wd 0.1)", False, "adamw", tuned=True),
    Config("optax_muon_hybrid", "optax.contrib.muon(consistent_rms=0.2, adam_b2=0.95), Adam(embed, head, "
           "non-matrix)", False, "adamw", tuned=True),
)}

#: The recipe candidates: the options each one adds to ``recommended()`` (both frameworks).
VARIANTS: dict[str, dict[str, Any]] = {
    "recommended": {},
    "recommended_0_1": {"neuron_norm": False},
    # Turbo-Muon's recipe: the AOL start, and the Polar Express table without its first step
    # (the step that grows the smallest singular values, which AOL starts larger).
    "recommended_aol4": {"neuron_norm": False, "normalization": "aol", "ns_iters": 4,
                         "method": [list(t) for t in NS_METHODS["polar_express"].coefficients[1:]]},
}

#: What every run measures at each eval step, in this order (accuracy: NaN where it does not apply).
METRICS = ("held_out", "train", "accuracy")


@dataclass(frozen=True)
class Task:
    """A training task: model, data, budget and eval schedule, and the configs it runs per framework."""

    key: str
    title: str
    steps: int
    eval_every: int  # the metrics are measured before training and every eval_every steps
    batch: int
    target: float  # the secondary measure: steps until the *training* loss stays under it
    held_out_name: str
    train_name: str
    configs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # framework -> config keys
    model: CharLMConfig | None = None  # the transformer tasks (None: the digits MLP)
    eval_windows: int = 64  # text tasks: fixed windows of the held-out text for the held-out loss ...
    train_windows: int = 32  # ... and of the training text for the train loss
    lr_grids: dict[str, tuple[float, ...]] = field(default_factory=lambda: dict(LR_GRIDS))

    def grid(self, key: str) -> tuple[float, ...]:
        """The peak-lr grid of config ``key`` on this task."""
        return self.lr_grids[CONFIGS[key].scale]

    @property
    def eval_steps(self) -> np.ndarray:
        return np.arange(0, self.steps + 1, self.eval_every)


_CANDIDATES = ("recommended_0_1", "recommended_aol4")
_FULL = {
    "torch": ("recommended", *_CANDIDATES, "ns", "adamw", "adamw_default", "torch_muon", "torch_muon_hybrid"),
    "jax": ("recommended", *_CANDIDATES, "ns", "adamw", "adamw_default", "optax_muon", "optax_muon_hybrid"),
}
_LM = {"torch": ("recommended", *_CANDIDATES, "adamw", "torch_muon_hybrid"),
       "jax": ("recommended", *_CANDIDATES, "adamw", "optax_muon_hybrid")}

# LM sizing, measured on this 2-core machine, one thread per framework, d 128, 4 blocks, context 128, batch 16:
# a training step of `recommended` took ~200 ms in torch and ~310 ms in JAX with nothing else running, and
# ~2-3x that while other work shared the cores; one eval (128 held-out + 32 train windows) ~0.8 s (torch),
# ~1.2 s (JAX). Chosen: 400 steps (819k tokens, 0.75 epoch), eval every 25 (17 evals): ~95 s a torch run
# and ~145 s a JAX run (+ ~1 min of compilation per JAX config), so 18 runs per framework take ~28 min
# (torch) and ~45 min (JAX) on a quiet machine; split JAX over both processes to finish in ~40 (see run.py).
LM_CPU = CharLMConfig(vocab=256, d_model=128, heads=4, layers=4, context=128)
LM_LARGE = CharLMConfig(vocab=256, d_model=384, heads=6, layers=6, context=256)


def tasks_for(size: str = "small") -> dict[str, Task]:
    """The tasks; ``size="large"`` (for a GPU) makes the LM bigger, with a larger batch and more steps."""
    lm_model, lm_batch, lm_steps, lm_every = (LM_CPU, 16, 400, 25) if size == "small" else (LM_LARGE, 64, 2000, 50)
    return {
        "digits": Task(
            "digits", "digits MLP 64→256→256→10, batch 128", steps=300, eval_every=1, batch=128, target=0.1,
            held_out_name="cross-entropy on the test split (360 images)",
            train_name="cross-entropy on the whole training split (1437 images)", configs=_FULL,
            # Held-out loss on 360 images rewards not overfitting: pilots put every optimizer's best lr
            # at or below the default grids' lowest, so this task's grids start 4x lower.
            lr_grids={"spectral": (0.0025, 0.005, 0.01, 0.02), "adamw": (0.000625, 0.00125, 0.0025, 0.005)}),
        "charlm": Task(
            "charlm", "char transformer (2 blocks, d 64, 4 heads, context 64) on scikit-learn's dataset "
            "descriptions, batch 32", steps=300, eval_every=10, batch=32, target=1.8,
            held_out_name="cross-entropy on 64 fixed windows of the 3 held-out files",
            train_name="cross-entropy on 32 fixed windows of the training files", configs=_FULL,
            model=CharLMConfig(vocab=0),  # vocab: set from the text
            # Pilots: AdamW best at 0.0025-0.005, Muon with AdamW-sized steps at 0.04: five lrs cover both.
            lr_grids={"spectral": LR_GRIDS["spectral"], "adamw": (0.0025, 0.005, 0.01, 0.02, 0.04)}),
        "lm": Task(
            "lm", f"byte-level transformer ({lm_model.layers} blocks, d {lm_model.d_model}, {lm_model.heads} heads, "
            f"context {lm_model.context}) on Python standard-library sources, batch {lm_batch}",
            steps=lm_steps, eval_every=lm_every, batch=lm_batch, target=2.0,  # train loss; revisit after a full run
            held_out_name="cross-entropy (nats/byte) on 128 fixed windows of the held-out modules",
            train_name="cross-entropy on 32 fixed windows of the training modules", configs=_LM,
            model=lm_model, eval_windows=128, train_windows=32,
            # Pilots (PyTorch, seed 0): AdamW 2.02 / 1.99 / 2.29 at 0.00125 / 0.0025 / 0.005; ours 1.54 / 1.48 /
            # 1.66 at 0.005 / 0.01 / 0.02. Four lrs cover both optima; 0.02 is left out to fit the hour.
            lr_grids={"spectral": LR_GRIDS["spectral"], "adamw": (0.00125, 0.0025, 0.005, 0.01)}),
    }


TASKS = tasks_for()


@dataclass
class RunResult:
    """One training run: the metrics at ``Task.eval_steps``, the time of a step, and the state's size."""

    task: str
    framework: str
    config: str
    lr: float
    seed: int
    held_out: list[float]
    train: list[float]
    accuracy: list[float]  # NaN where it does not apply
    ms_per_step: float
    state_ratio: float  # bytes of optimizer state / bytes of params


def first_at_or_under(eval_steps: np.ndarray, losses: np.ndarray, target: float) -> int | None:
    """The first measured step with a loss ``<= target``; ``None`` if there is none."""
    under = np.asarray(losses) <= target
    return int(eval_steps[np.argmax(under)]) if under.any() else None


def steps_to_stay(eval_steps: np.ndarray, losses: np.ndarray, target: float) -> int | None:
    """The first measured step from which the loss stays ``<= target`` to the end; ``None`` if it ends above.

    A NaN counts as above the target.
    """
    above = ~(np.asarray(losses) <= target)
    if above[-1]:
        return None
    last_above = np.flatnonzero(above)
    return int(eval_steps[last_above[-1] + 1]) if last_above.size else int(eval_steps[0])
