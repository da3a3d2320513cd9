"""Run by test_sharding_jax.py in a fresh process with N simulated CPU devices.

Usage: ``XLA_FLAGS=--xla_force_host_platform_device_count=N python -m parity_tests.sharded_jax_check N VARIANT...``
with each VARIANT ``muon`` or ``neuron_norm`` (NorMuon). Prints one JSON line per variant, in
order: per-leaf error against the single-device run, whether the params' shardings are kept
on the momentum and the params, and the collectives touching the layer-sharded stack.
The variants share the process (JAX's start-up), nothing else: each builds its own
transformation and ``jax.jit``.
"""

from __future__ import annotations

import json
import re
import sys

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import muon_jax
from muon_common import MatrixAxes

SHAPES = {"w_in": (96, 160), "w_out": (160, 96), "stack": (8, 36, 44), "bias": (160,), "scale": ()}
SPECS = {"w_in": P("fsdp", "tp"), "w_out": P("fsdp", "tp"), "stack": P("fsdp", None, None), "bias": P("tp"),
         "scale": P()}
AXES = {"w_in": None, "w_out": None, "stack": MatrixAxes(rows=1, cols=2), "bias": None, "scale": None}
STEPS = 3


def main(devices: int, neuron_norm: bool) -> None:
    assert jax.device_count() == devices, jax.device_count()
    mesh = Mesh(np.array(jax.devices()).reshape(devices // 2, 2), ("fsdp", "tp"))
    rng = np.random.default_rng(0)
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
    grads = [{k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()} for _ in range(STEPS)]
    tx = muon_jax.muon(0.02, method="polar_express", matrix_axes=AXES, clip_grad_norm=5.0, nesterov=True,
                       neuron_norm=neuron_norm)

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    single_p, single_s = params, tx.init(params)
    for g in grads:
        single_p, single_s = jax.jit(step)(single_p, single_s, g)

    shardings = {k: NamedSharding(mesh, SPECS[k]) for k in SHAPES}
    p = {k: jax.device_put(v, shardings[k]) for k, v in params.items()}
    s = tx.init(p)
    sharded_step = jax.jit(step)
    for g in grads:
        p, s = sharded_step(p, s, {k: jax.device_put(v, shardings[k]) for k, v in g.items()})

    err = {k: float(np.max(np.abs(np.asarray(p[k]) - np.asarray(single_p[k]))) / np.max(np.abs(single_p[k])))
           for k in SHAPES}
    kept = {k: p[k].sharding.is_equivalent_to(shardings[k], len(SHAPES[k]))
            and s[0].momentum[k].sharding.is_equivalent_to(shardings[k], len(SHAPES[k])) for k in SHAPES}
    hlo = sharded_step.lower(p, s, {k: jax.device_put(v, shardings[k]) for k, v in grads[0].items()}).compile()
    collectives = re.findall(r"= (\S+) (?:all-gather|all-reduce|collective-permute|all-to-all|reduce-scatter)\(",
                             hlo.as_text())
    stack_dims = {"36", "44"}  # sizes no other leaf (or shard of one) has
    stack_collectives = [c for c in collectives if stack_dims & set(re.findall(r"\d+", c.split("{")[0]))]
    print(json.dumps({"variant": "neuron_norm" if neuron_norm else "muon", "err": err, "kept": kept,
                      "stack_collectives": stack_collectives, "collectives": len(collectives)}), flush=True)


VARIANTS = {"muon": False, "neuron_norm": True}

if __name__ == "__main__":
    for variant in sys.argv[2:]:
        main(int(sys.argv[1]), VARIANTS[variant])
