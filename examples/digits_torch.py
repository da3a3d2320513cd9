"""Train a digits classifier with Muon and with AdamW in PyTorch, and plot both loss curves.

Run ``python examples/digits_torch.py [--steps 300] [--out .]`` (about 10 s on a laptop CPU).
An MLP ``64 -> 256 -> 256 -> 10`` learns scikit-learn's handwritten digits (batch 128).
Both optimizers start from the same weights and see the same batches; the progress bar
shows the loss on the whole training split, and ``digits_torch.png`` compares the curves.
The Flax twin, ``digits_flax.py``, starts from the same numbers.

Muon runs in the configuration recommended by ``docs/training.md``: Polar Express
orthogonalisation, Nesterov momentum, AdamW-matched step sizes, and AdamW (betas 0.9, 0.95,
same lr) for the input layer (``embed``), the output layer (``head``) and the biases.
"""

from __future__ import annotations

import argparse
import sys
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data import Digits, batch_indices, load_digits, mlp_init
from plot import save_loss_plot

import muon_torch

__all__ = ["ADAMW_LR", "BATCH", "MUON_LR", "adamw", "build_mlp", "main", "recommended_muon", "train"]

BATCH = 128
MUON_LR = 1e-2  # best of the benchmark's sweep (docs/training.md)
ADAMW_LR = 5e-3  # ditto for AdamW


def build_mlp(seed: int = 0) -> nn.Sequential:
    """``embed (64 -> 256) -> ReLU -> hidden (256 -> 256) -> ReLU -> head (256 -> 10)``, shared init."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    names = ("embed", "hidden", "head")
    weights = mlp_init(seed)
    for i, (name, (weight, bias)) in enumerate(zip(names, weights, strict=True)):
        linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weight))
            linear.bias.copy_(torch.from_numpy(bias))
        layers[name] = linear
        if i < len(weights) - 1:
            layers[f"relu{i + 1}"] = nn.ReLU()
    return nn.Sequential(layers)


def recommended_muon(model: nn.Module, lr: float = MUON_LR) -> muon_torch.Muon:
    """Muon on the hidden matrices; AdamW (same lr, betas 0.9, 0.95) on ``embed``, ``head`` and non-matrices."""
    return muon_torch.Muon(muon_torch.param_groups(model, adamw=("embed", "head"), betas=(0.9, 0.95)), lr=lr,
                           method="polar_express", nesterov=True, adjust_lr="match_rms_adamw")


def adamw(model: nn.Module, lr: float = ADAMW_LR) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)


def train(
    model: nn.Module, optimizer: torch.optim.Optimizer, data: Digits, *, steps: int, seed: int, desc: str
) -> list[float]:
    """Train for ``steps`` batches; return the training-split loss before the first and after every step."""
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    batches = torch.from_numpy(batch_indices(len(y), BATCH, steps, seed))

    def train_loss() -> float:
        with torch.no_grad():
            return F.cross_entropy(model(x), y).item()

    losses = [train_loss()]
    with tqdm(batches, desc=desc, unit="step") as bar:
        for idx in bar:
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(train_loss())
            bar.set_postfix(train_loss=f"{losses[-1]:.4f}")
    return losses


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(-1) == y).float().mean().item()


def main(argv: Sequence[str] | None = None) -> dict[str, list[float]]:
    """Train with both optimizers, print final losses and test accuracies, save the plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (a model this small runs fastest on one; extra threads on a busy "
                             "machine can make it 10x slower)")
    parser.add_argument("--muon-lr", type=float, default=MUON_LR)
    parser.add_argument("--adamw-lr", type=float, default=ADAMW_LR)
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for digits_torch.png")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = load_digits()
    x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    runs = {
        f"Muon (recommended, lr={args.muon_lr:g})": lambda m: recommended_muon(m, args.muon_lr),
        f"AdamW (lr={args.adamw_lr:g})": lambda m: adamw(m, args.adamw_lr),
    }
    curves: dict[str, list[float]] = {}
    for name, make_optimizer in runs.items():
        model = build_mlp(args.seed)
        curves[name] = train(model, make_optimizer(model), data, steps=args.steps, seed=args.seed,
                             desc=name.split(" (")[0])
        print(f"{name}: final train loss {curves[name][-1]:.4f}, "
              f"test accuracy {accuracy(model, x_test, y_test):.3f}")
    path = save_loss_plot(curves, args.out / "digits_torch.png",
                          title="digits MLP, PyTorch: loss on the training split")
    print(f"saved {path}")
    return curves


if __name__ == "__main__":
    main()
