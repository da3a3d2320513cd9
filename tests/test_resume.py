"""Exact resume: 10 steps, checkpoint, fresh objects, 10 more == 20 steps straight, bit for bit.

PyTorch goes through ``torch.save``/``torch.load`` (``weights_only`` by default) of the
model's and the optimizer's ``state_dict``; JAX through ``orbax.checkpoint`` of the
params and the whole optax state pytree. Every resume is compared with ``torch.equal``
/ ``chex.assert_trees_all_equal`` on the params *and* every optimizer-state tensor (JAX:
dtypes included; torch: the dtypes after a load have their own test), and each test also
checks that resuming without the optimizer state ends elsewhere, so the comparison is not
vacuous.
"""

from __future__ import annotations

import io
import pathlib
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import muon_jax
import muon_torch

IN, HIDDEN, OUT, VOCAB, TOKENS, BATCH = 8, 16, 4, 10, 3, 32
STEPS, SPLIT = 20, 10

# --------------------------------------------------------------------------- torch


class _Net(nn.Module):
    """``Linear(8, 16) -> ReLU -> Linear(16, 4)``, optionally fed by a mean-pooled ``Embedding``."""

    def __init__(self, embed: bool) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, IN) if embed else None
        self.mlp = nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, OUT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            x = self.embed(x).mean(dim=1)
        return self.mlp(x)


def _torch_model(embed: bool, seed: int) -> _Net:
    torch.manual_seed(seed)
    return _Net(embed)


def _torch_batch(step: int, embed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed batch of ``step``: the same in every run, whatever else used the global RNG."""
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randint(VOCAB, (BATCH, TOKENS), generator=g) if embed else torch.randn(BATCH, IN, generator=g)
    return x, torch.randn(BATCH, OUT, generator=g)


def _torch_train(model: _Net, opt: torch.optim.Optimizer, steps: range) -> None:
    embed = model.embed is not None
    for step in steps:
        x, y = _torch_batch(step, embed)
        opt.zero_grad(set_to_none=True)
        F.mse_loss(model(x), y).backward()
        opt.step()


def _hybrid(model: _Net) -> muon_torch.Muon:
    groups = muon_torch.param_groups(model, adamw=("embed",), adamw_lr=3e-3, betas=(0.8, 0.95))
    assert [g.get("algorithm", "muon") for g in groups] == ["muon", "adamw"]
    return muon_torch.Muon(groups, lr=0.02)


#: name -> (uses the embedding, optimizer factory)
TORCH_CONFIGS: dict[str, tuple[bool, Callable[[_Net], muon_torch.Muon]]] = {
    "ns": (False, lambda m: muon_torch.Muon(m.parameters(), lr=0.02)),
    "polar_express-nesterov-match_rms_adamw": (False, lambda m: muon_torch.Muon(
        m.parameters(), lr=0.02, method="polar_express", nesterov=True, adjust_lr="match_rms_adamw")),
    # clip 0.005 is below the momentum norm of every parameter (test_torch_svd_clip_is_active).
    "svd-clip": (False, lambda m: muon_torch.Muon(m.parameters(), lr=0.02, method="svd", clip_grad_norm=0.005)),
    "bf16_momentum": (False, lambda m: muon_torch.Muon(m.parameters(), lr=0.02, momentum_dtype="bfloat16")),
    "adamw_hybrid": (True, _hybrid),
    "neuron_norm": (False, lambda m: muon_torch.Muon(m.parameters(), lr=0.02, method="polar_express",
                                                     neuron_norm=True, neuron_beta2=0.9)),
}

# torch.optim.Optimizer.load_state_dict casts every state tensor except "step" to its
# parameter's dtype when the parameter is floating point (``_process_value_according_to_param_policy``);
# Muon.load_state_dict casts the bfloat16 momentum_buffer and the int64 nonfinite_steps
# counter back (test_torch_load_state_dict_keeps_state_dtypes holds it to that).


def _state_dtypes(opt: torch.optim.Optimizer) -> dict[tuple[int, str], torch.dtype]:
    return {(i, key): value.dtype for i, state in opt.state_dict()["state"].items() for key, value in state.items()}


def _assert_torch_states_equal(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> None:
    """Same param groups and, for every parameter, the same state tensors, bit for bit.

    Values only: the dtypes after a load are :func:`test_torch_load_state_dict_keeps_state_dtypes`'s.
    """
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for i, state in sa["state"].items():
        assert state.keys() == sb["state"][i].keys(), i
        for key, value in state.items():
            other = sb["state"][i][key]
            assert value.shape == other.shape, (i, key)
            assert torch.equal(value, other.to(value.dtype)) and torch.equal(value.to(other.dtype), other), (
                i, key, (value.double() - other.double()).abs().max())


def _assert_torch_params_equal(a: _Net, b: _Net) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert p.dtype == q.dtype, name
        assert torch.equal(p, q), (name, (p - q).abs().max())


def _torch_checkpoint(model: _Net, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Through bytes, as a checkpoint file would be; ``torch.load`` is weights_only by default."""
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, buffer)
    buffer.seek(0)
    return torch.load(buffer)


