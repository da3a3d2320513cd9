"""Both twins reject the same bad input with the same ``ValueError`` message."""

from __future__ import annotations

import copy
import math

import chex
import jax
import jax.numpy as jnp
import optax
import pytest
import torch

import muon_jax
import muon_torch
from muon_common import DEFAULTS, METHODS, NORMALIZATIONS, MatrixAxes, Messages

NAN = float("nan")
INF = float("inf")

#: (argument, bad value): the torch name of the argument (``lr`` is ``learning_rate`` in JAX).
BAD_HYPERPARAMETERS = [
    ("lr", 0.0),
    ("lr", -0.1),
    ("lr", NAN),
    ("lr", INF),
    ("lr", -INF),
    ("lr", True),
    ("lr", "0.1"),
    ("beta", 1.0),
    ("beta", -0.1),
    ("beta", NAN),
    ("beta", 1.5),
    ("beta", INF),
    ("weight_decay", -0.01),
    ("weight_decay", NAN),
    ("weight_decay", INF),
    ("eps", 0.0),
    ("eps", -1e-8),
    ("eps", NAN),
    ("eps", INF),
    ("ns_iters", 0),
    ("ns_iters", -1),
    ("ns_iters", 2.5),
    ("ns_iters", True),
    ("ns_iters", "5"),
    ("method", "newton_schulz"),
    ("method", "NS"),
    ("method", None),
    ("clip_grad_norm", 0.0),
    ("clip_grad_norm", -1.0),
    ("clip_grad_norm", NAN),
    ("rms_scale", 1),
    ("rms_scale", "yes"),
    ("rms_scale", None),
    ("method", []),
    ("method", [(1.5, -0.5)]),
    ("method", [(1.5, -0.5, float("nan"))]),
    ("nesterov", 1),
    ("nesterov", None),
    ("adjust_lr", "keller"),
    ("adjust_lr", True),
    ("momentum_dtype", "float16"),
    ("momentum_dtype", "bf16"),
    ("orthogonalize_dtype", "float16"),
    ("neuron_norm", 1),
    ("neuron_norm", None),
    ("neuron_beta2", 1.0),
    ("neuron_beta2", -0.5),
    ("neuron_beta2", NAN),
    ("normalization", "spectral_norm"),
    ("normalization", None),
]

_TEMPLATES = {
    "beta": Messages.BETA,
    "weight_decay": Messages.WEIGHT_DECAY,
    "eps": Messages.EPS,
    "ns_iters": Messages.NS_ITERS,
    "clip_grad_norm": Messages.CLIP,
    "rms_scale": Messages.RMS_SCALE,
    "nesterov": Messages.NESTEROV,
    "adjust_lr": Messages.ADJUST_LR,
    "neuron_norm": Messages.NEURON_NORM,
    "neuron_beta2": Messages.NEURON_BETA2,
}

#: The arguments of ``scale_by_muon`` (no learning rate, no weight decay).
SCALE_BY_MUON_ARGS = ("beta", "eps", "ns_iters", "method", "rms_scale", "clip_grad_norm", "nesterov", "adjust_lr",
                      "momentum_dtype", "orthogonalize_dtype", "neuron_norm", "neuron_beta2", "normalization")


def _expected(name: str, value: object, lr_name: str) -> str:
    """The message written from the spec's template, independently of the twins."""
    if name == "lr":
        return Messages.LR.format(name=lr_name, value=value)
    if name == "method":
        return Messages.METHOD.format(value=value, choices=", ".join(map(repr, METHODS)))
    if name in ("momentum_dtype", "orthogonalize_dtype"):
        return Messages.DTYPE.format(name=name, value=value)
    if name == "normalization":
        return Messages.NORMALIZATION.format(value=value, choices=", ".join(map(repr, NORMALIZATIONS)))
    return _TEMPLATES[name].format(value=value)


def _jax_name(name: str) -> str:
    return "learning_rate" if name == "lr" else name


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def _param() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.ones(3, 4))


@pytest.mark.parametrize(("name", "value"), BAD_HYPERPARAMETERS, ids=lambda x: repr(x))
def test_bad_hyperparameter_rejected_identically(name: str, value: object) -> None:
    torch_msg = _message(muon_torch.Muon, [_param()], **{"lr": 0.1, name: value})
    jax_msg = _message(muon_jax.muon, **{"learning_rate": 0.1, _jax_name(name): value})

    assert torch_msg == _expected(name, value, lr_name="lr")
    assert jax_msg == _expected(name, value, lr_name="learning_rate")
    # Identical up to the argument's name, which each message spells out.
    if name == "lr":
        assert "learning_rate" not in torch_msg
        assert jax_msg == torch_msg.replace("lr", "learning_rate")
    else:
        assert jax_msg == torch_msg
    assert torch_msg.startswith(f"Invalid {name}: ")
    assert jax_msg.startswith(f"Invalid {_jax_name(name)}: ")
    assert repr(value) in torch_msg


