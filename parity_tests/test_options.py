"""Methods and options beyond the reference, and the AdamW hybrid: both twins against the oracle.

Each case runs the 6 parameter shapes of the grid for 50 steps, in float64 and float32.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import muon_jax
import muon_torch
from parity_tests.harness import LR, hyper, make_grads, make_params, max_rel_err, run_jax, run_oracle, run_torch

PARAMS = make_params()
GRADS = make_grads()
BASE: dict[str, Any] = dict(method="ns", rms_scale=True, clip_grad_norm=None, weight_decay=0.1, beta=0.9)
USER_COEFFICIENTS = [(2.0, -1.5, 0.5), (1.5, -0.5, 0.0)]  # a user's own list; the last triple repeats

CASES: dict[str, dict[str, Any]] = {
    "quintic": dict(method="quintic"),
    "polar_express": dict(method="polar_express"),
    "user_coefficients": dict(method=USER_COEFFICIENTS),
    "nesterov": dict(nesterov=True, clip_grad_norm=0.3),
    "nesterov_quintic": dict(nesterov=True, method="quintic"),
    "adjust_lr_original": dict(adjust_lr="original"),
    "adjust_lr_match_rms_adamw": dict(adjust_lr="match_rms_adamw", method="polar_express"),
    "momentum_bfloat16": dict(momentum_dtype="bfloat16", clip_grad_norm=0.3),
    "aol": dict(normalization="aol", method="polar_express", ns_iters=4),
    "aol_ns": dict(normalization="aol"),
    "neuron_norm": dict(neuron_norm=True),
    "neuron_norm_recipe": dict(neuron_norm=True, neuron_beta2=0.9, method="polar_express", nesterov=True,
                               adjust_lr="match_rms_adamw", clip_grad_norm=0.3),
}
BF16_CASES: dict[str, dict[str, Any]] = {
    "orthogonalize_bfloat16_ns": dict(orthogonalize_dtype="bfloat16"),
    "orthogonalize_bfloat16_quintic": dict(orthogonalize_dtype="bfloat16", method="quintic"),
}

# Measured worst errors over these cases (relative to each tensor's scale), as in
# test_parity_grid.py: float64 (eps=1e-16) 1.6e-15, float32 7.9e-7 -> the grid's bounds.
TOL = {np.float64: 1e-12, np.float32: 1e-5}
# Newton–Schulz in bfloat16 (8-bit mantissa, unit roundoff 3.9e-3), 50 steps: twins vs the
# exact-arithmetic oracle 7.8e-4 (quintic) and 1.6e-4 (ns); twin vs twin 5.7e-5 (both
# accumulate each step in float32 and round once). Bounds keep ~5x room.
TOL_BF16_ORACLE = 4e-3
TOL_BF16_TWINS = 5e-4
# eps=1e-16 in float64: see test_parity_grid.py; the float64 case runs JAX with x64 on (conftest.py).
DTYPES = [pytest.param(np.float64, 1e-16, marks=pytest.mark.x64), (np.float32, 1e-8)]


def _run_all(config: dict[str, Any], dtype: Any) -> dict[str, Any]:
    # adjust_lr and neuron_norm read fan-in/fan-out from each framework's layout: JAX gets
    # the 2-D params as Flax (in, out) kernels of the torch (out, in) weights.
    flax_layout = "adjust_lr" in config or config.get("neuron_norm", False)
    return {
        "oracle": run_oracle(config, PARAMS, GRADS),
        "torch": run_torch(config, PARAMS, GRADS, dtype),
        "jax": run_jax(config, PARAMS, GRADS, dtype, flax_layout=flax_layout),
    }


@pytest.mark.parametrize("dtype,eps", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_option_matches_oracle(case: str, dtype: Any, eps: float) -> None:
    results = _run_all({**BASE, **CASES[case], "eps": eps}, dtype)
    for a, b in (("torch", "oracle"), ("jax", "oracle"), ("torch", "jax")):
        assert max_rel_err(results[a][0], results[b][0], PARAMS) <= TOL[dtype], (a, b, "params")
        assert max_rel_err(results[a][1], results[b][1]) <= TOL[dtype], (a, b, "momentum")


@pytest.mark.parametrize("case", list(BF16_CASES))
def test_bfloat16_orthogonalization(case: str) -> None:
    results = _run_all({**BASE, **BF16_CASES[case], "eps": 1e-8}, np.float32)
    for twin in ("torch", "jax"):
        assert max_rel_err(results[twin][0], results["oracle"][0], PARAMS) <= TOL_BF16_ORACLE, twin
    assert max_rel_err(results["torch"][0], results["jax"][0], PARAMS) <= TOL_BF16_TWINS
    # ... and the bfloat16 path is really taken: the float32 run is much closer to the oracle.
    exact = run_torch({**BASE, **BF16_CASES[case], "orthogonalize_dtype": None}, PARAMS, GRADS, np.float32)
    assert max_rel_err(exact[0], results["oracle"][0], PARAMS) < 0.1 * max_rel_err(
        results["torch"][0], results["oracle"][0], PARAMS)


def test_bfloat16_momentum_is_stored_in_bfloat16() -> None:
    config = {**BASE, "momentum_dtype": "bfloat16"}
    p = torch.nn.Parameter(torch.ones(4, 3))
    opt = muon_torch.Muon([p], lr=LR, **hyper(config))
    p.grad = torch.full_like(p, 0.3)
    opt.step()
    assert opt.state[p]["momentum_buffer"].dtype == torch.bfloat16
    tx = muon_jax.muon(LR, **hyper(config))
    state = tx.init({"w": jnp.ones((4, 3))})
    assert state[0].momentum["w"].dtype == jnp.bfloat16


ADAMW_NAMES = ("square", "vector", "scalar", "stack3d")  # "square" is a matrix moved to AdamW by name
ADAMW_LR, ADAMW_BETAS = 0.01, (0.9, 0.95)


@pytest.mark.parametrize("dtype,eps", DTYPES, ids=["float64", "float32"])
def test_hybrid_with_adamw_matches_oracle(dtype: Any, eps: float) -> None:
    config = {**BASE, "eps": eps}

    def torch_groups(params: list[torch.nn.Parameter], **kw: Any) -> torch.optim.Optimizer:
        named = dict(zip(PARAMS, params, strict=True))
        return muon_torch.Muon([
            {"params": [named[k] for k in PARAMS if k not in ADAMW_NAMES]},
            {"params": [named[k] for k in ADAMW_NAMES], "algorithm": "adamw", "lr": ADAMW_LR, "betas": ADAMW_BETAS},
        ], lr=LR, **kw)

    tx = muon_jax.muon_with_adamw(LR, adamw_lr=ADAMW_LR, adamw_betas=ADAMW_BETAS, adamw=("square",),
                                  **hyper(config))
    oracle = run_oracle(config, PARAMS, GRADS, adamw=ADAMW_NAMES, adamw_hyper=(ADAMW_LR, *ADAMW_BETAS))
    results = {"torch": run_torch(config, PARAMS, GRADS, dtype, make_optimizer=torch_groups),
               "jax": run_jax(config, PARAMS, GRADS, dtype, tx=tx)}
    for name, (params, momentum) in results.items():
        assert set(momentum) == set(PARAMS) - set(ADAMW_NAMES), name
        assert max_rel_err(params, oracle[0], PARAMS) <= TOL[dtype], name
        assert max_rel_err(momentum, oracle[1]) <= TOL[dtype], name


def test_hybrid_label_helpers_agree() -> None:
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4), torch.nn.LayerNorm(4),
                                torch.nn.Linear(4, 3))
    groups = muon_torch.param_groups(model, adamw=("0.",))  # the embedding goes to AdamW
    by_algorithm = {g.get("algorithm", "muon"): {id(p) for p in g["params"]} for g in groups}
    names = {id(p): n for n, p in model.named_parameters()}
    torch_labels = {names[i]: a for a, ids in by_algorithm.items() for i in ids}
    params = {n: jnp.zeros(p.shape) for n, p in model.named_parameters()}
    assert muon_jax.muon_labels(params, adamw=("0.",)) == torch_labels
    assert torch_labels == {"0.weight": "adamw", "1.weight": "muon", "1.bias": "adamw", "2.weight": "adamw",
                            "2.bias": "adamw", "3.weight": "muon", "3.bias": "adamw"}


@pytest.mark.parametrize("shape", [(64, 64), (32, 96), (96, 32), (3, 16, 24)])
def test_quintic_matches_optax_contrib_newton_schulz(shape: tuple[int, ...]) -> None:
    """Keller Jordan's quintic, 5 steps, float32: ours against optax.contrib's function.

    The normalisations differ only by eps (``/(||G|| + 1e-8)`` there, ``/sqrt(||G||^2 +
    (n+1) 1e-8)`` here). Measured: 2.1e-6 relative at most (float32 rounding); bound 1e-5.
    """
    from optax.contrib._muon import MuonDimensionNumbers, orthogonalize_via_newton_schulz

    G = jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32)
    coeffs = jnp.asarray((3.4445, -4.7750, 2.0315), jnp.float32)
    dims = MuonDimensionNumbers(reduction_axis=-2, output_axis=-1) if len(shape) == 3 else None
    theirs = np.asarray(orthogonalize_via_newton_schulz(G, coeffs, ns_steps=5, dimension_numbers=dims))
    for ours in (np.asarray(muon_jax.orthogonalize(G, method="quintic")),
                 muon_torch.orthogonalize(torch.tensor(np.asarray(G)), method="quintic").numpy()):
        assert np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)) <= 1e-5


@pytest.mark.x64  # float64 params in both twins
def test_adamw_part_takes_its_own_lr_betas_and_weight_decay_under_the_same_names() -> None:
    """``adamw_lr``, ``adamw_betas``, ``adamw_weight_decay``: the same names and numbers in both twins."""
    own: dict[str, Any] = dict(adamw_lr=0.003, adamw_betas=(0.8, 0.95), adamw_weight_decay=0.05)
    torch_model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Linear(5, 3)).double()
    named = {n: p.detach().numpy().copy() for n, p in torch_model.named_parameters()}
    flax = lambda tree: {n: jnp.asarray(a.T if a.ndim == 2 else a) for n, a in tree.items()}  # noqa: E731
    rng = np.random.default_rng(0)
    grads = [{n: rng.standard_normal(a.shape) for n, a in named.items()} for _ in range(5)]

    def run_jax(**kwargs: Any) -> dict[str, Any]:
        params = flax(named)
        tx = muon_jax.muon_with_adamw(0.02, weight_decay=0.1, eps=1e-16, **kwargs)
        state = tx.init(params)
        for g in grads:
            updates, state = tx.update(flax(g), state, params)
            params = optax.apply_updates(params, updates)
        return params

    # eps=1e-16: the (n+1) eps term counts each layout's columns (see test_parity_grid.py).
    opt = muon_torch.Muon(muon_torch.param_groups(torch_model, **own), lr=0.02, weight_decay=0.1, eps=1e-16)
    for g in grads:
        for n, p in torch_model.named_parameters():
            p.grad = torch.from_numpy(g[n])
        opt.step()
    ours, theirs = run_jax(**own), flax({n: p.detach().numpy() for n, p in torch_model.named_parameters()})
    for n in named:
        np.testing.assert_allclose(ours[n], theirs[n], rtol=0, atol=1e-12)  # measured: float64 rounding
    # The AdamW part took its own values: the biases end elsewhere with the Muon part's settings.
    assert not np.allclose(run_jax()["0.bias"], ours["0.bias"])
    with pytest.warns(DeprecationWarning, match="adamw_lr"):
        earlier = run_jax(adamw_learning_rate=0.003, adamw_betas=(0.8, 0.95), adamw_weight_decay=0.05)
    np.testing.assert_array_equal(earlier["0.bias"], ours["0.bias"])
