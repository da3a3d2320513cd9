"""Train a small character-level transformer with Muon and with AdamW in PyTorch, then sample.

Run ``python examples/charlm_torch.py [--steps 500] [--out .]`` (about a minute on a laptop CPU).
The model (2 pre-norm blocks, d_model 64, 4 heads, context 64) reads scikit-learn's dataset
descriptions (they ship with scikit-learn: no download) one character at a time, batch 32.
Both optimizers start from the same weights and see the same batches; the loss on 64 fixed
windows of the text is measured every 10 steps and plotted in ``charlm_torch.png``, and each
model writes a few lines at the end. The Flax twin is ``charlm_flax.py``.
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
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data import CharLMConfig, Text, charlm_init, eval_windows, load_text, window_starts
from plot import save_loss_plot

import muon_torch

__all__ = ["ADAMW_LR", "BATCH", "MUON_LR", "CharLM", "adamw", "build_charlm", "main", "recommended_muon", "sample"]

BATCH = 32
EVAL_WINDOWS = 64
MUON_LR = 2e-2  # best of the benchmark's sweep (docs/training.md)
ADAMW_LR = 2.5e-3  # ditto for AdamW


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


def recommended_muon(model: nn.Module, lr: float = MUON_LR) -> muon_torch.Muon:
    """Muon on the blocks' matrices; AdamW (same lr, betas 0.9, 0.95) on the embeddings and the ``head``."""
    return muon_torch.Muon(muon_torch.param_groups(model, adamw=("embed", "head"), betas=(0.9, 0.95)), lr=lr,
                           method="polar_express", nesterov=True, adjust_lr="match_rms_adamw")


def adamw(model: nn.Module, lr: float = ADAMW_LR) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)


def train(
    model: CharLM, optimizer: torch.optim.Optimizer, text: Text, config: CharLMConfig, *,
    steps: int, seed: int, eval_every: int, desc: str,
) -> tuple[list[int], list[float]]:
    """Train for ``steps`` batches; return the steps and the loss on the fixed windows at each."""
    tokens = torch.from_numpy(text.tokens).long()
    starts = window_starts(len(text.tokens), config.context, (steps, BATCH), seed)
    eval_x, eval_y = (torch.from_numpy(a).long() for a in eval_windows(text.tokens, config.context, EVAL_WINDOWS))

    def loss_of(x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(model(x).flatten(0, 1), y.flatten())

    def eval_loss() -> float:
        with torch.no_grad():
            return loss_of(eval_x, eval_y).item()

    eval_steps, losses = [0], [eval_loss()]
    with tqdm(range(steps), desc=desc, unit="step") as bar:
        for step in bar:
            idx = torch.from_numpy(starts[step])[:, None] + torch.arange(config.context + 1)
            window = tokens[idx]
            loss = loss_of(window[:, :-1], window[:, 1:])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                eval_steps.append(step + 1)
                losses.append(eval_loss())
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
    return eval_steps, losses


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


def main(argv: Sequence[str] | None = None) -> dict[str, list[float]]:
    """Train with both optimizers, save the plot, print a sample of each model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (a model this small runs fastest on one; extra threads on a busy "
                             "machine can make it 10x slower)")
    parser.add_argument("--muon-lr", type=float, default=MUON_LR)
    parser.add_argument("--adamw-lr", type=float, default=ADAMW_LR)
    parser.add_argument("--sample-chars", type=int, default=240)
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for charlm_torch.png")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    text = load_text()
    config = CharLMConfig(vocab=len(text.vocab))
    runs = {
        f"Muon (recommended, lr={args.muon_lr:g})": lambda m: recommended_muon(m, args.muon_lr),
        f"AdamW (lr={args.adamw_lr:g})": lambda m: adamw(m, args.adamw_lr),
    }
    curves: dict[str, list[float]] = {}
    models: dict[str, CharLM] = {}
    eval_steps: list[int] = []
    for name, make_optimizer in runs.items():
        model = build_charlm(config, args.seed)
        eval_steps, curves[name] = train(model, make_optimizer(model), text, config, steps=args.steps,
                                         seed=args.seed, eval_every=10, desc=name.split(" (")[0])
        models[name] = model
        print(f"{name}: final loss {curves[name][-1]:.3f}")
    path = save_loss_plot(curves, args.out / "charlm_torch.png", steps=eval_steps,
                          title="char transformer, PyTorch: loss on 64 fixed text windows")
    print(f"saved {path}")
    for name, model in models.items():
        print(f"\n--- {name} writes:\n{sample(model, text, 'The dataset ', args.sample_chars, seed=args.seed)}")
    return curves


if __name__ == "__main__":
    main()
