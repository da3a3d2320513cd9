"""Same seed, same bits: two fresh runs agree exactly, in one process and across processes.

Each run builds everything anew (model or params from the seed, optimizer or
transformation, and in JAX a new ``jax.jit``), trains 15 steps and is compared bit for
bit with another. Two interpreters with different ``PYTHONHASHSEED`` print sha256
digests of the final params, which catches nondeterminism that one process would not
show (dict/set ordering of the bucketing, per-process caches). Each comparison is
checked to be able to fail: a different seed gives different params (and digests).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
import sys
import textwrap
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import muon_jax
import muon_torch

IN, HIDDEN, OUT, VOCAB, TOKENS, BATCH = 8, 16, 4, 10, 3, 32
STEPS = 15
METHODS = ("ns", "quintic", "polar_express", "svd")
CONFIGS = (*METHODS, "adamw_hybrid")
REPO = pathlib.Path(__file__).resolve().parents[1]


def _digest(named: dict[str, np.ndarray]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of the arrays, in name order."""
    h = hashlib.sha256()
    for name in sorted(named):
        a = np.ascontiguousarray(named[name])
        h.update(f"{name}:{a.dtype}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- torch


def _torch_run(config: str, seed: int) -> dict[str, torch.Tensor]:
    """Model init and data from ``torch.manual_seed(seed)``; 15 steps; the final params."""
    embed = config == "adamw_hybrid"
    torch.manual_seed(seed)
    layers = [nn.Embedding(VOCAB, IN)] if embed else []
    model = nn.Sequential(*layers, nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, OUT))
    if embed:
        groups = muon_torch.param_groups(model, adamw=lambda name, _: name.startswith("0."),  # the embedding
                                         adamw_lr=3e-3, betas=(0.8, 0.95))
        assert [g.get("algorithm", "muon") for g in groups] == ["muon", "adamw"]
        opt = muon_torch.Muon(groups, lr=0.02, nesterov=True)
    else:
        opt = muon_torch.Muon(model.parameters(), lr=0.02, method=config)
    for _ in range(STEPS):
        x = torch.randint(VOCAB, (BATCH, TOKENS)) if embed else torch.randn(BATCH, IN)
        y = torch.randn(BATCH, OUT)
        h = model[0](x).mean(dim=1) if embed else x
        out = model[1:](h) if embed else model(h)
        opt.zero_grad(set_to_none=True)
        F.mse_loss(out, y).backward()
        opt.step()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _torch_digest(config: str, seed: int) -> str:
    return _digest({k: v.numpy() for k, v in _torch_run(config, seed).items()})


@pytest.mark.parametrize("config", CONFIGS)
def test_torch_same_seed_same_bits(config: str) -> None:
    a, b = _torch_run(config, seed=0), _torch_run(config, seed=0)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype == torch.float32, name
        assert torch.equal(a[name], b[name]), (name, (a[name] - b[name]).abs().max())
    # Not vacuous: another seed ends elsewhere.
    c = _torch_run(config, seed=1)
    assert any(not torch.equal(a[name], c[name]) for name in a)


# --------------------------------------------------------------------------- JAX


def _jax_tx(config: str) -> optax.GradientTransformation:
    if config == "adamw_hybrid":
        return muon_jax.muon_with_adamw(0.02, adamw_lr=3e-3, adamw_betas=(0.8, 0.95),
                                        adamw=("embed",), nesterov=True)
    return muon_jax.muon(0.02, method=config)


