"""The reference Muon demo in PyTorch: a 2-layer MLP regressing noise, 200 steps.

Run ``python examples/reference_demo_torch.py [--dtype float32|float64]``. The
Flax twin, ``reference_demo_flax.py``, starts from the same numbers
(``reference_demo_data.make_demo``) and prints the same loss curve.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_demo_data import HIDDEN, IN_FEATURES, OUT_FEATURES, make_demo

from muon_common import DEFAULTS
from muon_torch import Muon

__all__ = ["build_model", "main"]

_DTYPES = {"float32": np.float32, "float64": np.float64}


def build_model(
    seed: int = 0, dtype: type[np.floating] = np.float32
) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    """The demo's model, set to the shared initial weights, and its batch ``(x, y)``."""
    data = make_demo(seed, dtype)
    model = nn.Sequential(nn.Linear(IN_FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, OUT_FEATURES))
    first, last = model[0], model[2]
    assert isinstance(first, nn.Linear) and isinstance(last, nn.Linear)
    torch_dtype = torch.from_numpy(data.x).dtype
    model.to(torch_dtype)
    with torch.no_grad():
        first.weight.copy_(torch.from_numpy(data.w1))
        first.bias.copy_(torch.from_numpy(data.b1))
        last.weight.copy_(torch.from_numpy(data.w2))
        last.bias.copy_(torch.from_numpy(data.b2))
    return model, torch.from_numpy(data.x), torch.from_numpy(data.y)


def main(
    steps: int = 200,
    dtype: type[np.floating] = np.float32,
    *,
    seed: int = 0,
    eps: float = DEFAULTS["eps"],
    log_every: int = 20,
) -> list[float]:
    """Train the demo for ``steps`` steps; return the loss of every step (before its update).

    ``eps`` is Muon's stabiliser (the demo uses the default); ``log_every=0`` silences the printing.
    """
    model, x, y = build_model(seed, dtype)
    loss_fn = nn.MSELoss()
    optimizer = Muon(model.parameters(), lr=3e-4, beta=0.9, weight_decay=0.02, ns_iters=5, method="ns", eps=eps)
    losses: list[float] = []
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"step {step + 1:03d} | loss = {loss.item():.4f}")
    return losses


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=sorted(_DTYPES), default="float32")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    main(steps=args.steps, dtype=_DTYPES[args.dtype])