@pytest.mark.parametrize(
    "name", list(TORCH_CONFIGS)
)
def test_torch_exact_resume(name: str) -> None:
    embed, make = TORCH_CONFIGS[name]

    straight = _torch_model(embed, seed=0)
    straight_opt = make(straight)
    _torch_train(straight, straight_opt, range(STEPS))

    first = _torch_model(embed, seed=0)
    first_opt = make(first)
    _torch_train(first, first_opt, range(SPLIT))
    checkpoint = _torch_checkpoint(first, first_opt)

    resumed = _torch_model(embed, seed=1)  # different init: the load must set every parameter
    resumed_opt = make(resumed)
    resumed.load_state_dict(checkpoint["model"])
    resumed_opt.load_state_dict(checkpoint["optimizer"])
    _assert_torch_states_equal(resumed_opt, first_opt)
    _torch_train(resumed, resumed_opt, range(SPLIT, STEPS))

    _assert_torch_params_equal(resumed, straight)
    _assert_torch_states_equal(resumed_opt, straight_opt)

    # Not vacuous: the same 10 steps without the optimizer state end elsewhere.
    restart = _torch_model(embed, seed=1)
    restart.load_state_dict(checkpoint["model"])
    _torch_train(restart, make(restart), range(SPLIT, STEPS))
    assert any(not torch.equal(p, q) for p, q in zip(restart.parameters(), straight.parameters(), strict=True))


def test_torch_load_state_dict_keeps_state_dtypes() -> None:
    """Every state tensor keeps its dtype through save/load and the steps after it (float32 params)."""
    changed = {}
    for name, (embed, make) in TORCH_CONFIGS.items():
        model = _torch_model(embed, seed=0)
        opt = make(model)
        _torch_train(model, opt, range(2))
        saved = _state_dtypes(opt)
        assert saved[(0, "nonfinite_steps")] == torch.int64
        fresh = make(model)
        fresh.load_state_dict(_torch_checkpoint(model, opt)["optimizer"])
        _torch_train(model, fresh, range(2, 3))
        changed[name] = {k: f"{saved[k]} -> {v}" for k, v in _state_dtypes(fresh).items() if v != saved[k]}
    assert not any(changed.values()), changed


def test_torch_svd_clip_is_active() -> None:
    """The clip of the ``svd-clip`` config rescales the momentum (otherwise the config tests nothing new)."""
    embed, make = TORCH_CONFIGS["svd-clip"]
    model = _torch_model(embed, seed=0)
    opt = make(model)
    _torch_train(model, opt, range(SPLIT))
    norms = [float(opt.state[p]["momentum_buffer"].norm()) for p in model.parameters()]
    assert all(n == pytest.approx(0.005, rel=1e-5) for n in norms), norms


