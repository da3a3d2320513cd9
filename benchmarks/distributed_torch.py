"""Muon under FSDP2: bytes communicated per optimizer step, and step time with 2 ranks against 1.

Run ``python benchmarks/distributed_torch.py [--repeats 7] [--steps 5] [--width 512] [--layers 4]``.
It launches its own ranks (this file, with torchrun's environment variables; gloo on
localhost, one CPU thread per rank) and prints markdown tables.

The model is ``layers x Linear(width, width)`` (biases included, all in one Muon group,
``method="ns"``, 5 steps, ``clip_grad_norm`` and ``rms_scale`` on), every layer and the root
wrapped with ``fully_shard``. Two schemes for the matrices:

* **ours** (``muon_torch``): each matrix has one owner rank; one ``all_to_all`` gathers its
  rows onto the owner, the owner orthogonalises it, a second ``all_to_all`` returns the rows;
* **naive**: every rank all-gathers every matrix, orthogonalises all of them and keeps its
  rows (what you get from ``full_tensor()``; ``torch.optim.Muon`` on DTensors does this work
  on every rank through DTensor's collectives). Implemented here by swapping the
  gather/orthogonalise/scatter function of ``muon_torch._distributed``; the rest of the
  step (global norms, elementwise work) is the same code.

Bytes are those that leave a rank for another, summed over ranks, per optimizer step:
``all_to_all``: the pieces addressed to other ranks; ``all_gather``: ``(W - 1) x`` the input;
``all_reduce``: the ring algorithm's ``2 (W - 1) / W x`` the input, per rank. "model" is the
formula for the matrices alone: ours ``2 x (n - n_owner)``, naive ``(W - 1) x n`` per matrix
of ``n`` elements; "measured" counts every collective the optimizer step issues (the
matrices and the few scalars of the global flags and norms).

Step time: the median over ``--repeats`` of the mean of ``--steps`` optimizer steps
(``opt.step()`` alone, between barriers, gradients fixed), after one warm-up step.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import muon_torch
from muon_torch import _distributed

# --------------------------------------------------------------------------- counting collectives


class CountingDist:
    """``torch.distributed`` with a byte counter on the collectives ``muon_torch._distributed`` uses."""

    def __init__(self) -> None:
        self.sent = 0
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(dist, name)

    def _world(self, group: Any) -> int:
        return dist.get_world_size(group)

    def all_to_all_single(self, out: torch.Tensor, inp: torch.Tensor, out_splits: list[int],
                          in_splits: list[int], group: Any = None) -> Any:
        me = dist.get_rank(group)
        self.sent += sum(n for r, n in enumerate(in_splits) if r != me) * inp.element_size()
        self.calls += 1
        return dist.all_to_all_single(out, inp, out_splits, in_splits, group=group)

    def all_reduce(self, t: torch.Tensor, op: Any = dist.ReduceOp.SUM, group: Any = None) -> Any:
        w = self._world(group)
        self.sent += round(2 * (w - 1) / w * t.numel() * t.element_size())
        self.calls += 1
        return dist.all_reduce(t, op=op, group=group)

    def all_gather_single(self, out: torch.Tensor, inp: torch.Tensor, group: Any = None) -> Any:
        self.sent += (self._world(group) - 1) * inp.numel() * inp.element_size()
        self.calls += 1
        return _all_gather_single(out, inp, group=group)

    def all_gather(self, outs: list[torch.Tensor], inp: torch.Tensor, group: Any = None) -> Any:
        self.sent += (self._world(group) - 1) * inp.numel() * inp.element_size()
        self.calls += 1
        return dist.all_gather(outs, inp, group=group)


_all_gather_single = _distributed._all_gather
COUNTER = CountingDist()


def naive_directions(entries: list[tuple[torch.Tensor, Any, Any]], method: Any, ns_iters: int, eps: float,
                     dtype: str | None) -> list[torch.Tensor]:
    """The naive scheme: every rank gathers every matrix, orthogonalises all, keeps its rows."""
    wholes = []
    for t, _, layout in entries:
        chunk = layout.span(0)[1]
        pad = [0, 0] * (t.ndim - 1 - layout.dim) + [0, chunk - t.shape[layout.dim]]
        padded = torch.nn.functional.pad(t, pad).contiguous()
        pieces = [torch.empty_like(padded) for _ in range(layout.size)]
        COUNTER.all_gather(pieces, padded, group=layout.group)
        wholes.append(torch.cat([p.narrow(layout.dim, 0, layout.span(r)[1]) for r, p in enumerate(pieces)],
                                dim=layout.dim))
    directions = _distributed._orthogonalize_buckets([(w, axes) for w, (_, axes, _) in zip(wholes, entries,
                                                                                           strict=True)],
                                                     method, ns_iters, eps, dtype)
    return [d.narrow(layout.dim, *layout.span(layout.rank)) for d, (_, _, layout) in zip(directions, entries,
                                                                                         strict=True)]


# --------------------------------------------------------------------------- the ranks


def build(width: int, layers: int) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Linear(width, width) for _ in range(layers)])


def optimizer(model: nn.Module) -> muon_torch.Muon:
    return muon_torch.Muon(model.parameters(), lr=0.02, clip_grad_norm=1.0)


def time_steps(opt: torch.optim.Optimizer, repeats: int, steps: int, barrier: bool) -> tuple[float, float]:
    """Median wall time and median CPU time (this process, all threads) of one ``opt.step()``."""
    opt.step()  # warm-up (and creates the state)
    wall, cpu = [], []
    for _ in range(repeats):
        if barrier:
            dist.barrier()
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            opt.step()
        if barrier:
            dist.barrier()
        wall.append((time.perf_counter() - start) / steps)
        cpu.append((time.process_time() - start_cpu) / steps)
    return statistics.median(wall), statistics.median(cpu)


def worker(args: argparse.Namespace, out: Path) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    torch.set_num_threads(args.threads)
    world = int(os.environ["WORLD_SIZE"])
    x = torch.randn(64, args.width, generator=torch.Generator().manual_seed(1))
    result: dict[str, Any] = {}
    if world == 1:  # the same run in one process, no FSDP
        model = build(args.width, args.layers)
        model(x).square().mean().backward()
        seconds, cpu = time_steps(optimizer(model), args.repeats, args.steps, barrier=False)
        result["single"] = {"seconds": seconds, "cpu": cpu}
    else:
        dist.init_process_group("gloo")
        rank = dist.get_rank()
        mesh = init_device_mesh("cpu", (world,))
        _distributed.dist = COUNTER  # type: ignore[assignment]
        _distributed._all_gather = COUNTER.all_gather_single
        own = _distributed._owned_directions
        for scheme in ("ours", "naive"):
            _distributed._owned_directions = own if scheme == "ours" else naive_directions  # type: ignore[assignment]
            model = build(args.width, args.layers)
            for layer in model:
                fully_shard(layer, mesh=mesh)
            fully_shard(model, mesh=mesh)
            rows = slice(rank * 64 // world, (rank + 1) * 64 // world)
            model(x[rows]).square().mean().backward()
            opt = optimizer(model)
            COUNTER.sent = COUNTER.calls = 0
            seconds, cpu = time_steps(opt, args.repeats, args.steps, barrier=True)
            n_steps = 1 + args.repeats * args.steps
            sent = torch.tensor([COUNTER.sent / n_steps, COUNTER.calls / n_steps], dtype=torch.float64)
            dist.all_reduce(sent)  # sum over ranks (the counter is per rank)
            worst = torch.tensor([seconds, cpu], dtype=torch.float64)
            dist.all_reduce(worst, op=dist.ReduceOp.MAX)  # the step ends when the slowest rank ends
            result[scheme] = {"seconds": float(worst[0]), "cpu": float(worst[1]), "bytes": float(sent[0]),
                              "calls": float(sent[1]) / world}
        dist.barrier()
        dist.destroy_process_group()
        if rank != 0:
            return
    (out / f"world{world}.json").write_text(json.dumps(result))


# --------------------------------------------------------------------------- the launcher


def launch(world: int, args: argparse.Namespace, out: Path, threads: int = 1, tries: int = 2) -> dict[str, Any]:
    """Run the ranks of a ``world``-rank run (again if a rank fails, e.g. its port was taken meanwhile)."""
    for attempt in range(tries):
        try:
            return _launch(world, args, out, threads)
        except RuntimeError as error:
            if attempt == tries - 1:
                raise SystemExit(str(error)) from None
            print(f"{error}; running it again", file=sys.stderr)
    raise AssertionError("unreachable")


def _launch(world: int, args: argparse.Namespace, out: Path, threads: int) -> dict[str, Any]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, __file__, "--worker", str(out), "--threads", str(threads), "--repeats",
            str(args.repeats), "--steps", str(args.steps), "--width", str(args.width), "--layers", str(args.layers)]
    procs = [subprocess.Popen(argv, env={**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(world),
                                         "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                                         "OMP_NUM_THREADS": str(threads)})
             for r in range(world)]
    for p in procs:
        if p.wait(timeout=600) != 0:
            raise RuntimeError(f"a rank of the {world}-rank run failed")
    return json.loads((out / f"world{world}.json").read_text())


def model_bytes(width: int, layers: int, world: int, itemsize: int = 4) -> tuple[int, int]:
    """Bytes the matrices alone need per step: (ours, naive), from the shapes."""
    layout = _distributed._Layout(None, 0, world, 0, (width, width))
    shapes = [(width, width)] * layers
    owner = _distributed.owners([float(math.prod(s)) * min(s) for s in shapes], world)
    ours = sum(2 * (math.prod(s) - layout.span(o)[1] * s[1]) for s, o in zip(shapes, owner, strict=True))
    naive = sum((world - 1) * math.prod(s) for s in shapes)
    return ours * itemsize, naive * itemsize


def fmt_bytes(n: float) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", type=Path, default=None)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args, args.worker)
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        single = launch(1, args, out)["single"]
        single2 = launch(1, args, out, threads=2)["single"]
        two = launch(2, args, out)
        three = launch(3, args, out)

    w, n = args.width, args.layers
    print(f"Muon under FSDP2 (gloo, CPU), {n} x Linear({w}, {w}) with biases, float32; torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores\n")
    print("Bytes sent between ranks per optimizer step (summed over ranks):\n")
    print("| ranks | ours: model | ours: measured | naive: model | naive: measured | ours / naive |")
    print("|---|---|---|---|---|---|")
    for world, run in ((2, two), (3, three), (4, None), (8, None)):
        ours, naive = model_bytes(w, n, world)
        measured = ("—", "—") if run is None else (fmt_bytes(run["ours"]["bytes"]), fmt_bytes(run["naive"]["bytes"]))
        ratio = ours / naive if run is None else run["ours"]["bytes"] / run["naive"]["bytes"]
        print(f"| {world} | {fmt_bytes(ours)} | {measured[0]} | {fmt_bytes(naive)} | {measured[1]} | {ratio:.2f} |")
    print(f"\nCollectives per step and rank (measured, 2 ranks): ours {two['ours']['calls']:.0f}, "
          f"naive {two['naive']['calls']:.0f}.\n")
    print("Optimizer step (`opt.step()`, median): wall time of the slowest rank, and CPU time of the busiest")
    print("rank (all its threads; less sensitive to other load on the machine). One thread per rank unless stated.\n")
    print("| run | wall time | speed-up vs 1 rank | CPU time, busiest rank | vs 1 rank |")
    print("|---|---|---|---|---|")
    rows = [("1 process (no FSDP)", single), ("1 process, 2 threads (no FSDP)", single2),
            ("2 ranks, ours", two["ours"]), ("2 ranks, naive", two["naive"]),
            ("3 ranks, ours", three["ours"]), ("3 ranks, naive", three["naive"])]
    for name, run in rows:
        print(f"| {name} | {run['seconds'] * 1e3:.1f} ms | {single['seconds'] / run['seconds']:.2f}x "
              f"| {run['cpu'] * 1e3:.1f} ms | {run['cpu'] / single['cpu']:.2f} |")


if __name__ == "__main__":
    main()