def test_svd_with_bfloat16_orthogonalization_rejected_identically() -> None:
    kwargs = {"method": "svd", "orthogonalize_dtype": "bfloat16"}
    expected = Messages.SVD_DTYPE.format(value="bfloat16")
    assert _message(muon_torch.Muon, [_param()], lr=0.1, **kwargs) == expected
    assert _message(muon_jax.muon, 0.1, **kwargs) == expected
    assert _message(muon_jax.scale_by_muon, **kwargs) == expected


def test_bad_adamw_group_rejected_identically() -> None:
    expected = Messages.BETAS.format(value=(0.9, 1.0))
    assert _message(muon_torch.Muon, [{"params": [_param()], "algorithm": "adamw", "betas": (0.9, 1.0)}],
                    lr=0.1) == expected
    assert _message(muon_jax.muon_with_adamw, 0.1, adamw_betas=(0.9, 1.0)) == expected
    assert _message(muon_torch.Muon, [{"params": [_param()], "algorithm": "sgd"}], lr=0.1) == (
        Messages.ALGORITHM.format(value="sgd"))


@pytest.mark.parametrize(
    ("name", "value"), [(n, v) for n, v in BAD_HYPERPARAMETERS if n in SCALE_BY_MUON_ARGS], ids=lambda x: repr(x)
)
def test_bad_hyperparameter_rejected_by_scale_by_muon(name: str, value: object) -> None:
    msg = _message(muon_jax.scale_by_muon, **{name: value})
    assert msg == _expected(name, value, lr_name="learning_rate")
    assert msg == _message(muon_torch.Muon, [_param()], **{"lr": 0.1, name: value})


def test_the_table_covers_every_hyperparameter() -> None:
    """Guard against the table silently losing an argument."""
    assert {n for n, _ in BAD_HYPERPARAMETERS} == {"lr", *DEFAULTS}


@pytest.mark.parametrize(
    ("name", "value"),
    [("lr", 1e-3), ("beta", 0.0), ("weight_decay", 0.0), ("eps", 1e-30), ("ns_iters", 1), ("method", "svd"),
     ("clip_grad_norm", 1e-6), ("rms_scale", False), ("method", "quintic"), ("method", "polar_express"),
     ("method", [(1.5, -0.5, 0.0)]), ("nesterov", True), ("adjust_lr", "original"), ("adjust_lr", "match_rms_adamw"),
     ("momentum_dtype", "bfloat16"), ("orthogonalize_dtype", "bfloat16"), ("neuron_norm", True),
     ("neuron_beta2", 0.0), ("normalization", "aol")],
)
def test_edge_values_accepted(name: str, value: object) -> None:
    """The boundary of each check is on the right side (so the table above is not vacuous)."""
    muon_torch.Muon([_param()], **{"lr": 0.1, name: value})
    muon_jax.muon(**{"learning_rate": 0.1, _jax_name(name): value})
    if name in SCALE_BY_MUON_ARGS:
        muon_jax.scale_by_muon(**{name: value})


def test_lr_schedule_skips_the_lr_check() -> None:
    muon_jax.muon(optax.constant_schedule(0.1))
    with pytest.raises(ValueError, match=r"^Invalid beta: 1\.0\."):
        muon_jax.muon(optax.constant_schedule(0.1), beta=1.0)


# --- torch param groups ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"beta": 2.0}, Messages.BETA.format(value=2.0)),
        ({"lr": -1.0}, Messages.LR.format(name="lr", value=-1.0)),
        ({"method": "svdd"}, Messages.METHOD.format(value="svdd", choices=", ".join(map(repr, METHODS)))),
        ({"ns_iters": 0}, Messages.NS_ITERS.format(value=0)),
        ({"rms_scale": 0}, Messages.RMS_SCALE.format(value=0)),
    ],
)
def test_bad_group_override_in_constructor(override: dict, expected: str) -> None:
    good = _param()
    with pytest.raises(ValueError) as info:
        muon_torch.Muon([{"params": [good]}, {"params": [_param()], **override}], lr=0.1)
    assert str(info.value) == expected
    # The defaults alone are fine: it is the override that was rejected.
    muon_torch.Muon([{"params": [good]}], lr=0.1)