def test_torch_resume_across_methods() -> None:
    """The state format does not depend on ``method``: an "ns" checkpoint resumes under "quintic".

    ``load_state_dict`` restores the saved param groups' hyperparameters (torch's
    semantics), so the group's ``method`` reads "ns" after the load and is switched
    afterwards, as one would switch it in a running optimizer.
    """
    straight = _torch_model(False, seed=0)
    straight_opt = muon_torch.Muon(straight.parameters(), lr=0.02, method="ns")
    _torch_train(straight, straight_opt, range(SPLIT))
    straight_opt.param_groups[0]["method"] = "quintic"
    _torch_train(straight, straight_opt, range(SPLIT, STEPS))

    first = _torch_model(False, seed=0)
    first_opt = muon_torch.Muon(first.parameters(), lr=0.02, method="ns")
    _torch_train(first, first_opt, range(SPLIT))
    checkpoint = _torch_checkpoint(first, first_opt)

    def resume(switch: bool) -> tuple[_Net, muon_torch.Muon]:
        model = _torch_model(False, seed=1)
        opt = muon_torch.Muon(model.parameters(), lr=0.02, method="quintic")
        model.load_state_dict(checkpoint["model"])
        opt.load_state_dict(checkpoint["optimizer"])
        assert opt.param_groups[0]["method"] == "ns"
        if switch:
            opt.param_groups[0]["method"] = "quintic"
        _torch_train(model, opt, range(SPLIT, STEPS))
        return model, opt

    resumed, resumed_opt = resume(switch=True)
    _assert_torch_params_equal(resumed, straight)
    _assert_torch_states_equal(resumed_opt, straight_opt)

    # Not vacuous: staying on "ns" after step 10 ends elsewhere.
    stayed, _ = resume(switch=False)
    assert any(not torch.equal(p, q) for p, q in zip(stayed.parameters(), straight.parameters(), strict=True))


# --------------------------------------------------------------------------- JAX


def _jax_params(embed: bool, seed: int) -> dict[str, jax.Array]:
    """Float32 params in Flax layout (kernels are ``(in, out)``), drawn with numpy (no eager XLA compiles)."""
    rng = np.random.default_rng(seed)
    params = {
        "w1": rng.standard_normal((IN, HIDDEN)) / IN**0.5,
        "b1": 0.1 * rng.standard_normal(HIDDEN),
        "w2": rng.standard_normal((HIDDEN, OUT)) / HIDDEN**0.5,
        "b2": 0.1 * rng.standard_normal(OUT),
    }
    if embed:
        params["embed"] = rng.standard_normal((VOCAB, IN))
    return {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}


def _jax_batch(step: int, embed: bool) -> tuple[np.ndarray, np.ndarray]:
    """The fixed batch of ``step``, made outside ``jit`` (random bits inside would double the compile time)."""
    rng = np.random.default_rng(1000 + step)
    x = rng.integers(VOCAB, size=(BATCH, TOKENS), dtype=np.int32) if embed else rng.standard_normal(
        (BATCH, IN), dtype=np.float32)
    return x, rng.standard_normal((BATCH, OUT), dtype=np.float32)


