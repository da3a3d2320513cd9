r"""Orthogonalisation quality of ``muon_torch.orthogonalize``, printed as markdown tables.

Run ``python benchmarks/quality.py [--out benchmarks/quality.md] [--device cpu|cuda]`` (about
10 seconds on one CPU core). ``--device cuda`` (or its synonym ``gpu``) runs the
orthogonalisations under test on the GPU; the inputs are made and every metric is computed on
the CPU in float64 as before, and the report then names the device under its title.

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

A second table compares starting normalisations (``normalization=``) at equal matmul count
(``X X^T`` and ``(X X^T) X`` each step, plus ``A A`` when ``c != 0``; the AOL start reuses the
first step's ``X X^T`` and adds none), for ``ns``, ``quintic``, ``polar_express`` and
``polar_express[1:]``, the Polar Express table without its first step (a coefficient list, so
no 1.01 input scale; its remaining steps carry their safety factor), which is Turbo-Muon's
recipe for its AOL start (its code drops the first of Dion's five triples):

* ``frobenius``: the reference start ``G / (k ||G||_F)``;
* ``aol``: Turbo-Muon's ``D G`` on the small side, ``D = diag(sum_j |G G^T|_ij)^(-1/2) / k``;
* ``spectral*``: ``G / (k sigma_max)`` with the exact ``sigma_max`` of the SVD, a reference for
  the best single scalar and not a library option (run as the Frobenius start with the first
  step's ``p(x)`` replaced by ``p(r x)``, the same iterate). A cheap estimate does not replace
  it: a few power iterations on ``G G^T`` cost only matrix-vector products with the first
  step's Gram matrix, but they underestimate ``sigma_max`` (the line above the table gives by
  how much after 5), which puts singular values above 1, where ``polar_express``'s first
  polynomial diverges; a safety margin large enough to prevent that gives the gain back.

A row scaling ``D`` changes the singular vectors, so neither ``diag(U_r^T O V_r)`` gives the
singular values of ``O`` nor does the AOL iteration tend to ``P``: its limit is the polar
factor of ``D G`` (the line above the table gives its distance to ``P``). This table therefore
reports ``min sv``, the ``r``-th largest singular value of ``O`` (its smallest on a rank-``r``
input), and ``rel dist`` to ``P`` as above; below it, the question it was built for: does a
4-step AOL start reach the 5-step Frobenius start of ``polar_express``?

Inputs (both float32):

* ``gaussian``: a 256x512 matrix of standard normals (``numpy`` seed 0);
* ``momentum``: the ``momentum_buffer`` of the 256x256 hidden weight of an MLP
  64-256-256-10 (ReLU) after 50 steps of ``Muon(model.parameters(), lr=0.02)`` on
  scikit-learn's digits (standardised features, batch 128, cross-entropy,
  ``torch.manual_seed(0)``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import _device  # benchmarks/_device.py: this script's folder is on sys.path
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

import muon_torch
from muon_common import DEFAULTS, NS_METHODS, ns_schedule

METHODS = ("ns", "quintic", "polar_express", "svd")
ITERS = (3, 5, 8)
RANK_TOL = 1e-6

#: The second table: starting normalisations, and the methods and step counts they run with.
NORMALIZATIONS = ("frobenius", "aol", "spectral*")
NORM_METHODS: dict[str, Any] = {
    "ns": "ns",
    "quintic": "quintic",
    "polar_express": "polar_express",
    "polar_express[1:]": list(NS_METHODS["polar_express"].coefficients[1:]),
}
NORM_ITERS = (3, 4, 5)
POWER_ITERS = 5


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


def orthogonalize(G: torch.Tensor, device: torch.device, **kwargs: Any) -> torch.Tensor:
    """``muon_torch.orthogonalize(G, **kwargs)`` run on ``device``, the result back on the CPU."""
    return muon_torch.orthogonalize(G.to(device), **kwargs).cpu()


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


def table(inputs: dict[str, torch.Tensor], device: torch.device) -> str:
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
                O = orthogonalize(G, device, method=method, ns_iters=iters)
                lo, hi, rel, rel_range = quality(O, U, Vh)
                shown = "-" if method == "svd" else str(iters)
                rows.append(f"| {name} | {method} | {shown} | {fmt(lo)} | {fmt(hi)} | {rel:.3e} | {rel_range:.3e} |")
    return "\n".join(lines) + "\n\n" + "\n".join(rows) + "\n"


def matmuls(method: Any, iters: int) -> int:
    """Matmuls of ``iters`` steps: ``X X^T`` and ``(X X^T) X``, and ``A A`` when ``c != 0``."""
    coefficients, _ = ns_schedule(method, iters)
    return sum(2 if c == 0.0 else 3 for _, _, c in coefficients)


def spectral_start(G: torch.Tensor, method: Any, iters: int, sigma: float, device: torch.device) -> torch.Tensor:
    """``orthogonalize`` from ``X0 = G / (k sigma)`` instead of ``G / (k sqrt(||G||_F^2 + (n+1) eps))``:
    the Frobenius start with the first step's ``(a, b, c)`` replaced by ``(a r, b r^3, c r^5)``."""
    coefficients, k = ns_schedule(method, iters)
    r = math.sqrt(G.double().square().sum().item() + (G.shape[-1] + 1) * DEFAULTS["eps"]) / (k * sigma)
    (a, b, c), rest = coefficients[0], coefficients[1:]
    return orthogonalize(G, device, method=[(a * r, b * r**3, c * r**5), *rest], ns_iters=iters)


