"""``muon_torch.Muon`` under torch.distributed: FSDP2 (DTensor params), DDP and hand-made DTensor layouts.

Real processes (this file run as a script, one per rank, with torchrun's environment
variables), the gloo backend on localhost, 2 and 3 ranks. Every distributed run is
compared with the same run in this (single) process: same initial weights, same data
(each rank takes its slice of the batch; FSDP2/DDP average the gradients back to the
full-batch mean), 5 steps.

Bound: the fp32 parity bound 1e-5 (max |distributed - single| / max |single|, per tensor).
The two runs differ only by float32 rounding: the gradients averaged across ranks in another
order, and the clip norm and RMS mean summed per shard, then across ranks (see
muon_torch/_distributed.py). Measured: FSDP2 2 ranks 5.8e-7, 3 ranks 6.4e-7 (worst of ns,
polar_express, svd and the AdamW hybrid; polar_express is the worst), DDP 1.8e-7. One process
fed the per-rank gradients averaged by hand is as far (polar_express 5.8e-7, svd 3.9e-7):
that is the floor; with the same gradients on every layout (the hand-made DTensor test) what
is left is 3.6e-8. So 1e-5 keeps 15x room.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import muon_torch
from muon_common import MatrixAxes

STEPS = 5
BATCH = 12  # divisible by every world size tested, so rank slices are equal
TOL = 1e-5
STACK_AXES = MatrixAxes(rows=1, cols=2)  # (5, 7, 6): batch axis 0 is FSDP2's shard axis
CONV_AXES = MatrixAxes(rows=0, cols=(1, 2))  # (4, 3, 5): rows include the shard axis (3 ranks: 2, 2, 0 rows)

#: Muon configurations run under FSDP2; clip 0.05 is active for some params and not others (checked).
CONFIGS: dict[str, dict[str, Any]] = {
    "ns": dict(method="ns", clip_grad_norm=0.05, rms_scale=True),
    "polar_express": dict(method="polar_express", clip_grad_norm=0.05, rms_scale=True, nesterov=True),
    "svd": dict(method="svd", rms_scale=False, adjust_lr="original", weight_decay=0.1),
    # NorMuon: fc weights and the conv-like kernel are split along their rows (neurons), so each
    # slice's norms are summed across ranks; the stack is split along its batch axis (local).
    "neuron_norm": dict(method="polar_express", clip_grad_norm=0.05, rms_scale=True, nesterov=True,
                        neuron_norm=True, adjust_lr="match_rms_adamw"),
}
#: Matrices orthogonalised per step: fc1.weight, fc2.weight, 5 stacked slices, the conv-like kernel.
MATRICES_PER_STEP = 1 + 1 + 5 + 1


class Net(nn.Module):
    """10 -> 13 -> 7 (widths not divisible by 2 or 3), plus a stacked and a conv-like parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(10, 13)
        self.fc2 = nn.Linear(13, 7)
        self.stack = nn.Parameter(0.3 * torch.randn(5, 7, 6))
        self.conv = nn.Parameter(0.3 * torch.randn(4, 3, 5))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = self.fc2(torch.tanh(self.fc1(x)))
        return y, torch.einsum("bi,kij->bkj", y, self.stack), torch.einsum("bi,ijk->bjk", y[:, :4], self.conv)