@pytest.mark.parametrize(
    "override",
    [{"beta": 2.0}, {"lr": 0.0}, {"weight_decay": -1.0}, {"clip_grad_norm": -1.0},
     {"matrix_axes": MatrixAxes(rows=0, cols=0)}],
)
def test_bad_add_param_group_changes_nothing(override: dict) -> None:
    first, second = _param(), _param()
    opt = muon_torch.Muon([first], lr=0.1)
    before = [dict(g) for g in opt.param_groups]

    with pytest.raises(ValueError):
        opt.add_param_group({"params": [second], **override})

    assert len(opt.param_groups) == 1
    assert [dict(g) for g in opt.param_groups] == before
    assert opt.param_groups[0]["params"][0] is first
    assert len(opt.state) == 0
    # ``second`` was not half-registered: adding it properly now succeeds.
    opt.add_param_group({"params": [second]})
    assert opt.param_groups[1]["params"] == [second]


def test_group_from_generator_keeps_its_params() -> None:
    """``{"params": model.parameters()}`` must not be emptied by validation (regression)."""
    model = torch.nn.Linear(4, 3)
    opt = muon_torch.Muon([{"params": model.parameters()}], lr=0.1)
    assert opt.param_groups[0]["params"] == list(model.parameters())
    extra = torch.nn.Linear(4, 2)
    opt.add_param_group({"params": extra.parameters(), "lr": 0.2})
    assert opt.param_groups[1]["params"] == list(extra.parameters())


