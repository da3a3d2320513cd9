"""The recommended configuration: the same schedule and the same parameter split in both twins.

``muon_torch.recommended`` and ``muon_jax.recommended`` train the same model (torch layout
in torch, Flax layout in JAX) through a whole warmup–stable–decay run, from the same
weights and gradients, and must land on the same parameters.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from torch import nn

import muon_jax
import muon_torch
from muon_common import RECIPE, wsd_phases

SHAPES = [(10, 0.2, 0.5), (100, 0.05, 0.5), (7, 0.0, 1.0), (5, 0.0, 0.0), (3, 1.0, 0.0), (1, 0.05, 0.5),
          (4, 0.5, 0.5), (2, 0.0, 1.0), (37, 0.1, 0.3)]


def _torch_lrs(total: int, warmup: float, decay: float, peaks: tuple[float, ...] = (0.3,)) -> np.ndarray:
    params = [nn.Parameter(torch.zeros(2)) for _ in peaks]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, peaks, strict=True)])
    scheduler = muon_torch.warmup_stable_decay(opt, total, warmup, decay)
    lrs = []
    for _ in range(total):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        scheduler.step()
    return np.asarray(lrs)


def _closed_form(total: int, warmup: float, decay: float, peak: float) -> np.ndarray:
    """``muon_common.wsd_phases``' docstring formula, written out."""
    w, _, d = wsd_phases(total, warmup, decay)
    return np.array([peak * ((t + 1) / w if t < w else 1.0 if t < total - d else (total - t) / d)
                     for t in range(total)])


@pytest.mark.parametrize("total,warmup,decay", SHAPES)
def test_schedule_is_the_same_in_both_twins(total: int, warmup: float, decay: float) -> None:
    expected = _closed_form(total, warmup, decay, 0.3)
    torch_lrs = _torch_lrs(total, warmup, decay)[:, 0]
    schedule = muon_jax.warmup_stable_decay(0.3, total, warmup, decay)
    jax_lrs = np.array([float(schedule(t)) for t in range(total)])
    # torch's chained LinearLR multiplies factors step by step in float64: measured 1.1e-16;
    # optax evaluates the schedule in float32 here: measured 3.4e-8 (float32 rounding of 0.3 * f).
    np.testing.assert_allclose(torch_lrs, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(jax_lrs, expected, rtol=1e-6, atol=1e-9)


def test_schedule_shape() -> None:
    w, s, d = wsd_phases(200, 0.05, 0.5)
    assert (w, s, d) == (10, 90, 100)
    lrs = _closed_form(200, 0.05, 0.5, 1.0)
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == 1.0 and lrs[10:100].min() == 1.0
    assert np.all(np.diff(lrs[100:]) < 0) and lrs[-1] == pytest.approx(1 / 100)
    assert wsd_phases(50) == wsd_phases(50, RECIPE.warmup_fraction, RECIPE.decay_fraction)


def test_schedule_scales_every_param_group() -> None:
    lrs = _torch_lrs(20, 0.2, 0.5, peaks=(0.3, 0.01))
    np.testing.assert_allclose(lrs[:, 1] / lrs[:, 0], 0.01 / 0.3, rtol=1e-12)


@pytest.mark.parametrize("bad", [{"total_steps": 0}, {"total_steps": 2.5}, {"warmup_fraction": -0.1},
                                 {"decay_fraction": 1.5}, {"warmup_fraction": True}])
def test_bad_schedule_arguments_fail_identically(bad: dict[str, Any]) -> None:
    args = {"total_steps": 10, "warmup_fraction": 0.1, "decay_fraction": 0.5, **bad}
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=0.1)
    with pytest.raises(ValueError) as torch_error:
        muon_torch.warmup_stable_decay(opt, **args)
    with pytest.raises(ValueError) as jax_error:
        muon_jax.warmup_stable_decay(0.1, **args)
    assert str(torch_error.value) == str(jax_error.value)
    assert next(iter(bad)) in str(torch_error.value)


class _Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(12, 6)
        self.hidden = nn.Linear(6, 8)
        self.hidden2 = nn.Linear(8, 6, bias=False)
        self.head = nn.Linear(6, 12, bias=False)