def _jax_loss(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    if "embed" in params:
        x = params["embed"][x].mean(axis=1)
    h = jax.nn.relu(x @ params["w1"] + params["b1"])
    return jnp.mean(jnp.square(h @ params["w2"] + params["b2"] - y))


def _jax_step_fn(tx: optax.GradientTransformation) -> Callable[..., Any]:
    @jax.jit
    def step(params: Any, state: Any, x: jax.Array, y: jax.Array) -> tuple[Any, Any]:
        updates, state = tx.update(jax.grad(_jax_loss)(params, x, y), state, params)
        return optax.apply_updates(params, updates), state

    return step


def _jax_train(step_fn: Callable[..., Any], params: Any, state: Any, steps: range) -> tuple[Any, Any]:
    embed = "embed" in params
    for i in steps:
        params, state = step_fn(params, state, *_jax_batch(i, embed))
    return params, state


#: name -> (uses the embedding, transformation factory)
JAX_CONFIGS: dict[str, tuple[bool, Callable[[], optax.GradientTransformation]]] = {
    "ns": (False, lambda: muon_jax.muon(0.02)),
    # A schedule puts an int32 step counter in the state, bf16 momentum a second dtype:
    # both must come back as they were.
    "quintic-nesterov-schedule-bf16_momentum": (False, lambda: muon_jax.muon(
        optax.cosine_decay_schedule(0.02, STEPS), method="quintic", nesterov=True, momentum_dtype="bfloat16")),
    "adamw_hybrid": (True, lambda: muon_jax.muon_with_adamw(
        0.02, adamw_lr=3e-3, adamw_betas=(0.8, 0.95), adamw=("embed",))),
    # The per-neuron second moments, with MaskedNodes for the AdamW leaves and the non-matrices.
    "neuron_norm_hybrid": (True, lambda: muon_jax.muon_with_adamw(
        0.02, method="polar_express", neuron_norm=True, neuron_beta2=0.9, adamw=("embed",))),
}


def _orbax_round_trip(path: pathlib.Path, tree: Any, like: Any) -> Any:
    """Save ``tree`` and restore it into the structure, shapes and dtypes of ``like`` (fresh objects)."""
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, tree)
        checkpointer.wait_until_finished()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(path, abstract)
    # Same NamedTuples, MaskedNodes and EmptyStates, same dtypes (int32 counters, bf16 momentum), same bits.
    assert jax.tree.structure(restored) == jax.tree.structure(tree)
    chex.assert_trees_all_equal_shapes_and_dtypes(restored, tree)
    chex.assert_trees_all_equal(restored, tree)
    return restored


def _count_dtypes(tree: Any) -> set[Any]:
    return {leaf.dtype for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype, jnp.integer)}


@pytest.mark.parametrize("name", list(JAX_CONFIGS))
def test_jax_exact_resume(name: str, tmp_path: pathlib.Path) -> None:
    embed, make = JAX_CONFIGS[name]
    tx = make()
    step = _jax_step_fn(tx)
    params0 = _jax_params(embed, seed=0)

    straight = _jax_train(step, params0, tx.init(params0), range(STEPS))
    first = _jax_train(step, params0, tx.init(params0), range(SPLIT))
    assert _count_dtypes(first[1]) == {jnp.dtype(jnp.int32)}  # the counters are there and int32
    if "bf16" in name:
        assert {m.dtype for m in jax.tree.leaves(first[1][0].momentum)} == {jnp.dtype(jnp.bfloat16)}

    fresh_tx = make()
    fresh_params = _jax_params(embed, seed=1)  # different init: the restore must set every leaf
    like = {"params": fresh_params, "opt_state": fresh_tx.init(fresh_params)}
    restored = _orbax_round_trip(tmp_path / "step10", {"params": first[0], "opt_state": first[1]}, like)
    fresh_step = _jax_step_fn(fresh_tx)
    resumed = _jax_train(fresh_step, restored["params"], restored["opt_state"], range(SPLIT, STEPS))

    chex.assert_trees_all_equal_shapes_and_dtypes(resumed, straight)
    chex.assert_trees_all_equal(resumed, straight)

    # Not vacuous: the same 10 steps from the restored params but a fresh optimizer state end elsewhere.
    # (Committed to the device like the restored arrays, so that ``fresh_step`` does not compile again.)
    fresh_state = jax.device_put(fresh_tx.init(restored["params"]), jax.devices()[0])
    restart, _ = _jax_train(fresh_step, restored["params"], fresh_state, range(SPLIT, STEPS))
    assert any(not jnp.array_equal(a, b) for a, b in zip(jax.tree.leaves(restart), jax.tree.leaves(straight[0]),
                                                             strict=True))