def test_named_parameters_accepted() -> None:
    """torch >= 2.6 accepts ``named_parameters()``; the axes check must see the tensors."""
    model = torch.nn.Linear(4, 3)
    opt = muon_torch.Muon(model.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    assert opt.param_groups[0]["params"] == [model.weight, model.bias]


# --- Parameters and states the optimizer cannot take: one table, both twins ----------------
#
# Each case builds the situation in both twins with a parameter called "w", expects the
# same ValueError message (from muon_common.Messages) and checks nothing changed.


def _torch_named(t: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    return [("w", torch.nn.Parameter(t) if t.is_floating_point() or t.is_complex() else t)]


def _torch_complex() -> None:
    muon_torch.Muon(_torch_named(torch.ones(3, 4, dtype=torch.complex64)), lr=0.1)


def _jax_complex() -> None:
    muon_jax.muon(0.1).init({"w": jnp.ones((3, 4), jnp.complex64)})


def _torch_integer() -> None:
    muon_torch.Muon(_torch_named(torch.ones(3, 4, dtype=torch.int32)), lr=0.1)


def _jax_integer() -> None:
    muon_jax.muon(0.1).init({"w": jnp.ones((3, 4), jnp.int32)})


def _torch_axes() -> None:
    muon_torch.Muon(_torch_named(torch.ones(3, 4)), lr=0.1, matrix_axes=MatrixAxes(rows=0, cols=0))


def _jax_axes() -> None:
    muon_jax.muon(0.1, matrix_axes={"w": MatrixAxes(rows=0, cols=0)}).init({"w": jnp.ones((3, 4))})


def _torch_state_shape() -> None:
    source = muon_torch.Muon(_torch_named(torch.ones(4, 3)), lr=0.1)
    source.param_groups[0]["params"][0].grad = torch.ones(4, 3)
    source.step()
    target = muon_torch.Muon(_torch_named(torch.ones(3, 4)), lr=0.1)
    before = copy.deepcopy(target.state_dict())
    try:
        target.load_state_dict(source.state_dict())
    finally:
        assert str(target.state_dict()) == str(before)


def _jax_state_shape() -> None:
    tx = muon_jax.muon(0.1)
    state = tx.init({"w": jnp.ones((4, 3))})
    tx.update({"w": jnp.ones((3, 4))}, state, {"w": jnp.ones((3, 4))})


def _torch_sparse() -> None:
    (name, p), = _torch_named(torch.ones(3, 4))
    opt = muon_torch.Muon([(name, p)], lr=0.1)
    p.grad = torch.ones(3, 4).to_sparse()
    try:
        opt.step()
    finally:
        assert len(opt.state) == 0 and torch.equal(p.detach(), torch.ones(3, 4))


ERROR_TABLE = [
    # (case, torch trigger, jax trigger or None, expected message)
    ("complex", _torch_complex, _jax_complex, Messages.COMPLEX_PARAM.format(param="parameter 'w'", dtype="complex64")),
    ("integer", _torch_integer, _jax_integer, Messages.NOT_FLOAT_PARAM.format(param="parameter 'w'", dtype="int32")),
    ("matrix_axes", _torch_axes, _jax_axes, Messages.MATRIX_AXES.format(
        axes=MatrixAxes(rows=0, cols=0), param="parameter 'w'", shape=(3, 4), why="rows and cols overlap")),
    ("state_shape", _torch_state_shape, _jax_state_shape, Messages.STATE_MISMATCH.format(
        param="parameter 'w'", what="momentum", state_shape=(4, 3), shape=(3, 4))),
    # JAX has no sparse gradients: jax.grad always returns dense arrays.
    ("sparse", _torch_sparse, None, Messages.SPARSE_GRAD.format(param="parameter 'w'")),
]


@pytest.mark.parametrize(("case", "torch_fn", "jax_fn", "expected"), ERROR_TABLE, ids=[c[0] for c in ERROR_TABLE])
def test_error_table(case: str, torch_fn, jax_fn, expected: str) -> None:
    assert _message(torch_fn) == expected
    if jax_fn is not None:
        assert _message(jax_fn) == expected


def test_state_with_other_parameters_rejected() -> None:
    """A state saved for another parameter list (count or tree structure) is refused by both twins."""
    source = muon_torch.Muon([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    target = muon_torch.Muon([torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))], lr=0.1)
    msg = _message(target.load_state_dict, source.state_dict())
    assert msg.startswith("The optimizer state does not match the parameters: ")
    assert msg.endswith("Load a state saved for these parameters.")
    tx = muon_jax.muon(0.1)
    state = tx.init({"w": jnp.ones(2)})
    jmsg = _message(tx.update, {"v": jnp.ones(2)}, state, {"v": jnp.ones(2)})
    assert jmsg.startswith("The optimizer state does not match the parameters: ")
    assert jmsg.endswith("Load a state saved for these parameters.")


# --- JAX: weight decay needs params ------------------------------------------------------


def _jax_problem():
    params = {"w": jnp.arange(12.0).reshape(3, 4) / 10 + jnp.eye(3, 4), "b": jnp.ones((4,))}
    grads = jax.tree.map(lambda p: jnp.sin(p), params)
    return params, grads


@pytest.mark.parametrize("jit", [False, True])
def test_update_without_params_needs_zero_weight_decay(jit: bool) -> None:
    params, grads = _jax_problem()
    opt = muon_jax.muon(0.1, weight_decay=0.01)
    update = jax.jit(opt.update) if jit else opt.update
    with pytest.raises(ValueError) as info:
        update(grads, opt.init(params))
    assert str(info.value) == Messages.NEEDS_PARAMS.format(value=0.01)


def test_update_without_params_works_without_weight_decay() -> None:
    params, grads = _jax_problem()
    opt = muon_jax.muon(0.1, weight_decay=0.0)
    state = opt.init(params)
    without, state_without = opt.update(grads, state)
    with_params, state_with = opt.update(grads, state, params)
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(without))
    assert all(bool(jnp.any(u != 0)) for u in jax.tree.leaves(without))
    chex.assert_trees_all_equal(without, with_params)
    chex.assert_trees_all_equal(state_without, state_with)


# --- orthogonalize -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5,), ()])
def test_orthogonalize_needs_a_matrix(shape: tuple[int, ...]) -> None:
    torch_msg = _message(muon_torch.orthogonalize, torch.ones(shape))
    jax_msg = _message(muon_jax.orthogonalize, jnp.ones(shape))
    assert torch_msg == jax_msg == Messages.ORTHOGONALIZE_NDIM.format(shape=shape)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"method": "qr"}, Messages.METHOD.format(value="qr", choices=", ".join(map(repr, METHODS)))),
        ({"ns_iters": 0}, Messages.NS_ITERS.format(value=0)),
        ({"eps": -1.0}, Messages.EPS.format(value=-1.0)),
        ({"eps": math.nan}, Messages.EPS.format(value=math.nan)),
    ],
)
def test_orthogonalize_bad_arguments(kwargs: dict, expected: str) -> None:
    assert _message(muon_torch.orthogonalize, torch.ones(3, 4), **kwargs) == expected
    assert _message(muon_jax.orthogonalize, jnp.ones((3, 4)), **kwargs) == expected
