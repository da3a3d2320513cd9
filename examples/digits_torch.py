"""Train a digits classifier with recommended Muon and with AdamW in PyTorch, and plot both.

Run ``python examples/digits_torch.py [--steps 300] [--out .]`` (about 20 s on a 2-core CPU).
An MLP ``64 -> 256 -> 256 -> 10`` learns scikit-learn's handwritten digits (batch 128,
80/20 stratified train/test split). Both optimizers start from the same weights and see the
same batches; the loss on the whole training split and on the held-out test split is measured
after every step. The script prints, for each optimizer, the final training and held-out
losses and the held-out accuracy, and ``digits_torch.png`` plots both losses.
The Flax twin, ``digits_flax.py``, starts from the same numbers.

Muon runs as ``muon_torch.recommended``: Polar Express orthogonalisation, Nesterov momentum,
AdamW-matched step sizes and weight decay 0.1 on the hidden matrix, AdamW (betas 0.9, 0.95)
on the input layer (``embed``), the output layer (``head``) and the biases. AdamW (betas 0.9,
0.95, weight decay 0.1) is the baseline. Each runs under the same warmup–stable–decay
schedule (``muon_torch.warmup_stable_decay``: linear warmup over 5% of the steps, constant,
linear decay to zero over the last 50%) scaled to its own peak lr.
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
from torch.optim.lr_scheduler import LRScheduler
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data import Digits, batch_indices, load_digits, mlp_init
from plot import LossCurves, save_loss_panels

import muon_torch

__all__ = ["ADAMW_LR", "BATCH", "MUON_LR", "build_mlp", "main", "train"]

BATCH = 128
# Best peak lr of the training benchmark's sweep on this task (docs/training.md):
MUON_LR = 0.00125
ADAMW_LR = 0.000625


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


def train(
    model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: LRScheduler, data: Digits, *,
    steps: int, seed: int, desc: str,
) -> tuple[list[float], list[float]]:
    """Train for ``steps`` batches; return the training-split and held-out losses before and after every step."""
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    batches = torch.from_numpy(batch_indices(len(y), BATCH, steps, seed))

    def measure() -> None:
        with torch.no_grad():
            train_losses.append(F.cross_entropy(model(x), y).item())
            held_losses.append(F.cross_entropy(model(x_test), y_test).item())

    train_losses: list[float] = []
    held_losses: list[float] = []
    measure()
    with tqdm(batches, desc=desc, unit="step") as bar:
        for idx in bar:
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            measure()
            bar.set_postfix(train=f"{train_losses[-1]:.4f}", held_out=f"{held_losses[-1]:.4f}")
    return train_losses, held_losses


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(-1) == y).float().mean().item()


def main(argv: Sequence[str] | None = None) -> LossCurves:
    """Train with both optimizers, print final losses and held-out accuracies, save the plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (a model this small runs fastest on one; extra threads on a busy "
                             "machine can make it 10x slower)")
    parser.add_argument("--muon-lr", type=float, default=MUON_LR, help="Muon's peak lr (also its AdamW part's)")
    parser.add_argument("--adamw-lr", type=float, default=ADAMW_LR, help="the AdamW baseline's peak lr")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for digits_torch.png")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = load_digits()
    x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)

    def adamw(model: nn.Module) -> tuple[torch.optim.Optimizer, LRScheduler]:
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.adamw_lr, betas=(0.9, 0.95), weight_decay=0.1)
        return optimizer, muon_torch.warmup_stable_decay(optimizer, args.steps)

    runs = {
        f"Muon (recommended, lr={args.muon_lr:g})": lambda m: muon_torch.recommended(m, args.steps, lr=args.muon_lr),
        f"AdamW (lr={args.adamw_lr:g})": adamw,
    }
    curves = LossCurves(list(range(args.steps + 1)), {}, {})
    for name, make_optimizer in runs.items():
        model = build_mlp(args.seed)
        curves.train[name], curves.held_out[name] = train(model, *make_optimizer(model), data, steps=args.steps,
                                                          seed=args.seed, desc=name.split(" (")[0])
        print(f"{name}: final train loss {curves.train[name][-1]:.4f}, held-out loss "
              f"{curves.held_out[name][-1]:.4f}, held-out accuracy {accuracy(model, x_test, y_test):.3f}")
    path = save_loss_panels(curves, args.out / "digits_torch.png",
                            title="digits MLP, PyTorch: cross-entropy on the training and held-out (test) splits")
    print(f"saved {path}")
    return curves


if __name__ == "__main__":
    main()
