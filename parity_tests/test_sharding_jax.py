"""muon_jax under jax.jit with params and state sharded on a Mesh (simulated CPU devices).

parity_tests/sharded_jax_check.py runs in a fresh process per device count (the count is
fixed when JAX starts), with a (fsdp, tp) mesh: matrices sharded on both axes, a stack of
layers sharded along the layer axis, a bias and a scalar. One process checks both variants
(Muon, NorMuon) of its device count, each with its own transformation and jit; each case
below reads its variant's line.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
# fp32 parity bound (test_parity_grid.py). Measured: 1.2e-7 (8 devices), 1.0e-7 (4 devices):
# the partitioned matmuls sum in another order than the single-device ones.
TOL_F32 = 1e-5
VARIANTS = ("muon", "neuron_norm")


@functools.cache
def _run_check(devices: int) -> dict[str, Any]:
    """One process with ``devices`` simulated devices checks every variant: variant -> its result."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-m", "parity_tests.sharded_jax_check", str(devices), *VARIANTS],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    results = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [r["variant"] for r in results] == list(VARIANTS), out.stdout[-3000:]
    return {r["variant"]: r for r in results}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("devices", [4, 8])
def test_sharded_update_matches_single_device(devices: int, variant: str) -> None:
    result = _run_check(devices)[variant]
    assert max(result["err"].values()) <= TOL_F32, result["err"]
    # The momentum and the new params keep the params' shardings: no silent replication.
    assert all(result["kept"].values()), result["kept"]
    # The layer-sharded stack is orthogonalised where it lives: no collective moves its matrices.
    assert result["stack_collectives"] == [], result["stack_collectives"]
    assert result["collectives"] > 0  # the 2-D matrices sharded on both axes do communicate


def test_sharded_example_trains() -> None:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    out = subprocess.run([sys.executable, "examples/sharded_jax.py", "--devices", "4", "--steps", "30"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    losses = [float(line.split("=")[1]) for line in out.stdout.splitlines() if line.startswith("step")]
    assert len(losses) == 3 and losses[-1] < 0.7 * losses[0]
    assert "4 devices" in out.stdout