def polar(X: torch.Tensor) -> torch.Tensor:
    """``U_r V_r^T`` over the singular values above ``RANK_TOL * sigma_max``."""
    U, S, Vh = torch.linalg.svd(X, full_matrices=False)
    keep = S > RANK_TOL * S[0]
    return U[:, keep] @ Vh[keep]


def normalization_table(inputs: dict[str, torch.Tensor], device: torch.device) -> str:
    """The second report: a line per input, the table at equal matmul count, the comparison."""
    lines = []
    head = " | ".join(f"min sv ({n}) | rel dist ({n})" for n in NORMALIZATIONS)
    rows = [f"| input | method | steps | matmuls | {head} |",
            "|---|---|---:|---:|" + "---:|---:|" * len(NORMALIZATIONS)]
    results: dict[tuple[str, str, int, str], tuple[float, float]] = {}
    for name, G in inputs.items():
        G64 = G.double()
        S = torch.linalg.svdvals(G64)
        rank = int((S > RANK_TOL * S[0]).sum())
        P = polar(G64)
        small = G64 if G.shape[0] <= G.shape[1] else G64.mT
        gram = small @ small.mT
        aol_limit = polar(gram.abs().sum(dim=-1, keepdim=True).rsqrt() * small)
        aol_limit = aol_limit if G.shape[0] <= G.shape[1] else aol_limit.mT
        v = torch.ones(gram.shape[0], dtype=gram.dtype)
        for _ in range(POWER_ITERS):
            w = gram @ v
            estimate = (w.norm() / v.norm()).sqrt()
            v = w / w.norm()
        lines.append(f"- `{name}`: AOL's limit, the polar factor of `D G`, is at rel dist "
                     f"{(torch.linalg.matrix_norm(aol_limit - P) / torch.linalg.matrix_norm(P)).item():.3e} from `P`; "
                     f"{POWER_ITERS} power iterations on `G G^T` (from the ones vector) estimate sigma_max at "
                     f"{(estimate / S[0]).item():.4f} of its value")
        for label, method in NORM_METHODS.items():
            for iters in NORM_ITERS:
                cells = []
                for norm in NORMALIZATIONS:
                    if norm == "spectral*":
                        O = spectral_start(G, method, iters, S[0].item(), device)
                    else:
                        O = orthogonalize(G, device, method=method, ns_iters=iters, normalization=norm)
                    O = O.double()
                    lo = torch.linalg.svdvals(O)[rank - 1].item()
                    rel = (torch.linalg.matrix_norm(O - P) / torch.linalg.matrix_norm(P)).item()
                    results[name, label, iters, norm] = lo, rel
                    cells.append(f"{fmt(lo)} | {rel:.3e}")
                rows.append(f"| {name} | {label} | {iters} | {matmuls(method, iters)} | {' | '.join(cells)} |")

    def cite(name: str, label: str, iters: int, norm: str) -> str:
        lo, rel = results[name, label, iters, norm]
        return (f"{label} at {iters} steps ({matmuls(NORM_METHODS[label], iters)} matmuls) from {norm}: "
                f"min sv {fmt(lo)}, rel dist {rel:.3e}")

    runs = (("polar_express", 4, "aol"), ("polar_express[1:]", 4, "aol"), ("polar_express", 5, "frobenius"))
    compare = [f"- `{name}`: " + "; ".join(cite(name, *run) for run in runs) for name in inputs]
    return "\n".join(lines) + "\n\n" + "\n".join(rows) + "\n\n" + "\n".join(compare) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("quality.md"),
                        help="markdown file to write the tables to")
    _device.add_device_argument(parser)
    args = parser.parse_args(argv)
    _device.check_torch(parser, args.device)
    device = _device.torch_device(args.device)
    # One thread: the numbers do not depend on the core count, and LAPACK does not stall when
    # the cores are busy (two threads on a loaded two-core machine made each SVD 500x slower).
    torch.set_num_threads(1)
    where = (f"device {args.device}: orthogonalisation on {_device.torch_description(device)}, float32 matmul "
             f"precision {torch.get_float32_matmul_precision()!r}; inputs and metrics on the CPU")
    print(f"- {where}\n", flush=True)
    inputs = {"gaussian": gaussian_input(), "momentum": momentum_input()}
    report = (table(inputs, device) + "\n## Starting normalisation at equal matmul count\n\n"
              + normalization_table(inputs, device))
    print(report, end="")
    # The CPU report is the one in the repository; another device's says where it ran.
    title = "# Orthogonalisation quality (float32)\n\n" + ("" if device.type == "cpu" else f"_{where}._\n\n")
    args.out.write_text(title + report)


if __name__ == "__main__":
    main()
