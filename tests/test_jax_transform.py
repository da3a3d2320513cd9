"""``muon_jax`` as an Optax gradient transformation."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import muon_jax
import muon_torch

STEPS = 3


def _params() -> dict[str, jax.Array]:
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    return {
        "w": jax.random.normal(k1, (6, 4), jnp.float32),
        "v": jax.random.normal(k2, (4, 6), jnp.float32),  # wide: Newton–Schulz on the other side
        "b": jax.random.normal(k3, (4,), jnp.float32),  # not 2-D: RMS-scaled, not orthogonalised
    }


# The harness is jitted once (eager dispatch compiles every op per shape, which is
# slow); the transformation under test is run as each test says.
@jax.jit
def _grads(params: optax.Params, step: int) -> optax.Updates:
    """A deterministic gradient that depends on the params and on the step."""
    return jax.tree.map(lambda p: jnp.sin(3.0 * p + 0.7 * step) + 0.1, params)


_apply_updates = jax.jit(optax.apply_updates)


def _run(opt: optax.GradientTransformation, update, steps: int = STEPS, params=None):
    """``steps`` optimisation steps; returns the params and the list of updates."""
    params = _params() if params is None else params
    state = opt.init(params)
    history = []
    for step in range(steps):
        updates, state = update(_grads(params, step), state, params)
        params = _apply_updates(params, updates)
        history.append(updates)
    return params, history, state


def _no_jit(fn):
    """The eager variant: the function as it is."""
    return fn


# Each test that takes ``variant`` runs the transformation under test jitted and eagerly.
VARIANTS = pytest.mark.parametrize("variant", [jax.jit, _no_jit], ids=["jit", "no_jit"])


@VARIANTS
def test_state_is_a_namedtuple_pytree_shaped_like_params(variant):
    params = _params()
    opt = muon_jax.scale_by_muon()
    state = opt.init(params)
    assert isinstance(state, muon_jax.ScaleByMuonState)
    assert state._fields == ("momentum", "nonfinite_steps")
    chex.assert_trees_all_equal_shapes_and_dtypes(state.momentum, params)
    chex.assert_trees_all_equal(state.momentum, jax.tree.map(jnp.zeros_like, params))
    chex.assert_trees_all_equal(state.nonfinite_steps, jax.tree.map(lambda _: jnp.zeros((), jnp.int32), params))
    # A pytree: its leaves are the momentum's leaves and one counter per leaf.
    assert len(jax.tree.leaves(state)) == 2 * len(jax.tree.leaves(params))

    updates, new_state = variant(opt.update)(_grads(params, 0), state)
    assert isinstance(new_state, muon_jax.ScaleByMuonState)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_state.momentum, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
    # After one step from zero the momentum is (1 - beta) g.
    chex.assert_trees_all_close(new_state.momentum, jax.tree.map(lambda g: 0.1 * g, _grads(params, 0)),
                                rtol=1e-6)

    # Inside muon, the chain's first state is the same NamedTuple.
    chain_state = muon_jax.muon(0.1).init(params)
    assert isinstance(chain_state[0], muon_jax.ScaleByMuonState)
    chex.assert_trees_all_equal_shapes(chain_state[0].momentum, params)


@VARIANTS
def test_muon_equals_documented_chain(variant):
    kwargs = {"beta": 0.8, "eps": 1e-7, "ns_iters": 4, "clip_grad_norm": 2.0}
    lr, wd = 0.05, 0.1
    opt = muon_jax.muon(lr, weight_decay=wd, **kwargs)
    chain = optax.chain(
        muon_jax.scale_by_muon(**kwargs),
        optax.add_decayed_weights(wd),
        optax.scale_by_learning_rate(lr),
    )
    params, history, state = _run(opt, variant(opt.update))
    chain_params, chain_history, chain_state = _run(chain, variant(chain.update))
    chex.assert_trees_all_equal(history, chain_history)
    chex.assert_trees_all_equal(params, chain_params)
    chex.assert_trees_all_equal(state[0], chain_state[0])
    # Not vacuous: without the decay the chain ends elsewhere.
    plain = optax.chain(muon_jax.scale_by_muon(**kwargs), optax.scale_by_learning_rate(lr))
    plain_params, _, _ = _run(plain, variant(plain.update))
    assert not np.allclose(plain_params["w"], params["w"], atol=1e-4)


@VARIANTS
def test_schedule_equals_manually_varied_float_lr(variant):
    schedule = optax.linear_schedule(init_value=0.1, end_value=0.01, transition_steps=3)
    lrs = [float(schedule(i)) for i in range(STEPS)]
    np.testing.assert_allclose(lrs, [0.1, 0.07, 0.04], rtol=1e-6)

    opt = muon_jax.muon(schedule, weight_decay=0.1)
    params, history, _ = _run(opt, variant(opt.update))

    manual = _params()
    state = muon_jax.muon(lrs[0], weight_decay=0.1).init(manual)
    manual_history = []
    for step, lr in enumerate(lrs):
        fixed = muon_jax.muon(lr, weight_decay=0.1)
        updates, state = fixed.update(_grads(manual, step), state, manual)
        manual = _apply_updates(manual, updates)
        manual_history.append(updates)

    # Equal up to float32 rounding: with a float, ``-lr`` is a constant that XLA may
    # fold into ``lr * wd`` (measured under jit only: at most 6e-9 absolute, a few ulp
    # of the ~0.05 update entries; an entry that cancels to ~1e-3 is why atol is
    # needed). Eager, the two are bit-identical.
    chex.assert_trees_all_close(history, manual_history, rtol=1e-6, atol=1e-8)
    chex.assert_trees_all_close(params, manual, rtol=1e-6, atol=1e-8)
    if variant is _no_jit:
        chex.assert_trees_all_equal(params, manual)


@VARIANTS
def test_inside_clip_by_global_norm_chain(variant):
    scales = [30.0, 0.2, 5.0]  # global norms well above and below the clip
    opt = optax.chain(optax.clip_by_global_norm(1.0), muon_jax.muon(0.05))

    def grads_at(params, step):
        return jax.tree.map(lambda g: scales[step] * g, _grads(params, step))

    params = _params()
    state = opt.init(params)
    inner = muon_jax.muon(0.05)
    ref_params, ref_state = _params(), inner.init(params)
    update = variant(opt.update)
    for step in range(len(scales)):
        g = grads_at(params, step)
        norm = float(optax.tree.norm(g))
        updates, state = update(g, state, params)
        params = _apply_updates(params, updates)

        ref_g = grads_at(ref_params, step)
        ref_g = jax.tree.map(lambda x, n=norm: x / max(n, 1.0), ref_g)
        ref_updates, ref_state = inner.update(ref_g, ref_state, ref_params)
        ref_params = _apply_updates(ref_params, ref_updates)
        chex.assert_trees_all_close(updates, ref_updates, rtol=1e-5, atol=1e-6)

    chex.assert_trees_all_close(params, ref_params, rtol=1e-5, atol=1e-6)
    # The clipped momentum is bounded by the clip; unclipped it would reach ~30x.
    momentum_norm = float(optax.tree.norm(state[1][0].momentum))
    assert momentum_norm < 1.0
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(params))


@VARIANTS
def test_weight_decay_mask(variant):
    mask = {"w": True, "v": False, "b": True}
    masked = muon_jax.muon(0.05, weight_decay=0.5, weight_decay_mask=mask)
    decayed = muon_jax.muon(0.05, weight_decay=0.5)
    undecayed = muon_jax.muon(0.05, weight_decay=0.0)
    params, _, _ = _run(masked, variant(masked.update))
    all_decay, _, _ = _run(decayed, variant(decayed.update))
    no_decay, _, _ = _run(undecayed, variant(undecayed.update))
    for name, decay in mask.items():
        expected = all_decay if decay else no_decay
        chex.assert_trees_all_equal(params[name], expected[name])
        assert not np.allclose(all_decay[name], no_decay[name], atol=1e-4)

    # A callable mask is accepted too: decay only 2-D leaves.
    by_ndim = muon_jax.muon(0.05, weight_decay=0.5,
                            weight_decay_mask=lambda p: jax.tree.map(lambda x: x.ndim == 2, p))
    callable_params, _, _ = _run(by_ndim, variant(by_ndim.update))
    chex.assert_trees_all_equal(callable_params["w"], all_decay["w"])
    chex.assert_trees_all_equal(callable_params["v"], all_decay["v"])
    chex.assert_trees_all_equal(callable_params["b"], no_decay["b"])


def test_same_shape_leaves_batched_equal_one_at_a_time():
    """Leaves of one shape are orthogonalised as one stack; each must get its own result.

    Measured: bit-identical on CPU; rtol=1e-6 allows for a batched GEMM that
    blocks the stack differently from a single matrix (a few float32 ulp).
    """
    keys = jax.random.split(jax.random.key(4), 4)
    params = {f"m{i}": jax.random.normal(k, (6, 4)) for i, k in enumerate(keys[:3])}
    params["v"] = jax.random.normal(keys[3], (4, 6))
    opt = muon_jax.muon(0.05)
    together, _, _ = _run(opt, opt.update, params=params)
    for name, leaf in params.items():
        alone, _, _ = _run(opt, opt.update, params={name: leaf})
        chex.assert_trees_all_close(together[name], alone[name], rtol=1e-6, atol=1e-7)
    assert not np.allclose(together["m0"], together["m1"], atol=1e-2)


@pytest.mark.parametrize("method", ["ns", "svd"])
def test_jit_equals_eager_within_float32_rounding(method):
    """jit and eager agree up to float32 rounding.

    XLA fuses and reorders under jit (the norm reductions, ``-lr * wd`` folded
    into one constant), so bits may differ. Measured over 6 steps (CPU): updates
    differ by at most 5.6e-9 ("ns") / 8.6e-9 ("svd") absolute, i.e. 3e-7 / 6e-7
    of the largest update entry; params by 1.2e-7 / 6e-8, one ulp of values ~1.
    rtol=1e-5 with atol=1e-7 (updates are ~0.02) leaves >10x headroom.
    """
    params = _params()
    opt = muon_jax.muon(0.02, clip_grad_norm=3.0, method=method)
    eager, eager_history, _ = _run(opt, opt.update, steps=6, params=params)
    jitted, jit_history, _ = _run(opt, jax.jit(opt.update), steps=6, params=params)
    chex.assert_trees_all_close(jit_history, eager_history, rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(jitted, eager, rtol=1e-5, atol=1e-7)
    # Not vacuous: the params moved far more than the tolerance.
    assert float(jnp.abs(jitted["w"] - params["w"]).max()) > 1e-2


@VARIANTS
@pytest.mark.parametrize("method", ["ns", "svd"])
def test_batch_dims_equal_per_matrix_jax(variant, method):
    G = jax.random.normal(jax.random.key(2), (2, 3, 5, 4))
    orth = variant(functools.partial(muon_jax.orthogonalize, method=method))
    batched = orth(G)
    chex.assert_shape(batched, G.shape)
    for i in range(2):
        for j in range(3):
            chex.assert_trees_all_close(batched[i, j], orth(G[i, j]), rtol=1e-5, atol=1e-6)
    # Not vacuous: each matrix got its own result.
    assert not np.allclose(batched[0, 0], batched[1, 2], atol=1e-2)


@pytest.mark.parametrize("method", ["ns", "svd"])
def test_batch_dims_equal_per_matrix_torch(method):
    G = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(2))
    batched = muon_torch.orthogonalize(G, method=method)
    assert batched.shape == G.shape
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(batched[i, j], muon_torch.orthogonalize(G[i, j], method=method),
                                       rtol=1e-5, atol=1e-6)
    assert not torch.allclose(batched[0, 0], batched[1, 2], atol=1e-2)


def _well_conditioned(n=8):
    """Singular values spread over [1, 2]: condition number 2."""
    rng = np.random.default_rng(3)
    U, _ = np.linalg.qr(rng.standard_normal((n, n)))
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (U * np.linspace(1.0, 2.0, n)) @ V.T, U @ V.T


@VARIANTS
def test_many_ns_iterations_converge_to_orthogonal_jax(variant):
    G, polar = _well_conditioned()
    eye = np.eye(G.shape[0])
    ns = functools.partial(muon_jax.orthogonalize, method="ns")
    Q = np.asarray(variant(functools.partial(ns, ns_iters=30))(jnp.asarray(G, jnp.float32)))
    np.testing.assert_allclose(Q.T @ Q, eye, atol=1e-5)
    np.testing.assert_allclose(Q, polar, atol=1e-5)  # the polar factor, not any orthogonal matrix
    # Not vacuous: 3 steps are far from orthogonal.
    Q3 = np.asarray(variant(functools.partial(ns, ns_iters=3))(jnp.asarray(G, jnp.float32)))
    assert np.abs(Q3.T @ Q3 - eye).max() > 1e-2

    S = np.asarray(variant(functools.partial(muon_jax.orthogonalize, method="svd"))(
        jnp.asarray(G, jnp.float32)))
    np.testing.assert_allclose(S.T @ S, eye, atol=2e-6)
    np.testing.assert_allclose(S, polar, atol=2e-6)


def test_many_ns_iterations_converge_to_orthogonal_torch():
    G, polar = _well_conditioned()
    eye = np.eye(G.shape[0])
    G32 = torch.tensor(G, dtype=torch.float32)
    Q = muon_torch.orthogonalize(G32, method="ns", ns_iters=30).double().numpy()
    np.testing.assert_allclose(Q.T @ Q, eye, atol=1e-5)
    np.testing.assert_allclose(Q, polar, atol=1e-5)
    Q3 = muon_torch.orthogonalize(G32, method="ns", ns_iters=3).double().numpy()
    assert np.abs(Q3.T @ Q3 - eye).max() > 1e-2

    S = muon_torch.orthogonalize(G32, method="svd").double().numpy()
    np.testing.assert_allclose(S.T @ S, eye, atol=2e-6)
    np.testing.assert_allclose(S, polar, atol=2e-6)
    # In float64 the SVD polar factor is orthogonal to float64 rounding.
    S64 = muon_torch.orthogonalize(torch.tensor(G), method="svd").numpy()
    np.testing.assert_allclose(S64.T @ S64, eye, atol=1e-13)
