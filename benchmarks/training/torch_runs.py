"""The PyTorch half of the training benchmark: optimizers and schedulers by config key, and the training loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from charlm_torch import build_charlm
from common import VARIANTS, Task
from data import Digits, Text, batch_indices, eval_windows, window_starts
from digits_torch import build_mlp
from torch import nn

import muon_torch

__all__ = ["make_optimizers", "run"]

_HYBRID = ("embed", "head")
_BETAS = (0.9, 0.95)  # AdamW's betas in the LM-standard setting and in the tuned peers


def _split(model: nn.Module, adamw_names: tuple[str, ...]) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(matrices for Muon, the rest for AdamW); ``adamw_names`` moves matching matrices to AdamW."""
    muon: list[nn.Parameter] = []
    rest: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        is_matrix = p.ndim == 2 and not any(n in name for n in adamw_names)
        (muon if is_matrix else rest).append(p)
    return muon, rest


def make_optimizers(key: str, model: nn.Module, lr: float, total_steps: int) -> list[tuple[torch.optim.Optimizer, Any]]:
    """The (optimizer, scheduler) pairs of config ``key`` (see ``common.CONFIGS``); all step together.

    Every optimizer gets the same warmup–stable–decay shape (``muon_torch.warmup_stable_decay``,
    ``RECIPE``'s fractions) scaled to its peak lr.
    """
    def wsd(opt: torch.optim.Optimizer) -> tuple[torch.optim.Optimizer, Any]:
        return opt, muon_torch.warmup_stable_decay(opt, total_steps)

    if key in VARIANTS:
        return [muon_torch.recommended(model, total_steps, lr=lr, **VARIANTS[key])]
    if key == "ns":
        return [wsd(muon_torch.Muon(model.parameters(), lr=lr))]
    if key == "adamw":
        return [wsd(torch.optim.AdamW(model.parameters(), lr=lr, betas=_BETAS, weight_decay=0.1))]
    if key == "adamw_default":
        return [wsd(torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01))]
    if key in ("torch_muon", "torch_muon_hybrid"):
        tuned = key == "torch_muon_hybrid"
        muon, rest = _split(model, _HYBRID if tuned else ())
        pairs = [wsd(torch.optim.Muon(muon, lr=lr, adjust_lr_fn="match_rms_adamw" if tuned else None))]
        if rest:
            adamw = (torch.optim.AdamW(rest, lr=lr, betas=_BETAS, weight_decay=0.1) if tuned
                     else torch.optim.AdamW(rest, lr=lr, weight_decay=0.01))
            pairs.append(wsd(adamw))
        return pairs
    raise KeyError(f"no PyTorch optimizer for config {key!r}")


def _state_ratio(model: nn.Module, optimizers: list[torch.optim.Optimizer]) -> float:
    """Bytes of every tensor in the optimizers' state over the bytes of the params."""
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    state_bytes = sum(v.numel() * v.element_size() for opt in optimizers for s in opt.state.values()
                      for v in s.values() if torch.is_tensor(v))
    return state_bytes / param_bytes


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(task: Task, key: str, lr: float, seed: int, data: Digits | tuple[Text, Text],
        device: str = "cpu") -> tuple[list[list[float]], float, float]:
    """One run: ``[held_out, train, accuracy]`` at ``task.eval_steps``, ms per training step, state ratio."""
    dev = torch.device("cuda" if device == "gpu" else device)
    torch.manual_seed(seed)
    batch_loss: Callable[[int], torch.Tensor]
    evaluate: Callable[[], tuple[float, float, float]]
    if isinstance(data, Digits):
        model = build_mlp(seed).to(dev)
        x, y, x_test, y_test = (torch.from_numpy(a).to(dev) for a in data)
        batches = torch.from_numpy(batch_indices(len(data.y_train), task.batch, task.steps, seed)).to(dev)

        def batch_loss(step: int) -> torch.Tensor:
            return F.cross_entropy(model(x[batches[step]]), y[batches[step]])

        def evaluate() -> tuple[float, float, float]:
            with torch.no_grad():
                logits = model(x_test)
                accuracy = (logits.argmax(-1) == y_test).float().mean()
                return F.cross_entropy(logits, y_test).item(), F.cross_entropy(model(x), y).item(), accuracy.item()
    else:
        train_text, held_text = data
        assert task.model is not None
        config = task.model._replace(vocab=len(train_text.vocab))
        model = build_charlm(config, seed).to(dev)
        tokens = torch.from_numpy(train_text.tokens).long().to(dev)
        starts = torch.from_numpy(window_starts(len(train_text.tokens), config.context, (task.steps, task.batch),
                                                seed)).to(dev)
        offsets = torch.arange(config.context + 1, device=dev)
        held = [torch.from_numpy(a).long().to(dev)
                for a in eval_windows(held_text.tokens, config.context, task.eval_windows)]
        seen = [torch.from_numpy(a).long().to(dev)
                for a in eval_windows(train_text.tokens, config.context, task.train_windows)]

        def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(model(x).flatten(0, 1), y.flatten())

        def batch_loss(step: int) -> torch.Tensor:
            window = tokens[starts[step][:, None] + offsets]
            return loss_of(window[:, :-1], window[:, 1:])

        def evaluate() -> tuple[float, float, float]:
            with torch.no_grad():
                return loss_of(*held).item(), loss_of(*seen).item(), float("nan")

    pairs = make_optimizers(key, model, lr, task.steps)
    optimizers = [opt for opt, _ in pairs]
    metrics = [evaluate()]
    train_seconds = 0.0
    for step in range(task.steps):
        _sync(dev)
        start = time.perf_counter()
        loss = batch_loss(step)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt, scheduler in pairs:
            opt.step()
            scheduler.step()
        _sync(dev)
        train_seconds += time.perf_counter() - start
        if (step + 1) % task.eval_every == 0:
            metrics.append(evaluate())
    columns = [list(col) for col in zip(*metrics, strict=True)]
    return columns, 1e3 * train_seconds / task.steps, _state_ratio(model, optimizers)
