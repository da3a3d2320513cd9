"""Muon on a JAX device mesh: an MLP with FSDP x tensor-parallel sharded params.

On a CPU the devices are simulated: ``python examples/sharded_jax.py --devices 8``
(it sets ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` before JAX starts). On
accelerators it uses the devices there are. Params, gradients, momentum and updates all
stay sharded; ``jax.jit`` partitions the Newton–Schulz matmuls (SPMD).
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> list[float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=8, help="simulated CPU devices (even)")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args(argv)
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={args.devices}")

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    import muon_jax

    n = jax.device_count()
    mesh = Mesh(np.array(jax.devices()).reshape(max(n // 2, 1), min(n, 2)), ("fsdp", "tp"))
    specs = {"w1": P("fsdp", "tp"), "b1": P("tp"), "w2": P("tp", "fsdp"), "b2": P()}
    rng = np.random.default_rng(0)
    shapes = {"w1": (64, 256), "b1": (256,), "w2": (256, 16), "b2": (16,)}
    params = {k: jax.device_put(rng.standard_normal(s).astype(np.float32) / np.sqrt(s[0]),
                                NamedSharding(mesh, specs[k])) for k, s in shapes.items()}
    x = jax.device_put(rng.standard_normal((512, 64)).astype(np.float32), NamedSharding(mesh, P("fsdp", None)))
    y = jnp.tanh(x @ rng.standard_normal((64, 16)).astype(np.float32))

    def loss_fn(p: dict[str, jax.Array]) -> jax.Array:
        h = jax.nn.gelu(x @ p["w1"] + p["b1"])
        return jnp.mean(jnp.square(h @ p["w2"] + p["b2"] - y))

    tx = muon_jax.muon_with_adamw(0.02, adamw_lr=3e-3, method="polar_express", nesterov=True)
    state = tx.init(params)

    @jax.jit
    def train_step(p: dict[str, jax.Array], s: optax.OptState) -> tuple[dict[str, jax.Array], optax.OptState,
                                                                       jax.Array]:
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    losses = []
    for step in range(args.steps):
        params, state, loss = train_step(params, state)
        losses.append(float(loss))
        if (step + 1) % 10 == 0:
            print(f"step {step + 1:03d} | loss = {losses[-1]:.4f}")
    print(f"{n} devices, mesh {dict(mesh.shape)}; w1 sharding {params['w1'].sharding.spec}")
    return losses


if __name__ == "__main__":
    main(sys.argv[1:])
