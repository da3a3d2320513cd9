"""Train a digits classifier with Muon and with AdamW in Flax NNX, and plot both loss curves.

Run ``python examples/digits_flax.py [--steps 300] [--out .]`` (about 10 s on a laptop CPU).
The twin of ``digits_torch.py``: the same MLP ``64 -> 256 -> 256 -> 10`` (kernels in
Flax layout, the transposes of the torch weights), the same initial numbers and batches,
``muon_jax``'s recommended configuration against ``optax.adamw``; saves ``digits_flax.png``.
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

from data import MLP_SIZES, batch_indices, load_digits, mlp_init
from plot import save_loss_plot

import muon_jax

__all__ = ["ADAMW_LR", "BATCH", "MLP", "MUON_LR", "adamw", "main", "recommended_muon"]

BATCH = 128
MUON_LR = 1e-2  # best of the benchmark's sweep (docs/training.md)
ADAMW_LR = 5e-3  # ditto for AdamW


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


def recommended_muon(lr: float = MUON_LR) -> optax.GradientTransformation:
    """Muon on the hidden matrices; AdamW (same lr, betas 0.9, 0.95) on ``embed``, ``head`` and non-matrices."""
    return muon_jax.muon_with_adamw(lr, adamw=("embed", "head"), adamw_betas=(0.9, 0.95),
                                    method="polar_express", nesterov=True, adjust_lr="match_rms_adamw")


def adamw(lr: float = ADAMW_LR) -> optax.GradientTransformation:
    return optax.adamw(lr, weight_decay=0.01)


def _loss(model: MLP, x: Array, y: Array) -> Array:
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


@nnx.jit
def _train_step(model: MLP, optimizer: nnx.Optimizer, x: Array, y: Array) -> None:
    grads = nnx.grad(_loss)(model, x, y)
    optimizer.update(model, grads)


_eval_loss = nnx.jit(_loss)


def train(model: MLP, tx: optax.GradientTransformation, *, steps: int, seed: int, desc: str) -> list[float]:
    """Train for ``steps`` batches; return the training-split loss before the first and after every step."""
    data = load_digits()
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    batches = batch_indices(len(data.y_train), BATCH, steps, seed)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    losses = [float(_eval_loss(model, x, y))]
    with tqdm(batches, desc=desc, unit="step") as bar:
        for idx in bar:
            _train_step(model, optimizer, x[idx], y[idx])
            losses.append(float(_eval_loss(model, x, y)))
            bar.set_postfix(train_loss=f"{losses[-1]:.4f}")
    return losses


def main(argv: Sequence[str] | None = None) -> dict[str, list[float]]:
    """Train with both optimizers, print final losses and test accuracies, save the plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--muon-lr", type=float, default=MUON_LR)
    parser.add_argument("--adamw-lr", type=float, default=ADAMW_LR)
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for digits_flax.png")
    args = parser.parse_args(argv)

    data = load_digits()
    runs = {
        f"Muon (recommended, lr={args.muon_lr:g})": recommended_muon(args.muon_lr),
        f"AdamW (lr={args.adamw_lr:g})": adamw(args.adamw_lr),
    }
    curves: dict[str, list[float]] = {}
    for name, tx in runs.items():
        model = MLP(args.seed)
        curves[name] = train(model, tx, steps=args.steps, seed=args.seed, desc=name.split(" (")[0])
        test_accuracy = jnp.mean(jnp.argmax(model(jnp.asarray(data.x_test)), -1) == jnp.asarray(data.y_test))
        print(f"{name}: final train loss {curves[name][-1]:.4f}, test accuracy {float(test_accuracy):.3f}")
    path = save_loss_plot(curves, args.out / "digits_flax.png",
                          title="digits MLP, Flax: loss on the training split")
    print(f"saved {path}")
    return curves


if __name__ == "__main__":
    main()
