"""``optax.inject_hyperparams`` over ``muon``, ``scale_by_muon`` and ``muon_with_adamw``."""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import muon_jax


@pytest.mark.x64  # float64 params and hyperparameters: exact to 1e-12
@pytest.mark.parametrize("factory", [muon_jax.muon, muon_jax.muon_with_adamw])
def test_inject_hyperparams_matches_and_changes_under_jit(factory: Any) -> None:
    """``optax.inject_hyperparams`` works over the transformations, and the lr and the weight
    decay changed in its state mid-run take effect in the jitted update."""
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.standard_normal((4, 3))), "b": jnp.ones(3)}
    grads = jax.tree.map(lambda p: 0.5 * p + 0.1, params)
    tx = optax.inject_hyperparams(factory)(learning_rate=0.02, weight_decay=0.1)
    update = jax.jit(tx.update)
    state = tx.init(params)
    updates, _ = update(grads, state, params)
    plain = factory(0.02, weight_decay=0.1)
    expected, _ = plain.update(grads, plain.init(params), params)
    chex.assert_trees_all_close(updates, expected, rtol=1e-12, atol=0)  # float64 hyperparameters: exact
    # From the same state: halving the lr halves the step; with no weight decay the decay term goes.
    state.hyperparams["learning_rate"] = jnp.asarray(0.01)
    half, _ = update(grads, state, params)
    state.hyperparams["weight_decay"] = jnp.asarray(0.0)
    no_decay, _ = update(grads, state, params)
    again = factory(0.01, weight_decay=0.1)
    chex.assert_trees_all_close(half, again.update(grads, again.init(params), params)[0], rtol=1e-12, atol=0)
    without = factory(0.01, weight_decay=0.0)
    chex.assert_trees_all_close(no_decay, without.update(grads, without.init(params), params)[0], rtol=1e-12,
                                atol=1e-15)


@pytest.mark.x64
def test_inject_hyperparams_over_scale_by_muon_and_its_checks() -> None:
    params = {"w": jnp.ones((4, 3))}
    tx = optax.inject_hyperparams(muon_jax.scale_by_muon)(beta=0.95)
    updates, _ = jax.jit(tx.update)(params, tx.init(params), params)
    expected, _ = muon_jax.scale_by_muon(beta=0.95).update(params, muon_jax.scale_by_muon().init(params), params)
    chex.assert_trees_all_close(updates, expected, rtol=1e-12, atol=0)
    # Concrete values are still checked, with the usual message ...
    with pytest.raises(ValueError, match="Invalid learning_rate"):
        optax.inject_hyperparams(muon_jax.muon)(learning_rate=-0.02).init(params)
    # ... and a traced ns_iters, which would have to set the computation, says what to do.
    injected = optax.inject_hyperparams(muon_jax.muon)(learning_rate=0.02, ns_iters=5)
    with pytest.raises(ValueError, match="static_args"):
        jax.jit(injected.update)(params, injected.init(params), params)
    static = optax.inject_hyperparams(muon_jax.muon, static_args=("ns_iters",))(learning_rate=0.02, ns_iters=5)
    jax.jit(static.update)(params, static.init(params), params)


@pytest.mark.x64
def test_inject_hyperparams_with_neuron_norm() -> None:
    """``neuron_beta2`` is injected (an array, traced under jit) and equals the plain run; the
    flag ``neuron_norm`` stays static (optax does not inject booleans)."""
    rng = np.random.default_rng(1)
    params = {"w": jnp.asarray(rng.standard_normal((5, 3))), "b": jnp.ones(3)}
    grads = [jax.tree.map(lambda p, i=i: jnp.sin(p + i), params) for i in range(3)]
    tx = optax.inject_hyperparams(muon_jax.muon)(learning_rate=0.02, neuron_norm=True, neuron_beta2=0.8)
    plain = muon_jax.muon(0.02, neuron_norm=True, neuron_beta2=0.8)
    state, plain_state = tx.init(params), plain.init(params)
    assert set(state.hyperparams) >= {"learning_rate", "neuron_beta2"} and "neuron_norm" not in state.hyperparams
    update = jax.jit(tx.update)
    for g in grads:
        updates, state = update(g, state, params)
        expected, plain_state = plain.update(g, plain_state, params)
        chex.assert_trees_all_close(updates, expected, rtol=1e-12, atol=0)
    chex.assert_trees_all_close(state.inner_state[0].neuron_second_moment, plain_state[0].neuron_second_moment,
                                rtol=1e-12, atol=0)
    state.hyperparams["neuron_beta2"] = jnp.asarray(0.5)  # takes effect: the second moments move elsewhere
    _, changed = update(grads[0], state, params)
    _, kept = plain.update(grads[0], plain_state, params)
    assert not np.allclose(changed.inner_state[0].neuron_second_moment["w"], kept[0].neuron_second_moment["w"])
