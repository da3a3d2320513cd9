"""The ``--device`` option of ``bench.py`` and ``quality.py``: its names, the devices and the timing sync.

The names follow ``benchmarks/training/run.py``: ``cpu`` (the default), ``cuda`` or its
synonym ``gpu``, which is torch's ``cuda`` device and JAX's ``gpu`` platform. JAX is imported
only by the functions that need it, so ``quality.py`` (torch only) does not start it.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable
from typing import Any

import torch

DEVICES = ("cpu", "cuda", "gpu")


def is_gpu(device: str) -> bool:
    """Whether a ``--device`` name is the GPU (``cuda`` or ``gpu``)."""
    return device in ("cuda", "gpu")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device {cpu,cuda,gpu}``, default ``cpu``."""
    parser.add_argument("--device", choices=DEVICES, default="cpu",
                        help="where the benchmarked work runs: cpu (default), cuda or its synonym gpu "
                             "(torch's cuda device, JAX's gpu platform)")


def torch_device(device: str) -> torch.device:
    """The torch device of a ``--device`` name."""
    return torch.device("cuda" if is_gpu(device) else "cpu")


def jax_device(device: str) -> Any:
    """The first JAX device of a ``--device`` name (as ``benchmarks/training/jax_runs.py``)."""
    import jax

    return jax.devices("gpu" if is_gpu(device) else device)[0]


def check_torch(parser: argparse.ArgumentParser, device: str) -> None:
    """Exit through ``parser.error`` (status 2) when torch cannot run on ``device``."""
    if is_gpu(device) and not torch.cuda.is_available():
        parser.error(f"--device {device}: torch {torch.__version__} sees no CUDA device "
                     f"(built with CUDA {torch.version.cuda}); use --device cpu")


def check_jax(parser: argparse.ArgumentParser, device: str) -> Any:
    """The JAX device of ``device``, or exit through ``parser.error`` when JAX has none."""
    import jax

    try:
        return jax_device(device)
    except RuntimeError as err:
        parser.error(f"--device {device}: jax {jax.__version__} has no {'gpu' if is_gpu(device) else device} "
                     f"device ({err}); install jax[cuda12] or use --device cpu")


def torch_sync(device: torch.device) -> Callable[[Any], None]:
    """A ``sync(out)`` for ``measure``: waits for the queued CUDA work on ``device``; a no-op on CPU."""
    if device.type != "cuda":
        return lambda out: None

    def sync(out: Any) -> None:
        torch.cuda.synchronize(device)

    return sync


def torch_description(device: torch.device) -> str:
    """``cuda (<GPU name>, CUDA <version>)``, or ``cpu (<processor>, <n> CPUs)``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda})"
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs)"


def jax_description(device: Any) -> str:
    """``<device> (<platform>, <device kind>)``, e.g. ``cuda:0 (gpu, NVIDIA H100 80GB HBM3)``."""
    return f"{device} ({device.platform}, {device.device_kind})"