def _model() -> Net:
    torch.manual_seed(0)
    return Net()


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets: (BATCH, 10) and (BATCH, 7 + 5 * 6)."""
    g = torch.Generator().manual_seed(100 + step)
    return torch.randn(BATCH, 10, generator=g), torch.randn(BATCH, 7 + 5 * 6, generator=g)


def _loss(model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    y, s, c = model(x)
    return (y - t[:, :7]).square().mean() + (s - t[:, 7:].view(-1, 5, 6)).square().mean() + c.square().mean()


def _optimizer(model: Net, name: str) -> muon_torch.Muon:
    if name == "hybrid":  # Linear weights to Muon, the rest to torch's AdamW functional (on DTensors here)
        rest = [model.fc1.bias, model.fc2.bias, model.stack, model.conv]
        return muon_torch.Muon([{"params": [model.fc1.weight, model.fc2.weight]},
                                {"params": rest, "algorithm": "adamw", "lr": 1e-2}], lr=0.05)
    config = CONFIGS[name]
    return muon_torch.Muon([
        {"params": [model.fc1.weight, model.fc1.bias, model.fc2.weight, model.fc2.bias]},
        {"params": [model.stack], "matrix_axes": STACK_AXES},
        {"params": [model.conv], "matrix_axes": CONV_AXES},
    ], lr=0.05, **config)


def _train(model: nn.Module, opt: torch.optim.Optimizer, rank: int = 0, world: int = 1) -> None:
    rows = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    for step in range(STEPS):
        x, t = _batch(step)
        _loss(model, x[rows], t[rows]).backward()
        opt.step()
        opt.zero_grad()


def _single(name: str) -> dict[str, torch.Tensor]:
    model = _model()
    opt = _optimizer(model, name)
    _train(model, opt)
    out = {n: p.detach().clone() for n, p in model.named_parameters()}
    if CONFIGS.get(name, {}).get("clip_grad_norm"):
        norms = [float(opt.state[p]["momentum_buffer"].norm()) for p in model.parameters()]
        out["_clip_active"] = torch.tensor(sum(abs(n - CONFIGS[name]["clip_grad_norm"]) < 1e-6 for n in norms))
        out["_clip_inactive"] = torch.tensor(sum(n < CONFIGS[name]["clip_grad_norm"] * 0.99 for n in norms))
    return out


# --------------------------------------------------------------------------- the ranks


def _count_orthogonalized() -> list[int]:
    """Patch the orthogonaliser to count the matrices it is given (on this rank)."""
    from muon_torch import _functional

    count = [0]
    original = _functional.orthogonalize_

    def counting(G: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        count[0] += G.reshape(-1, *G.shape[-2:]).shape[0]
        return original(G, *args, **kwargs)

    _functional.orthogonalize_ = counting  # type: ignore[assignment]
    return count


def _layouts(world: int) -> tuple[list[torch.Tensor], list[Any]]:
    """Whole tensors and their layouts ``(mesh shape, placements)`` for the hand-made DTensor test."""
    from torch.distributed.tensor import Replicate, Shard

    torch.manual_seed(1)
    full = [torch.randn(11, 5), torch.randn(5), torch.randn(10, 13), torch.randn(9, 7), torch.randn(7),
            torch.randn(6, 8)]
    layouts = [((world,), [Shard(0)]),  # uneven rows (2 ranks: 6, 5; 3 ranks: 4, 4, 3)
               ((world,), [Shard(0)]),  # a vector: the RMS mean over all shards
               ((world,), [Shard(1)]),  # tensor-parallel columns
               ((1, world), [Shard(0), Shard(1)]),  # two Shards: the generic path
               ((world,), [Replicate()]),
               ((1, world), [Replicate(), Shard(0)])]  # HSDP's layout (one replica here)
    return full, layouts


def _layout_grads(full: list[torch.Tensor], step: int) -> list[torch.Tensor]:
    grads = [torch.sin(3.0 * f + step + i) for i, f in enumerate(full)]
    if step == 2:
        grads[0][10, 1] = float("nan")  # on the last rank only: the whole parameter skips this step
    return grads


def _run_layouts(world: int, neuron_norm: bool = False) -> dict[str, torch.Tensor]:
    """Muon on DTensors laid out by hand (no FSDP), with the same gradients as one process.

    With ``neuron_norm``, the column-split matrix takes the whole-tensor path (its neurons'
    sums would span ranks) and the row-split ones sum their slices' norms across ranks."""
    full, layouts = _layouts(world)
    place: Callable[[torch.Tensor, int], torch.Tensor] = lambda t, i: t  # noqa: E731
    if world > 1:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor import distribute_tensor

        meshes = {shape: init_device_mesh("cpu", shape) for shape, _ in layouts}
        place = lambda t, i: distribute_tensor(t, meshes[layouts[i][0]], layouts[i][1])  # noqa: E731
    params = [nn.Parameter(place(f.clone(), i)) for i, f in enumerate(full)]
    opt = muon_torch.Muon(params, lr=0.05, clip_grad_norm=0.8,  # active for some params only
                          neuron_norm=neuron_norm)
    for step in range(STEPS):
        for i, (p, g) in enumerate(zip(params, _layout_grads(full, step), strict=True)):
            p.grad = place(g, i)
        opt.step()
    out = {str(i): (p.full_tensor() if world > 1 else p).detach().clone() for i, p in enumerate(params)}
    out["_nonfinite_steps"] = torch.stack([opt.state[p]["nonfinite_steps"] for p in params])
    for i, p in enumerate(params):
        if "neuron_second_moment" in opt.state[p]:
            v = opt.state[p]["neuron_second_moment"]
            out[f"v{i}"] = (v.full_tensor() if world > 1 else v).detach().clone()
    return out


