"""Train a small character-level transformer with recommended Muon and with AdamW in Flax NNX, then sample.

Run ``python examples/charlm_flax.py [--steps 300] [--out .]`` (about 1 to 1.5 minutes on a 2-core CPU).
The twin of ``charlm_torch.py`` (same model, initial numbers, batches, train/held-out text
split and measurements), with the blocks built by ``nnx.vmap`` and run by ``nnx.scan``: each
block weight is one stacked ``(layers, in, out)`` array, which Muon treats as ``layers``
separate matrices (``matrix_axes``). Prints the final losses on fixed windows of the training
and held-out text, plots both in ``charlm_flax.png`` and prints a few lines from each model.

Muon runs as ``muon_jax.recommended`` (Muon on the blocks' matrices, AdamW with betas 0.9,
0.95 on the embeddings and the ``head``, weight decay 0.1), against ``optax.adamw`` (betas
0.9, 0.95, weight decay 0.1). Each runs under the same warmup–stable–decay schedule
(``muon_jax.warmup_stable_decay``: linear warmup over 5% of the steps, constant, linear decay
to zero over the last 50%) scaled to its own peak lr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax import Array
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data import CharLMConfig, Text, charlm_init, eval_windows, load_text_split, text_windows, window_starts
from plot import LossCurves, save_loss_panels

import muon_jax
from muon_common import MatrixAxes

__all__ = [
    "ADAMW_LR", "BATCH", "MUON_LR", "STACKED", "CharLM", "build_charlm", "main", "matrix_axes", "sample", "train",
]

BATCH = 32
EVAL_WINDOWS = 64  # fixed windows of the held-out text
TRAIN_WINDOWS = 32  # fixed windows of the training text
# Best peak lr of the training benchmark's sweep on this task (docs/training.md):
MUON_LR = 0.04
ADAMW_LR = 0.0025

#: A block kernel stacked by ``nnx.vmap``: ``(layers, in, out)``, one matrix per layer.
STACKED = MatrixAxes(rows=1, cols=2)


def rms_norm(x: Array, eps: float = 1e-6) -> Array:
    """Parameter-free RMS norm over the last axis."""
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), -1, keepdims=True) + eps)


def causal_attention(q: Array, k: Array, v: Array) -> Array:
    """Softmax attention of ``(batch, time, heads, head_dim)`` arrays, each position seeing its past.

    Written out rather than ``jax.nn.dot_product_attention``: on CPU its backward is slower.
    """
    t = q.shape[1]
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1]).astype(q.dtype)
    scores = jnp.where(jnp.tril(jnp.ones((t, t), bool)), scores, -jnp.inf)
    return jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, -1), v)


class Block(nnx.Module):
    """Pre-norm block: causal multi-head attention, then a GELU MLP, each added to the stream."""

    def __init__(self, config: CharLMConfig, rngs: nnx.Rngs) -> None:
        d = config.d_model
        self.heads = config.heads
        self.qkv = nnx.Linear(d, 3 * d, use_bias=False, rngs=rngs)
        self.proj = nnx.Linear(d, d, use_bias=False, rngs=rngs)
        self.fc = nnx.Linear(d, 4 * d, use_bias=False, rngs=rngs)
        self.out = nnx.Linear(4 * d, d, use_bias=False, rngs=rngs)

    def __call__(self, x: Array) -> Array:
        b, t, d = x.shape

        def dense(layer: nnx.Linear, a: Array) -> Array:
            # On (b*t, in) rather than (b, t, in): XLA's CPU backward runs about twice as fast.
            return layer(a.reshape(b * t, -1)).reshape(b, t, -1)

        q, k, v = (a.reshape(b, t, self.heads, d // self.heads) for a in jnp.split(dense(self.qkv, rms_norm(x)), 3, -1))
        x = x + dense(self.proj, causal_attention(q, k, v).reshape(b, t, d))
        return x + dense(self.out, jax.nn.gelu(dense(self.fc, rms_norm(x)), approximate=False))


class CharLM(nnx.Module):
    """Token and position embeddings, ``layers`` stacked blocks, RMS norm, and the output ``head``."""

    def __init__(self, config: CharLMConfig, *, rngs: nnx.Rngs) -> None:
        self.embed = nnx.Embed(config.vocab, config.d_model, rngs=rngs)
        self.pos_embed = nnx.Param(jnp.zeros((config.context, config.d_model), jnp.float32))

        @nnx.split_rngs(splits=config.layers)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def make_blocks(rngs: nnx.Rngs) -> Block:
            return Block(config, rngs)

        self.blocks = make_blocks(rngs)
        self.head = nnx.Linear(config.d_model, config.vocab, use_bias=False, rngs=rngs)

    def __call__(self, idx: Array) -> Array:
        x = self.embed(idx) + self.pos_embed[...][: idx.shape[-1]]

        # unroll=True: the scan over the stacked blocks is unrolled when compiled (faster on CPU
        # for a few layers); the weights stay stacked (layers, in, out) either way.
        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry, unroll=True)
        def run_blocks(x: Array, block: Block) -> Array:
            return block(x)

        return self.head(rms_norm(run_blocks(x, self.blocks)))


def build_charlm(config: CharLMConfig, seed: int = 0) -> CharLM:
    """The model set to the shared initial weights (``data.charlm_init``)."""
    model = CharLM(config, rngs=nnx.Rngs(seed))
    weights = charlm_init(config, seed)
    model.embed.embedding[...] = jnp.asarray(weights["embed"])
    model.pos_embed[...] = jnp.asarray(weights["pos_embed"])
    for name in ("qkv", "proj", "fc", "out"):
        getattr(model.blocks, name).kernel[...] = jnp.asarray(weights[name])  # (layers, in, out)
    model.head.kernel[...] = jnp.asarray(weights["head"])
    return model


def matrix_axes(params: Any) -> Any:
    """Stacked block kernels (3-D) are ``layers`` matrices each; the rest follow the 2-D rule."""
    return jax.tree.map(lambda p: STACKED if p.ndim == 3 else None, params)


def _loss(model: CharLM, x: Array, y: Array) -> Array:
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


@nnx.jit
def _train_step(model: CharLM, optimizer: nnx.Optimizer, x: Array, y: Array) -> None:
    optimizer.update(model, nnx.grad(_loss)(model, x, y))


_eval_loss = nnx.jit(_loss)


def train(
    model: CharLM, tx: optax.GradientTransformation, text: Text, held_out: Text, config: CharLMConfig, *,
    steps: int, seed: int, eval_every: int, desc: str,
) -> tuple[list[int], list[float], list[float]]:
    """Train for ``steps`` batches of ``text``; return the steps measured and the loss on the fixed windows at each.

    ``(steps, train, held_out)``: the losses on ``TRAIN_WINDOWS`` fixed windows of the training
    text and on ``EVAL_WINDOWS`` of the held-out text, before training and every ``eval_every`` steps.
    """
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    starts = window_starts(len(text.tokens), config.context, (steps, BATCH), seed)
    seen = [jnp.asarray(a) for a in eval_windows(text.tokens, config.context, TRAIN_WINDOWS)]
    held = [jnp.asarray(a) for a in eval_windows(held_out.tokens, config.context, EVAL_WINDOWS)]
    eval_steps: list[int] = []
    train_losses: list[float] = []
    held_losses: list[float] = []

    def measure(step: int) -> None:
        eval_steps.append(step)
        train_losses.append(float(_eval_loss(model, *seen)))
        held_losses.append(float(_eval_loss(model, *held)))

    measure(0)
    with tqdm(range(steps), desc=desc, unit="step") as bar:
        for step in bar:
            x, y = text_windows(text.tokens, starts[step], config.context)
            _train_step(model, optimizer, jnp.asarray(x), jnp.asarray(y))
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                measure(step + 1)
                bar.set_postfix(train=f"{train_losses[-1]:.3f}", held_out=f"{held_losses[-1]:.3f}")
    return eval_steps, train_losses, held_losses


@nnx.jit(static_argnames="temperature")
def _next_token(model: CharLM, window: Array, last: Array, key: Array, temperature: float) -> Array:
    logits = model(window[None])[0, last] / temperature
    return jax.random.categorical(key, logits)


def sample(model: CharLM, text: Text, prompt: str, n_chars: int, *, temperature: float = 0.8,
           seed: int = 0) -> str:
    """Continue ``prompt`` by ``n_chars`` characters, drawn at ``temperature``.

    The model always reads a full ``context``-long window (one compilation): the text so far,
    left-aligned and padded, or its last ``context`` characters; causal attention makes the
    padding invisible to the position read.
    """
    context = model.pos_embed.shape[0]
    ids = text.encode(prompt).tolist()
    key = jax.random.key(seed)
    for _ in range(n_chars):
        window = np.zeros(context, dtype=np.int32)
        recent = ids[-context:]
        window[: len(recent)] = recent
        key, sub = jax.random.split(key)
        ids.append(int(_next_token(model, jnp.asarray(window), jnp.asarray(len(recent) - 1), sub, temperature)))
    return text.decode(ids)


def main(argv: Sequence[str] | None = None) -> LossCurves:
    """Train with both optimizers, print the final losses, save the plot, print a sample of each model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--muon-lr", type=float, default=MUON_LR, help="Muon's peak lr (also its AdamW part's)")
    parser.add_argument("--adamw-lr", type=float, default=ADAMW_LR, help="the AdamW baseline's peak lr")
    parser.add_argument("--sample-chars", type=int, default=240)
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for charlm_flax.png")
    args = parser.parse_args(argv)

    text, held_out = load_text_split()
    config = CharLMConfig(vocab=len(text.vocab))
    runs = {
        f"Muon (recommended, lr={args.muon_lr:g})": muon_jax.recommended(args.steps, args.muon_lr,
                                                                          matrix_axes=matrix_axes),
        f"AdamW (lr={args.adamw_lr:g})": optax.adamw(muon_jax.warmup_stable_decay(args.adamw_lr, args.steps),
                                                      b1=0.9, b2=0.95, weight_decay=0.1),
    }
    curves = LossCurves([], {}, {})
    models: dict[str, CharLM] = {}
    for name, tx in runs.items():
        model = build_charlm(config, args.seed)
        steps, curves.train[name], curves.held_out[name] = train(
            model, tx, text, held_out, config, steps=args.steps, seed=args.seed, eval_every=10,
            desc=name.split(" (")[0])
        curves.steps[:] = steps
        models[name] = model
        print(f"{name}: final train loss {curves.train[name][-1]:.3f}, held-out loss {curves.held_out[name][-1]:.3f}")
    path = save_loss_panels(curves, args.out / "charlm_flax.png",
                            title="char transformer, Flax: cross-entropy on fixed windows of the training and "
                                  "held-out text")
    print(f"saved {path}")
    for name, model in models.items():
        print(f"\n--- {name} writes:\n{sample(model, text, 'The dataset ', args.sample_chars, seed=args.seed)}")
    return curves


if __name__ == "__main__":
    main()
