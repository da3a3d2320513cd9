"""Train a digits classifier with recommended Muon and with AdamW in Flax NNX, and plot both.

Run ``python examples/digits_flax.py [--steps 300] [--out .]`` (about 20 s on a 2-core CPU).
The twin of ``digits_torch.py``: the same MLP ``64 -> 256 -> 256 -> 10`` (kernels in
Flax layout, the transposes of the torch weights), the same initial numbers, batches and
train/test split. The loss on the whole training split and on the held-out test split is
measured after every step; the script prints, for each optimizer, the final training and
held-out losses and the held-out accuracy, and ``digits_flax.png`` plots both losses.

Muon runs as ``muon_jax.recommended`` (Polar Express, Nesterov momentum, AdamW-matched step
sizes and weight decay 0.1 on the hidden matrix; AdamW, betas 0.9, 0.95, on ``embed``,
``head`` and the biases), against ``optax.adamw`` (betas 0.9, 0.95, weight decay 0.1). Each
runs under the same warmup–stable–decay schedule (``muon_jax.warmup_stable_decay``: linear
warmup over 5% of the steps, constant, linear decay to zero over the last 50%) scaled to its
own peak lr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import jax.numpy as jnp
import optax
from flax import nnx
from jax import Array
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data import MLP_SIZES, Digits, batch_indices, load_digits, mlp_init
from plot import LossCurves, save_loss_panels

import muon_jax

__all__ = ["ADAMW_LR", "BATCH", "MLP", "MUON_LR", "main", "train"]

BATCH = 128
# Best peak lr of the training benchmark's sweep on this task (docs/training.md):
MUON_LR = 0.00125
ADAMW_LR = 0.000625


class MLP(nnx.Module):
    """``embed (64 -> 256) -> ReLU -> hidden (256 -> 256) -> ReLU -> head (256 -> 10)``, shared init."""

    def __init__(self, seed: int = 0) -> None:
        rngs = nnx.Rngs(seed)
        (w1, b1), (w2, b2), (w3, b3) = mlp_init(seed, MLP_SIZES)
        self.embed = nnx.Linear(MLP_SIZES[0], MLP_SIZES[1], rngs=rngs)
        self.hidden = nnx.Linear(MLP_SIZES[1], MLP_SIZES[2], rngs=rngs)
        self.head = nnx.Linear(MLP_SIZES[2], MLP_SIZES[3], rngs=rngs)
        for layer, weight, bias in ((self.embed, w1, b1), (self.hidden, w2, b2), (self.head, w3, b3)):
            layer.kernel[...] = jnp.asarray(weight.T)  # torch (out, in) -> Flax (in, out)
            assert layer.bias is not None
            layer.bias[...] = jnp.asarray(bias)

    def __call__(self, x: Array) -> Array:
        return self.head(nnx.relu(self.hidden(nnx.relu(self.embed(x)))))


def _loss(model: MLP, x: Array, y: Array) -> Array:
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


@nnx.jit
def _train_step(model: MLP, optimizer: nnx.Optimizer, x: Array, y: Array) -> None:
    grads = nnx.grad(_loss)(model, x, y)
    optimizer.update(model, grads)


_eval_loss = nnx.jit(_loss)


def train(
    model: MLP, tx: optax.GradientTransformation, data: Digits, *, steps: int, seed: int, desc: str
) -> tuple[list[float], list[float]]:
    """Train for ``steps`` batches; return the training-split and held-out losses before and after every step."""
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    x_test, y_test = jnp.asarray(data.x_test), jnp.asarray(data.y_test)
    batches = batch_indices(len(data.y_train), BATCH, steps, seed)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    train_losses = [float(_eval_loss(model, x, y))]
    held_losses = [float(_eval_loss(model, x_test, y_test))]
    with tqdm(batches, desc=desc, unit="step") as bar:
        for idx in bar:
            _train_step(model, optimizer, x[idx], y[idx])
            train_losses.append(float(_eval_loss(model, x, y)))
            held_losses.append(float(_eval_loss(model, x_test, y_test)))
            bar.set_postfix(train=f"{train_losses[-1]:.4f}", held_out=f"{held_losses[-1]:.4f}")
    return train_losses, held_losses


def main(argv: Sequence[str] | None = None) -> LossCurves:
    """Train with both optimizers, print final losses and held-out accuracies, save the plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--muon-lr", type=float, default=MUON_LR, help="Muon's peak lr (also its AdamW part's)")
    parser.add_argument("--adamw-lr", type=float, default=ADAMW_LR, help="the AdamW baseline's peak lr")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for digits_flax.png")
    args = parser.parse_args(argv)

    data = load_digits()
    runs = {
        f"Muon (recommended, lr={args.muon_lr:g})": muon_jax.recommended(args.steps, args.muon_lr),
        f"AdamW (lr={args.adamw_lr:g})": optax.adamw(muon_jax.warmup_stable_decay(args.adamw_lr, args.steps),
                                                      b1=0.9, b2=0.95, weight_decay=0.1),
    }
    curves = LossCurves(list(range(args.steps + 1)), {}, {})
    for name, tx in runs.items():
        model = MLP(args.seed)
        curves.train[name], curves.held_out[name] = train(model, tx, data, steps=args.steps, seed=args.seed,
                                                          desc=name.split(" (")[0])
        held_accuracy = jnp.mean(jnp.argmax(model(jnp.asarray(data.x_test)), -1) == jnp.asarray(data.y_test))
        print(f"{name}: final train loss {curves.train[name][-1]:.4f}, held-out loss "
              f"{curves.held_out[name][-1]:.4f}, held-out accuracy {float(held_accuracy):.3f}")
    path = save_loss_panels(curves, args.out / "digits_flax.png",
                            title="digits MLP, Flax: cross-entropy on the training and held-out (test) splits")
    print(f"saved {path}")
    return curves


if __name__ == "__main__":
    main()