def _worker(out: Path) -> None:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor, Shard
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    count = _count_orthogonalized()
    results: dict[str, Any] = {}
    mesh = init_device_mesh("cpu", (world,))
    for name in (*CONFIGS, "hybrid"):
        model = _model()
        fully_shard(model, mesh=mesh)
        assert all(isinstance(p, DTensor) and p.placements == (Shard(0),) for p in model.parameters())
        opt = _optimizer(model, name)
        count[0] = 0
        _train(model, opt, rank, world)
        results[name] = {n: p.full_tensor().detach().clone() for n, p in model.named_parameters()}
        results[name]["_count"] = count[0]
    results["layouts"] = _run_layouts(world)
    results["layouts_neuron_norm"] = _run_layouts(world, neuron_norm=True)
    if world == 2:
        ddp = DistributedDataParallel(_model())
        _train(ddp, _optimizer(ddp.module, "ns"), rank, world)
        results["ddp"] = {n.removeprefix("module."): p.detach().clone() for n, p in ddp.named_parameters()}
    torch.save(results, out / f"rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


# --------------------------------------------------------------------------- the launcher


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(world: int, out: Path) -> list[dict[str, Any]]:
    """Run this file on ``world`` ranks, with the environment ``torchrun --nproc_per_node=world`` sets."""
    port = _free_port()
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
               "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, __file__, str(out)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=150)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for rank, (p, log) in enumerate(zip(procs, logs, strict=True)):
        assert p.returncode == 0, f"rank {rank} failed:\n{log}"
    return [torch.load(out / f"rank{r}.pt") for r in range(world)]


_RUNS: dict[int, list[dict[str, Any]]] = {}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], list[dict[str, Any]]]:
    """``runs(world)``: every rank's results, launched once per world size."""

    def get(world: int) -> list[dict[str, Any]]:
        if world not in _RUNS:
            _RUNS[world] = _launch(world, tmp_path_factory.mktemp(f"ranks{world}"))
        return _RUNS[world]

    return get


def _max_rel_err(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> float:
    names = [n for n in want if not n.startswith("_")]
    assert sorted(names) == sorted(n for n in got if not n.startswith("_"))
    return max(float((got[n] - want[n]).abs().max() / want[n].abs().max()) for n in names)


@pytest.mark.parametrize("name", [*CONFIGS, "hybrid"])
@pytest.mark.parametrize("world", [2, 3])
def test_fsdp2_matches_one_process(runs: Callable[[int], list[dict[str, Any]]], world: int, name: str) -> None:
    want = _single(name)
    if "_clip_active" in want:  # the clip must be active for some params and not others
        assert int(want["_clip_active"]) > 0 and int(want["_clip_inactive"]) > 0
    errors = [_max_rel_err(r[name], want) for r in runs(world)]
    print(f"FSDP2 {world} ranks, {name}: max relative error {max(errors):.2e}")
    assert max(errors) <= TOL


@pytest.mark.parametrize("name", [*CONFIGS, "hybrid"])
@pytest.mark.parametrize("world", [2, 3])
def test_each_matrix_orthogonalised_once(runs: Callable[[int], list[dict[str, Any]]], world: int, name: str) -> None:
    counts = [r[name]["_count"] for r in runs(world)]
    per_step = MATRICES_PER_STEP if name in CONFIGS else 2  # hybrid: the two Linear weights
    assert sum(counts) == STEPS * per_step, counts
    if name in CONFIGS:
        assert all(c > 0 for c in counts), counts  # the work is split, not done by one rank


@pytest.mark.parametrize("neuron_norm", [False, True], ids=["muon", "neuron_norm"])
@pytest.mark.parametrize("world", [2, 3])
def test_dtensor_layouts_match_one_process(runs: Callable[[int], list[dict[str, Any]]], world: int,
                                           neuron_norm: bool) -> None:
    """Same gradients on every layout: what is left is the optimizer's own rounding."""
    key = "layouts_neuron_norm" if neuron_norm else "layouts"
    want = _run_layouts(1, neuron_norm)
    assert want["_nonfinite_steps"].tolist() == [1, 0, 0, 0, 0, 0]
    # One per-neuron second moment for each matrix (0, 2, 3, 5), and it is sharded like its matrix.
    assert sorted(k for k in want if k.startswith("v")) == (["v0", "v2", "v3", "v5"] if neuron_norm else [])
    for r in runs(world):
        assert torch.equal(r[key]["_nonfinite_steps"], want["_nonfinite_steps"])
    errors = [_max_rel_err(r[key], want) for r in runs(world)]
    print(f"DTensor layouts {world} ranks, neuron_norm={neuron_norm}: max relative error {max(errors):.2e}")
    assert max(errors) <= TOL


def test_ddp_matches_one_process(runs: Callable[[int], list[dict[str, Any]]]) -> None:
    want = _single("ns")
    errors = [_max_rel_err(r["ddp"], want) for r in runs(2)]
    print(f"DDP 2 ranks: max relative error {max(errors):.2e}")
    assert max(errors) <= TOL


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