def _flax_layout(named: Any) -> dict[str, Any]:
    """``(name, tensor)`` pairs of a ``_Model`` (its params or their grads) as Flax-style arrays."""
    t = {n: x.detach().numpy().copy() for n, x in named}
    return {"embed": {"embedding": t["embed.weight"]},
            "hidden": {"kernel": t["hidden.weight"].T, "bias": t["hidden.bias"]},
            "hidden2": {"kernel": t["hidden2.weight"].T},
            "head": {"kernel": t["head.weight"].T}}


def test_recommended_splits_the_same_parameters() -> None:
    model = _Model()
    opt, _ = muon_torch.recommended(model, total_steps=10)
    names = {id(p): n for n, p in model.named_parameters()}
    split = {names[id(p)]: g["algorithm"] for g in opt.param_groups for p in g["params"]}
    assert split == {"embed.weight": "adamw", "hidden.weight": "muon", "hidden.bias": "adamw",
                     "hidden2.weight": "muon", "head.weight": "adamw"}
    labels = muon_jax.muon_labels(_flax_layout(model.named_parameters()), adamw=RECIPE.adamw)
    assert labels == {"embed": {"embedding": "adamw"}, "hidden": {"kernel": "muon", "bias": "adamw"},
                      "hidden2": {"kernel": "muon"}, "head": {"kernel": "adamw"}}
    muon_group = next(g for g in opt.param_groups if g["algorithm"] == "muon")
    adamw_group = next(g for g in opt.param_groups if g["algorithm"] == "adamw")
    assert muon_group["initial_lr"] == RECIPE.lr
    assert adamw_group["initial_lr"] == RECIPE.lr * RECIPE.adamw_lr_ratio
    assert adamw_group["betas"] == RECIPE.adamw_betas
    for key, value in RECIPE.muon_options().items():
        assert muon_group[key] == value, key


@pytest.mark.parametrize("dtype", [pytest.param(np.float64, marks=pytest.mark.x64), np.float32])
def test_recommended_trains_the_same_in_both_twins(dtype: Any) -> None:
    """A whole 20-step run (warmup 1, decay 10) of both twins from the same weights and gradients."""
    total, lr, adamw_lr = 20, 0.02, 0.005
    torch.manual_seed(0)
    model = _Model().to(torch.float64 if dtype == np.float64 else torch.float32)
    params: Any = jax.tree.map(jnp.asarray, _flax_layout(model.named_parameters()))
    opt, scheduler = muon_torch.recommended(model, total, lr=lr, adamw_lr=adamw_lr)
    tx = muon_jax.recommended(total, learning_rate=lr, adamw_lr=adamw_lr)
    state = tx.init(params)
    rng = np.random.default_rng(0)
    for _ in range(total):
        for p in model.parameters():
            p.grad = torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(dtype))
        grads = jax.tree.map(jnp.asarray, _flax_layout((n, p.grad) for n, p in model.named_parameters()))
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        opt.step()
        scheduler.step()
    ours = _flax_layout(model.named_parameters())
    errors = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b))), params, ours)
    worst = max(jax.tree.leaves(errors))
    # optax's linear_schedule returns float32 even under x64, so JAX's lr carries a float32
    # rounding (relative 3e-8) that torch's float64 lr does not: measured worst 2.4e-8 in
    # float64 and 6.4e-7 in float32 (bound: the suite's float32 1e-5). Any mistake in the split
    # or the schedule moves params by more than 1e-3.
    assert worst <= (1e-7 if dtype == np.float64 else 1e-5), errors
    assert opt.param_groups[0]["lr"] == 0.0  # the schedule ran to its end: lr 0 after the last step


@pytest.mark.x64  # float64 params
def test_jax_recommended_takes_a_traced_peak_lr() -> None:
    """``muon_jax.recommended`` under ``jit`` with the peak lr as an argument equals the float one."""
    params = {"embed": jnp.ones((10, 4)), "hidden": jnp.asarray(np.random.default_rng(0).standard_normal((4, 4))),
              "bias": jnp.zeros(4)}
    grads = jax.tree.map(lambda p: jnp.cos(3.0 * p) + 0.1, params)

    def two_updates(peak: Any) -> Any:
        tx = muon_jax.recommended(100, peak)
        state = tx.init(params)
        _, state = tx.update(grads, state, params)
        return tx.update(grads, state, params)[0]

    traced, plain = jax.jit(two_updates)(jnp.asarray(0.01)), two_updates(0.01)
    # float64 params; the schedule is float32 either way (see above): measured 0 difference.
    for a, b in zip(jax.tree.leaves(traced), jax.tree.leaves(plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12)
