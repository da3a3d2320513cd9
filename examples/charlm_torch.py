"""Train a small character-level transformer with recommended Muon and with AdamW in PyTorch, then sample.

Run ``python examples/charlm_torch.py [--steps 300] [--out .]`` (about 40 s on a 2-core CPU).
The model (2 pre-norm blocks, d_model 64, 4 heads, context 64) reads scikit-learn's dataset
descriptions (they ship with scikit-learn: no download) one character at a time, batch 32.
It trains on all but three of the description files (``data.load_text_split``); the loss on
64 fixed windows of the three held-out files and on 32 fixed windows of the training text
is measured every 10 steps. Both optimizers start from the same weights and see the same
batches; the script prints the final losses, plots both in ``charlm_torch.png``, and each
model writes a few lines at the end. The Flax twin is ``charlm_flax.py``.

Muon runs as ``muon_torch.recommended`` (Muon on the blocks' matrices, AdamW with betas 0.9,
0.95 on the embeddings and the ``head``, weight decay 0.1), against AdamW (betas 0.9, 0.95,
weight decay 0.1). Each runs under the same warmup–stable–decay schedule
(``muon_torch.warmup_stable_decay``: linear warmup over 5% of the steps, constant, linear
decay to zero over the last 50%) scaled to its own peak lr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.lr_scheduler import LRScheduler
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data import CharLMConfig, Text, charlm_init, eval_windows, load_text_split, window_starts
from plot import LossCurves, save_loss_panels

import muon_torch

__all__ = ["ADAMW_LR", "BATCH", "MUON_LR", "CharLM", "build_charlm", "main", "sample", "train"]

BATCH = 32
EVAL_WINDOWS = 64  # fixed windows of the held-out text
TRAIN_WINDOWS = 32  # fixed windows of the training text
# Best peak lr of the training benchmark's sweep on this task (docs/training.md):
MUON_LR = 0.04
ADAMW_LR = 0.0025


def rms_norm(x: Tensor, eps: float = 1e-6) -> Tensor:
    """Parameter-free RMS norm over the last axis."""
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)


class Block(nn.Module):
    """Pre-norm block: causal multi-head attention, then a GELU MLP, each added to the stream."""

    def __init__(self, config: CharLMConfig) -> None:
        super().__init__()
        d = config.d_model
        self.heads = config.heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.fc = nn.Linear(d, 4 * d, bias=False)
        self.out = nn.Linear(4 * d, d, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(rms_norm(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(rms_norm(x))))


class CharLM(nn.Module):
    """Token and position embeddings, ``layers`` blocks, RMS norm, and the output ``head``."""

    def __init__(self, config: CharLMConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(config.vocab, config.d_model)
        self.pos_embed = nn.Parameter(torch.zeros(config.context, config.d_model))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.head = nn.Linear(config.d_model, config.vocab, bias=False)

    def forward(self, idx: Tensor) -> Tensor:
        x = self.embed(idx) + self.pos_embed[: idx.shape[-1]]
        for block in self.blocks:
            x = block(x)
        return self.head(rms_norm(x))


def build_charlm(config: CharLMConfig, seed: int = 0) -> CharLM:
    """The model set to the shared initial weights (``data.charlm_init``, Flax layout transposed)."""
    model = CharLM(config)
    weights = {k: torch.from_numpy(v) for k, v in charlm_init(config, seed).items()}
    with torch.no_grad():
        model.embed.weight.copy_(weights["embed"])
        model.pos_embed.copy_(weights["pos_embed"])
        for layer, block in enumerate(model.blocks):
            assert isinstance(block, Block)
            for name in ("qkv", "proj", "fc", "out"):
                linear = getattr(block, name)
                linear.weight.copy_(weights[name][layer].T)
        model.head.weight.copy_(weights["head"].T)
    return model


def train(
    model: CharLM, optimizer: torch.optim.Optimizer, scheduler: LRScheduler, text: Text, held_out: Text,
    config: CharLMConfig, *, steps: int, seed: int, eval_every: int, desc: str,
) -> tuple[list[int], list[float], list[float]]:
    """Train for ``steps`` batches of ``text``; return the steps measured and the loss on the fixed windows at each.

    ``(steps, train, held_out)``: the losses on ``TRAIN_WINDOWS`` fixed windows of the training
    text and on ``EVAL_WINDOWS`` of the held-out text, before training and every ``eval_every`` steps.
    """
    tokens = torch.from_numpy(text.tokens).long()
    starts = window_starts(len(text.tokens), config.context, (steps, BATCH), seed)
    seen = [torch.from_numpy(a).long() for a in eval_windows(text.tokens, config.context, TRAIN_WINDOWS)]
    held = [torch.from_numpy(a).long() for a in eval_windows(held_out.tokens, config.context, EVAL_WINDOWS)]

    def loss_of(x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(model(x).flatten(0, 1), y.flatten())

    def measure(step: int) -> None:
        with torch.no_grad():
            eval_steps.append(step)
            train_losses.append(loss_of(*seen).item())
            held_losses.append(loss_of(*held).item())

    eval_steps: list[int] = []
    train_losses: list[float] = []
    held_losses: list[float] = []
    measure(0)
    with tqdm(range(steps), desc=desc, unit="step") as bar:
        for step in bar:
            idx = torch.from_numpy(starts[step])[:, None] + torch.arange(config.context + 1)
            window = tokens[idx]
            loss = loss_of(window[:, :-1], window[:, 1:])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                measure(step + 1)
                bar.set_postfix(train=f"{train_losses[-1]:.3f}", held_out=f"{held_losses[-1]:.3f}")
    return eval_steps, train_losses, held_losses


def sample(model: CharLM, text: Text, prompt: str, n_chars: int, *, temperature: float = 0.8,
           seed: int = 0) -> str:
    """Continue ``prompt`` by ``n_chars`` characters, drawn at ``temperature``."""
    generator = torch.Generator().manual_seed(seed)
    context = model.pos_embed.shape[0]
    ids = text.encode(prompt).tolist()
    with torch.no_grad():
        for _ in range(n_chars):
            logits = model(torch.tensor([ids[-context:]]))[0, -1] / temperature
            ids.append(int(torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)))
    return text.decode(np.array(ids))


def main(argv: Sequence[str] | None = None) -> LossCurves:
    """Train with both optimizers, print the final losses, save the plot, print a sample of each model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (a model this small runs fastest on one; extra threads on a busy "
                             "machine can make it 10x slower)")
    parser.add_argument("--muon-lr", type=float, default=MUON_LR, help="Muon's peak lr (also its AdamW part's)")
    parser.add_argument("--adamw-lr", type=float, default=ADAMW_LR, help="the AdamW baseline's peak lr")
    parser.add_argument("--sample-chars", type=int, default=240)
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for charlm_torch.png")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    text, held_out = load_text_split()
    config = CharLMConfig(vocab=len(text.vocab))

    def adamw(model: nn.Module) -> tuple[torch.optim.Optimizer, LRScheduler]:
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.adamw_lr, betas=(0.9, 0.95), weight_decay=0.1)
        return optimizer, muon_torch.warmup_stable_decay(optimizer, args.steps)

    runs = {
        f"Muon (recommended, lr={args.muon_lr:g})": lambda m: muon_torch.recommended(m, args.steps, lr=args.muon_lr),
        f"AdamW (lr={args.adamw_lr:g})": adamw,
    }
    curves = LossCurves([], {}, {})
    models: dict[str, CharLM] = {}
    for name, make_optimizer in runs.items():
        model = build_charlm(config, args.seed)
        steps, curves.train[name], curves.held_out[name] = train(
            model, *make_optimizer(model), text, held_out, config, steps=args.steps, seed=args.seed, eval_every=10,
            desc=name.split(" (")[0])
        curves.steps[:] = steps
        models[name] = model
        print(f"{name}: final train loss {curves.train[name][-1]:.3f}, held-out loss {curves.held_out[name][-1]:.3f}")
    path = save_loss_panels(curves, args.out / "charlm_torch.png",
                            title="char transformer, PyTorch: cross-entropy on fixed windows of the training and "
                                  "held-out text")
    print(f"saved {path}")
    for name, model in models.items():
        print(f"\n--- {name} writes:\n{sample(model, text, 'The dataset ', args.sample_chars, seed=args.seed)}")
    return curves


if __name__ == "__main__":
    main()