def _jax_loss(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    if "embed" in params:
        x = params["embed"][x].mean(axis=1)
    h = jax.nn.relu(x @ params["w1"] + params["b1"])
    return jnp.mean(jnp.square(h @ params["w2"] + params["b2"] - y))


def _jax_runs(config: str, seeds: tuple[int, ...]) -> list[dict[str, jax.Array]]:
    """A fresh transformation and a fresh ``jax.jit``, then one 15-step run per seed
    (params from ``jax.random.key(seed)``, data from ``numpy`` seeded alike); the final params."""
    embed = config == "adamw_hybrid"
    tx = _jax_tx(config)

    @jax.jit
    def step(params: Any, state: Any, x: jax.Array, y: jax.Array) -> tuple[Any, Any]:
        updates, state = tx.update(jax.grad(_jax_loss)(params, x, y), state, params)
        return optax.apply_updates(params, updates), state

    results = []
    for seed in seeds:
        k = jax.random.split(jax.random.key(seed), 5)
        params = {
            "w1": jax.random.normal(k[0], (IN, HIDDEN), jnp.float32) / IN**0.5,  # Flax layout: (in, out)
            "b1": jax.random.normal(k[1], (HIDDEN,), jnp.float32) / 10,
            "w2": jax.random.normal(k[2], (HIDDEN, OUT), jnp.float32) / HIDDEN**0.5,
            "b2": jax.random.normal(k[3], (OUT,), jnp.float32) / 10,
        }
        if embed:
            params["embed"] = jax.random.normal(k[4], (VOCAB, IN), jnp.float32)
        state = tx.init(params)
        rng = np.random.default_rng(seed)
        for _ in range(STEPS):
            x = rng.integers(VOCAB, size=(BATCH, TOKENS), dtype=np.int32) if embed else rng.standard_normal(
                (BATCH, IN), dtype=np.float32)
            params, state = step(params, state, x, rng.standard_normal((BATCH, OUT), dtype=np.float32))
        results.append(params)
    assert step._cache_size() == 1  # one compilation: every run above went through the same executable
    return results


def _jax_digests(config: str, seeds: tuple[int, ...]) -> list[str]:
    """The digests of :func:`_jax_runs` (one transformation and one compilation for all the seeds)."""
    return [_digest({k: np.asarray(v) for k, v in params.items()}) for params in _jax_runs(config, seeds)]


@pytest.mark.parametrize("config", CONFIGS)
def test_jax_same_seed_same_bits(config: str) -> None:
    a, c = _jax_runs(config, seeds=(0, 1))
    (b,) = _jax_runs(config, seeds=(0,))  # a second fresh transformation and jit
    chex.assert_trees_all_equal_shapes_and_dtypes(a, b)
    assert {x.dtype for x in jax.tree.leaves(a)} == {jnp.dtype(jnp.float32)}
    chex.assert_trees_all_equal(a, b)
    # Not vacuous: another seed ends elsewhere.
    assert any(not jnp.array_equal(a[k], c[k]) for k in a)


# --------------------------------------------------------------------------- across processes

_SCRIPT = textwrap.dedent("""
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("determinism", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for seed in (0, 1):
        print("torch", seed, module._torch_digest("adamw_hybrid", seed))
    for seed, digest in zip((0, 1), module._jax_digests("svd", (0, 1))):
        print("jax", seed, digest)
""")


def _digests_in_subprocesses(hash_seeds: tuple[str, ...]) -> list[dict[tuple[str, str], str]]:
    """Run the script in one interpreter per ``PYTHONHASHSEED``, concurrently; parse its digests."""
    procs = [subprocess.Popen([sys.executable, "-c", _SCRIPT, __file__], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONHASHSEED": hash_seed})
             for hash_seed in hash_seeds]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr
        lines = [line.split() for line in stdout.splitlines() if line.startswith(("torch ", "jax "))]
        results.append({(framework, seed): digest for framework, seed, digest in lines})
    return results


def test_same_digests_across_processes() -> None:
    first, second = _digests_in_subprocesses(("1", "2"))
    assert set(first) == {(f, s) for f in ("torch", "jax") for s in ("0", "1")}
    assert first == second
    # Not vacuous: the digests depend on the seed.
    for framework in ("torch", "jax"):
        assert first[(framework, "0")] != first[(framework, "1")]


def test_digest_sees_every_bit() -> None:
    """One flipped low bit of one parameter changes the digest."""
    params = {k: v.numpy() for k, v in _torch_run("ns", seed=0).items()}
    flipped = {k: v.copy() for k, v in params.items()}
    flipped["0.bias"].view(np.uint32)[3] ^= 1
    assert _digest(params) == _digest({k: v.copy() for k, v in params.items()})
    assert _digest(params) != _digest(flipped)

