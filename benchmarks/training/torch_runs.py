"""The PyTorch half of the training benchmark: optimizers by config key, and the two training loops."""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from charlm_torch import build_charlm
from common import Task
from data import CharLMConfig, Digits, Text, batch_indices, eval_windows, window_starts
from digits_torch import build_mlp
from torch import nn

import muon_torch

__all__ = ["make_optimizers", "run", "run_charlm", "run_digits"]

_HYBRID = ("embed", "head")
_BETAS = (0.9, 0.95)  # the AdamW part of the hybrids that follow the recommendation


def _split(model: nn.Module, adamw_names: tuple[str, ...]) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(matrices for Muon, the rest for AdamW); ``adamw_names`` moves matching matrices to AdamW."""
    muon: list[nn.Parameter] = []
    rest: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        is_matrix = p.ndim == 2 and not any(n in name for n in adamw_names)
        (muon if is_matrix else rest).append(p)
    return muon, rest


def make_optimizers(key: str, model: nn.Module, lr: float) -> list[torch.optim.Optimizer]:
    """The optimizer(s) of config ``key`` (see ``common.CONFIGS``); all step together."""
    ours: dict[str, dict[str, Any]] = {
        "ns": {}, "svd": {"method": "svd"}, "quintic": {"method": "quintic"},
        "polar_express": {"method": "polar_express"},
    }
    hybrid = {"nesterov": True, "adjust_lr": "match_rms_adamw"}
    if key in ours:
        return [muon_torch.Muon(model.parameters(), lr=lr, **ours[key])]
    if key == "pe_nesterov_rms":
        groups = muon_torch.param_groups(model, betas=_BETAS)
        return [muon_torch.Muon(groups, lr=lr, method="polar_express", **hybrid)]
    if key in ("recommended", "quintic_hybrid"):
        method = "polar_express" if key == "recommended" else "quintic"
        groups = muon_torch.param_groups(model, adamw=_HYBRID, betas=_BETAS)
        return [muon_torch.Muon(groups, lr=lr, method=method, **hybrid)]
    if key == "adamw":
        return [torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)]
    if key in ("torch_muon", "torch_muon_hybrid"):
        hybrid_split = key == "torch_muon_hybrid"
        muon, rest = _split(model, _HYBRID if hybrid_split else ())
        optimizers: list[torch.optim.Optimizer] = [
            torch.optim.Muon(muon, lr=lr, adjust_lr_fn="match_rms_adamw" if hybrid_split else None)]
        if rest:
            betas = _BETAS if hybrid_split else (0.9, 0.999)
            optimizers.append(torch.optim.AdamW(rest, lr=lr, betas=betas, weight_decay=0.01))
        return optimizers
    raise KeyError(f"no PyTorch optimizer for config {key!r}")


def _train(
    model: nn.Module,
    optimizers: list[torch.optim.Optimizer],
    batch_loss: Any,
    eval_loss: Any,
    task: Task,
) -> tuple[list[float], float]:
    """Run ``task.steps`` steps; return the losses at ``task.eval_steps`` and the ms per training step."""
    losses = [eval_loss()]
    train_seconds = 0.0
    for step in range(task.steps):
        start = time.perf_counter()
        loss = batch_loss(step)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers:
            opt.step()
        train_seconds += time.perf_counter() - start
        if (step + 1) % task.eval_every == 0:
            losses.append(eval_loss())
    return losses, 1e3 * train_seconds / task.steps


def run_digits(task: Task, key: str, lr: float, seed: int, data: Digits) -> tuple[list[float], float]:
    torch.manual_seed(seed)
    model = build_mlp(seed)
    optimizers = make_optimizers(key, model, lr)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    batches = torch.from_numpy(batch_indices(len(y), 128, task.steps, seed))

    def eval_loss() -> float:
        with torch.no_grad():
            return F.cross_entropy(model(x), y).item()

    return _train(model, optimizers, lambda s: F.cross_entropy(model(x[batches[s]]), y[batches[s]]), eval_loss, task)


def run_charlm(task: Task, key: str, lr: float, seed: int, text: Text) -> tuple[list[float], float]:
    config = CharLMConfig(vocab=len(text.vocab))
    torch.manual_seed(seed)
    model = build_charlm(config, seed)
    optimizers = make_optimizers(key, model, lr)
    tokens = torch.from_numpy(text.tokens).long()
    starts = torch.from_numpy(window_starts(len(text.tokens), config.context, (task.steps, 32), seed))
    offsets = torch.arange(config.context + 1)
    eval_x, eval_y = (torch.from_numpy(a).long() for a in eval_windows(text.tokens, config.context))

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x).flatten(0, 1), y.flatten())

    def batch_loss(step: int) -> torch.Tensor:
        window = tokens[starts[step][:, None] + offsets]
        return loss_of(window[:, :-1], window[:, 1:])

    def eval_loss() -> float:
        with torch.no_grad():
            return loss_of(eval_x, eval_y).item()

    return _train(model, optimizers, batch_loss, eval_loss, task)


def run(task: Task, key: str, lr: float, seed: int, data: Digits | Text) -> tuple[list[float], float]:
    """One run of ``task`` (digits or charlm, by its data): the losses at ``task.eval_steps`` and ms/step."""
    if isinstance(data, Digits):
        return run_digits(task, key, lr, seed, data)
    return run_charlm(task, key, lr, seed, data)
