"""Train an MLP sharded with FSDP2 (``fully_shard``) and Muon, on 2 (or more) processes.

Run ``torchrun --nproc_per_node=2 examples/fsdp2_torch.py [--steps 100]`` (CPU with gloo, or
one GPU per process with NCCL when CUDA is available). Rank 0 prints the loss.

Every parameter becomes a ``DTensor`` holding this rank's rows. ``muon_torch.Muon`` steps
the shards in place; each weight matrix is gathered onto one owner rank, orthogonalised
there once, and its rows sent back (the ranks split the matrices between them); the clip
norm is that of the whole matrix. The same script on one process
(``--nproc_per_node=1``) prints the same losses to within 0.5% (float32 rounding, grown over 100 steps).

The task: a student MLP ``48 -> 200 -> 200 -> 10`` learns a fixed random teacher network's
10-way labels from Gaussian inputs (a fresh global batch of 256 each step, each rank taking
its slice). Biases go to AdamW (``muon_torch.param_groups``); weight matrices to Muon.
"""

from __future__ import annotations

import argparse
import itertools
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

import muon_torch

BATCH = 256


def mlp(widths: tuple[int, ...] = (48, 200, 200, 10), seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.02)
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    mesh = init_device_mesh(device.type, (world,))

    teacher = mlp((48, 64, 10), seed=1).to(device)
    model = mlp().to(device)
    for layer in model:  # shard each Linear, then the root (FSDP2's usual wrapping)
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)

    opt = muon_torch.Muon(muon_torch.param_groups(model, adamw_lr=3e-3), lr=args.lr, method="polar_express",
                          nesterov=True, adjust_lr="match_rms_adamw", clip_grad_norm=10.0)
    rows = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    for step in range(args.steps):
        g = torch.Generator().manual_seed(step)  # the same global batch on every rank
        x = torch.randn(BATCH, 48, generator=g).to(device)
        with torch.no_grad():
            y = teacher(x).argmax(dim=-1)
        loss = F.cross_entropy(model(x[rows]), y[rows])
        loss.backward()
        opt.step()
        opt.zero_grad()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        if rank == 0 and (step % 20 == 0 or step == args.steps - 1):
            print(f"step {step:3d}  loss {float(mean) / world:.4f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
