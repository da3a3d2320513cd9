r"""Orthogonalisation quality of ``muon_torch.orthogonalize``, printed as a markdown table.

Run ``python benchmarks/quality.py [--out benchmarks/quality.md]`` (a few seconds on a CPU).

For an input ``G = U S V^T`` (thin SVD, computed in float64) the exact polar factor is
``P = U_r V_r^T``, where ``r`` keeps the numerically nonzero directions,
``S_i > 1e-6 * S_max``. Every Newton–Schulz method here applies an odd polynomial ``p``
to ``G``, ``O = U p(S) V^T``, so it keeps ``G``'s singular vectors, and the singular
values of ``O`` on those directions are exactly (up to rounding)
``diag(U_r^T O V_r) = p(S_r)``. The table reports, for the float32 output ``O`` of
``orthogonalize`` on a float32 input (the metrics are evaluated in float64):

* ``min sv`` / ``max sv``: ``min`` / ``max`` of ``diag(U_r^T O V_r)`` (ideal: 1);
* ``rel dist``: ``||O - P||_F / ||P||_F`` (ideal: 0; ``||P||_F = sqrt(r)``);
* ``rel dist (range)``: the same for ``O_r = U_r U_r^T O V_r V_r^T``, the part of ``O``
  on ``G``'s nonzero directions; ``rel dist^2`` is its square plus ``||O - O_r||_F^2 / r``.
  When ``r < min(m, n)``, ``"svd"`` gives each dropped direction an arbitrary unit
  singular value (any such completion is a polar factor), which puts
  ``sqrt((min(m, n) - r) / r)`` into ``rel dist`` (in quadrature) but nothing here.

Inputs (both float32):

* ``gaussian``: a 256x512 matrix of standard normals (``numpy`` seed 0);
* ``momentum``: the ``momentum_buffer`` of the 256x256 hidden weight of an MLP
  64-256-256-10 (ReLU) after 50 steps of ``Muon(model.parameters(), lr=0.02)`` on
  scikit-learn's digits (standardised features, batch 128, cross-entropy,
  ``torch.manual_seed(0)``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

import muon_torch

METHODS = ("ns", "quintic", "polar_express", "svd")
ITERS = (3, 5, 8)
RANK_TOL = 1e-6


def gaussian_input() -> torch.Tensor:
    """A 256x512 float32 matrix of standard normals, numpy seed 0."""
    return torch.from_numpy(np.random.default_rng(0).standard_normal((256, 512)).astype(np.float32))


def momentum_input(steps: int = 50, batch: int = 128) -> torch.Tensor:
    """The hidden 256x256 weight's Muon momentum after ``steps`` steps on digits."""
    torch.manual_seed(0)
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(StandardScaler().fit_transform(X), dtype=torch.float32)
    y = torch.tensor(y)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )
    opt = muon_torch.Muon(model.parameters(), lr=0.02)
    order = torch.randperm(len(X))
    pos = 0
    for _ in range(steps):
        if pos + batch > len(X):
            order, pos = torch.randperm(len(X)), 0
        idx = order[pos:pos + batch]
        pos += batch
        loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    hidden = model[2].weight
    return opt.state[hidden]["momentum_buffer"].detach().clone()


def quality(O: torch.Tensor, U: torch.Tensor, Vh: torch.Tensor) -> tuple[float, float, float, float]:
    """``min`` and ``max`` of ``diag(U^T O V)``, ``||O - P||_F / ||P||_F`` and the same for
    ``O_r = U U^T O V V^T`` (``P = U V^T``), all in float64."""
    O = O.double()
    core = U.mT @ O @ Vh.mT  # U^T O V, r x r
    sv = core.diagonal()
    P = U @ Vh
    norm = torch.linalg.matrix_norm(P)
    rel = torch.linalg.matrix_norm(O - P) / norm
    rel_range = torch.linalg.matrix_norm(U @ core @ Vh - P) / norm
    return sv.min().item(), sv.max().item(), rel.item(), rel_range.item()


def fmt(x: float) -> str:
    """Four decimals, or scientific notation below 1e-3."""
    return f"{x:.4f}" if abs(x) >= 1e-3 else f"{x:.2e}"


def table(inputs: dict[str, torch.Tensor]) -> str:
    """The markdown report: a line of input statistics, then the quality table."""
    lines = []
    rows = ["| input | method | iters | min sv | max sv | rel dist | rel dist (range) |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for name, G in inputs.items():
        U, S, Vh = torch.linalg.svd(G.double(), full_matrices=False)
        keep = S > RANK_TOL * S[0]
        U, Vh = U[:, keep], Vh[keep]
        lines.append(f"- `{name}`: {tuple(G.shape)}, rank {int(keep.sum())}, condition number "
                     f"sigma_max / sigma_min = {(S[0] / S[keep][-1]).item():.4g} "
                     f"(sigma_max = {S[0].item():.4g})")
        for method in METHODS:
            for iters in (ITERS if method != "svd" else (5,)):
                O = muon_torch.orthogonalize(G, method=method, ns_iters=iters)
                lo, hi, rel, rel_range = quality(O, U, Vh)
                shown = "-" if method == "svd" else str(iters)
                rows.append(f"| {name} | {method} | {shown} | {fmt(lo)} | {fmt(hi)} | {rel:.3e} | {rel_range:.3e} |")
    return "\n".join(lines) + "\n\n" + "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("quality.md"),
                        help="markdown file to write the table to")
    args = parser.parse_args()
    torch.set_num_threads(2)
    report = table({"gaussian": gaussian_input(), "momentum": momentum_input()})
    print(report, end="")
    args.out.write_text("# Orthogonalisation quality (float32)\n\n" + report)


if __name__ == "__main__":
    main()