def test_jax_resume_across_methods(tmp_path: pathlib.Path) -> None:
    """An "ns" checkpoint restores into a "quintic" transformation (same state format) and
    continues exactly as one run that switched to "quintic" at step 10."""
    ns, quintic = muon_jax.muon(0.02, method="ns"), muon_jax.muon(0.02, method="quintic")
    ns_step, quintic_step = _jax_step_fn(ns), _jax_step_fn(quintic)
    params0 = _jax_params(False, seed=0)
    assert jax.tree.structure(ns.init(params0)) == jax.tree.structure(quintic.init(params0))

    first = _jax_train(ns_step, params0, ns.init(params0), range(SPLIT))
    switched = _jax_train(quintic_step, *first, range(SPLIT, STEPS))

    fresh_tx = muon_jax.muon(0.02, method="quintic")
    fresh_params = _jax_params(False, seed=1)
    like = {"params": fresh_params, "opt_state": fresh_tx.init(fresh_params)}
    restored = _orbax_round_trip(tmp_path / "ns_step10", {"params": first[0], "opt_state": first[1]}, like)
    resumed = _jax_train(_jax_step_fn(fresh_tx), restored["params"], restored["opt_state"], range(SPLIT, STEPS))
    chex.assert_trees_all_equal_shapes_and_dtypes(resumed, switched)
    chex.assert_trees_all_equal(resumed, switched)

    # Not vacuous: staying on "ns" after step 10 ends elsewhere.
    stayed, _ = _jax_train(ns_step, *first, range(SPLIT, STEPS))
    assert any(not jnp.array_equal(a, b) for a, b in zip(jax.tree.leaves(stayed), jax.tree.leaves(switched[0]),
                                                             strict=True))


FIXTURE_0_1 = pathlib.Path(__file__).parent / "fixtures" / "muon_torch_0.1.0_state.pt"


def _fixture_run(steps: range, model: nn.Module, opt: torch.optim.Optimizer) -> None:
    """The run that saved ``FIXTURE_0_1`` after its first 2 steps (see the fixture's ``version``)."""
    for step in steps:
        for p in model.parameters():
            p.grad = torch.full_like(p, 0.1) * (step + 1) + p.detach()
        opt.step()


def _fixture_model() -> tuple[nn.Module, muon_torch.Muon]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 3))
    return model, muon_torch.Muon(muon_torch.param_groups(model, adamw=("1.",)), lr=0.02, nesterov=True)


@pytest.mark.parametrize("drop", [(), ("orthogonalize_dtype", "momentum_dtype", "adjust_lr", "nesterov")])
def test_torch_state_dict_saved_by_0_1_resumes_exactly(drop: tuple[str, ...]) -> None:
    """A state_dict saved by version 0.1.0 loads and resumes bit-identically; so does one from a
    version that predates some options (``drop``): each gets the value of the earlier behaviour."""
    saved = torch.load(FIXTURE_0_1, weights_only=True)
    assert saved["version"] == "0.1.0"
    model, opt = _fixture_model()
    _fixture_run(range(4), model, opt)  # uninterrupted
    resumed_model, resumed = _fixture_model()
    resumed_model.load_state_dict(saved["model"])
    state = saved["optimizer"]
    for group in state["param_groups"]:
        for key in drop:
            if key != "nesterov":  # nesterov=True was set by the run, not a default: keep it
                group.pop(key)
    resumed.load_state_dict(state)
    _fixture_run(range(2, 4), resumed_model, resumed)
    for a, b in zip(model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)


class _ScaleByMuonState01(NamedTuple):
    """``muon_jax.ScaleByMuonState`` as version 0.1 defined it (and saved it in checkpoints)."""

    momentum: Any
    nonfinite_steps: Any


def test_orbax_checkpoint_saved_by_0_1_restores(tmp_path: pathlib.Path) -> None:
    """A state saved by 0.1 restores into today's default state: orbax refuses a restore whose
    structure differs from the saved one (e.g. a field added to ScaleByMuonState)."""
    _, make = JAX_CONFIGS["ns"]
    tx = make()
    params = _jax_params(False, seed=0)
    params, state = _jax_train(_jax_step_fn(tx), params, tx.init(params), range(SPLIT))
    saved = (_ScaleByMuonState01(*state[0]), *state[1:])
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "v01", {"opt_state": saved})
        checkpointer.wait_until_finished()
    like = {"opt_state": tx.init(params)}
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(tmp_path / "v01", jax.tree.map(ocp.utils.to_shape_dtype_struct, like))
    assert type(restored["opt_state"][0]) is muon_jax.ScaleByMuonState
    chex.assert_trees_all_equal(restored["opt_state"], state)
