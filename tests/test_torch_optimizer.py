"""``muon_torch.Muon`` behaves as a ``torch.optim.Optimizer`` should."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

import muon_torch
from muon_common import DEFAULTS, Hyperparameters, MatrixAxes

HYPERPARAMETERS = ("lr", "beta", "weight_decay", "eps", "ns_iters", "method", "rms_scale", "clip_grad_norm",
                   "nesterov", "adjust_lr", "momentum_dtype", "orthogonalize_dtype", "neuron_norm", "neuron_beta2",
                   "normalization")


def _params(*shapes: tuple[int, ...], seed: int = 0) -> list[nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(s, generator=g)) for s in shapes]


def _clone(params: list[nn.Parameter]) -> list[nn.Parameter]:
    return [nn.Parameter(p.detach().clone()) for p in params]


def _set_grads(params: list[torch.Tensor], step: int) -> None:
    """A deterministic gradient that depends on the current value and on the step."""
    for i, p in enumerate(params):
        p.grad = torch.sin(3.0 * p.detach() + 0.7 * step + i) + 0.1


def _assert_all_equal(xs: list[torch.Tensor], ys: list[torch.Tensor]) -> None:
    assert len(xs) == len(ys)
    for x, y in zip(xs, ys, strict=True):
        assert torch.equal(x, y), (x - y).abs().max()


def test_group_overrides_take_effect() -> None:
    """Two groups with different settings == two optimizers, one per group."""
    a, b, c = _params((6, 4), (6, 4), (4,))
    a2, b2, c2 = _clone([a, b, c])
    override = {"lr": 0.03, "method": "svd", "beta": 0.5, "weight_decay": 0.2, "clip_grad_norm": 0.5}
    opt = muon_torch.Muon([{"params": [a, c]}, {"params": [b], **override}], lr=0.1)
    opt_a = muon_torch.Muon([a2, c2], lr=0.1)
    opt_b = muon_torch.Muon([b2], **override)
    start_b = b.detach().clone()

    for step in range(3):
        _set_grads([a, b, c], step)
        _set_grads([a2, b2, c2], step)
        opt.step()
        opt_a.step()
        opt_b.step()

    _assert_all_equal([a, b, c], [a2, b2, c2])
    assert opt.param_groups[1]["method"] == "svd" and opt.param_groups[0]["method"] == DEFAULTS["method"]
    # Not vacuous: b under the first group's settings ends elsewhere.
    b3 = nn.Parameter(start_b)
    opt_default = muon_torch.Muon([b3], lr=0.1)
    for step in range(3):
        b3.grad = torch.sin(3.0 * b3.detach() + 0.7 * step + 1) + 0.1  # b was index 1 above
        opt_default.step()
    assert not torch.allclose(b, b3, atol=1e-3)


def test_step_with_closure() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2))
    reference = copy.deepcopy(model)
    x = torch.randn(8, 5)
    opt = muon_torch.Muon(model.parameters(), lr=0.05)
    ref_opt = muon_torch.Muon(reference.parameters(), lr=0.05)
    grad_enabled: list[bool] = []
    losses: list[torch.Tensor] = []

    def closure() -> torch.Tensor:
        grad_enabled.append(torch.is_grad_enabled())
        opt.zero_grad()
        loss = model(x).square().mean()
        loss.backward()
        losses.append(loss)
        return loss

    with torch.no_grad():  # the optimizer must turn grad back on for the closure
        returned = opt.step(closure)

    assert grad_enabled == [True]
    assert returned is losses[0]
    # The step used the gradient the closure computed.
    reference(x).square().mean().backward()
    ref_opt.step()
    _assert_all_equal(list(model.parameters()), list(reference.parameters()))
    assert opt.step() is None


def test_params_without_grad_are_skipped() -> None:
    p, q, r = _params((5, 3), (5, 3), (3,))
    before_p, before_q, before_r = (t.detach().clone() for t in (p, q, r))
    (p_alone,) = _clone([p])
    opt = muon_torch.Muon([p, q, r], lr=0.1, weight_decay=0.5)
    opt_alone = muon_torch.Muon([p_alone], lr=0.1, weight_decay=0.5)

    _set_grads([p], 0)
    _set_grads([p_alone], 0)
    opt.step()
    opt_alone.step()

    assert torch.equal(q, before_q) and torch.equal(r, before_r)
    assert q not in opt.state and r not in opt.state
    assert set(opt.state_dict()["state"]) == {0}
    assert not torch.equal(p, before_p)
    assert torch.equal(p, p_alone)  # q and r did not perturb p (e.g. by batching a zero matrix)

    # A param whose grad goes back to None keeps its value and its momentum.
    momentum = opt.state[p]["momentum_buffer"].clone()
    value = p.detach().clone()
    p.grad = None
    _set_grads([q], 1)
    opt.step()
    assert torch.equal(p, value)
    assert torch.equal(opt.state[p]["momentum_buffer"], momentum)
    assert not torch.equal(q, before_q)


class _Net(nn.Module):
    """Matrices, a vector and a stacked (layers, in, out) weight."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(8, 3)
        self.stack = nn.Parameter(torch.randn(2, 3, 3) / 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc1(x))
        y = self.fc2(h)
        for w in self.stack:
            y = torch.tanh(y @ w)
        return y


def _optimizer(net: _Net) -> muon_torch.Muon:
    return muon_torch.Muon(
        [
            {"params": [net.fc1.weight, net.fc2.weight, net.fc1.bias, net.fc2.bias]},
            {"params": [net.stack], "lr": 0.02, "matrix_axes": MatrixAxes(rows=1, cols=2)},
        ],
        lr=0.05,
        clip_grad_norm=1.0,
    )


def _train(net: _Net, opt: muon_torch.Muon, xs: list[torch.Tensor]) -> None:
    for x in xs:
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()


def test_state_dict_round_trip() -> None:
    torch.manual_seed(0)
    net = _Net()
    opt = _optimizer(net)
    xs = [torch.randn(4, 6) for _ in range(6)]
    _train(net, opt, xs[:3])

    # Through bytes, as a checkpoint would (torch.load is weights_only by default).
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    assert saved["param_groups"][1]["matrix_axes"] == MatrixAxes(rows=1, cols=2)

    clone = copy.deepcopy(net)
    fresh = _optimizer(clone)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[1]["lr"] == 0.02
    for p, q in zip(net.parameters(), clone.parameters(), strict=True):
        assert torch.equal(opt.state[p]["momentum_buffer"], fresh.state[q]["momentum_buffer"])

    _train(net, opt, xs[3:])
    _train(clone, fresh, xs[3:])
    _assert_all_equal(list(net.parameters()), list(clone.parameters()))

    # Not vacuous: without the momentum, the same 3 steps end elsewhere.
    restart = copy.deepcopy(clone)
    _train(restart, _optimizer(restart), xs[3:])
    assert not torch.equal(restart.fc1.weight, clone.fc1.weight)


@pytest.mark.parametrize(
    ("make_scheduler", "lr_at"),
    [
        (lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5), lambda i: 0.1 * 0.5 ** (i // 2)),
        (lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1 / (1 + e)), lambda i: 0.1 * (1 / (1 + i))),
    ],
    ids=["StepLR", "LambdaLR"],
)
def test_lr_scheduler(make_scheduler, lr_at) -> None:
    steps = 5
    params = _params((6, 4), (4,), (4, 6))
    manual = _clone(params)
    buffers = [torch.zeros_like(p) for p in manual]
    opt = muon_torch.Muon(params, lr=0.1)
    scheduler = make_scheduler(opt)
    used = []

    for i in range(steps):
        used.append(opt.param_groups[0]["lr"])
        _set_grads(params, i)
        opt.step()
        scheduler.step()

        _set_grads(manual, i)
        with torch.no_grad():
            muon_torch.muon(manual, [p.grad for p in manual], buffers, lr=lr_at(i))

    expected = [lr_at(i) for i in range(steps)]
    assert used == pytest.approx(expected, rel=1e-15)
    assert len(set(expected)) > 1
    _assert_all_equal(params, manual)


def test_batched_matrices_match_one_at_a_time() -> None:
    """Same-shape matrices are orthogonalised in one batched call; results match.

    The batched path runs one ``bmm`` over a (3, m, n) stack where the single path
    runs it over (1, m, n); the CPU GEMM may block the batch differently, so the
    float32 results may differ by rounding (a few ulp per matmul, 10 matmuls a
    step, 3 steps). rtol=1e-6 is ~8 ulp of float32; atol=1e-6 covers entries near
    zero (updates are ~lr / sqrt(n) ~ 0.05). Measured: bit-identical here.
    """
    shapes = [(6, 4), (6, 4), (4, 6), (6, 4), (4,)]
    params = _params(*shapes)
    singles = _clone(params)
    opt = muon_torch.Muon(params, lr=0.1, weight_decay=0.1)
    opts = [muon_torch.Muon([p], lr=0.1, weight_decay=0.1) for p in singles]
    for step in range(3):
        _set_grads(params, step)
        _set_grads(singles, step)
        opt.step()
        for o in opts:
            o.step()
    for p, s in zip(params, singles, strict=True):
        torch.testing.assert_close(p, s, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["ns", "svd"])
def test_functional_equals_class(method: str) -> None:
    settings = {**DEFAULTS, "lr": 0.07, "beta": 0.8, "weight_decay": 0.3, "clip_grad_norm": 0.9, "method": method,
                "ns_iters": 4}
    params = _params((5, 3), (3, 5), (5, 3), (7,), (2, 2, 2))
    functional = _clone(params)
    buffers = [torch.zeros_like(p) for p in functional]
    opt = muon_torch.Muon(params, **settings)
    for step in range(4):
        _set_grads(params, step)
        _set_grads(functional, step)
        opt.step()
        with torch.no_grad():
            muon_torch.muon(functional, [p.grad for p in functional], buffers, lr=settings["lr"],
                            hyperparameters=Hyperparameters(**{k: settings[k] for k in DEFAULTS}))
    _assert_all_equal(params, functional)
    _assert_all_equal([opt.state[p]["momentum_buffer"] for p in params], buffers)
    assert set(settings) == set(HYPERPARAMETERS)


def test_lr_may_be_a_tensor_as_in_torch_optim() -> None:
    """``lr=torch.tensor(0.02)`` steps exactly like ``lr=0.02``, with a scheduler and the AdamW part."""

    def run(lr: float | torch.Tensor) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Linear(6, 3))
        opt = muon_torch.Muon(muon_torch.param_groups(model, adamw=("1.",)), lr=lr, nesterov=True,
                              adjust_lr="match_rms_adamw")
        scheduler = muon_torch.warmup_stable_decay(opt, 6)
        for step in range(6):
            for p in model.parameters():
                p.grad = torch.full_like(p, 0.1) * (step + 1) + p.detach()
            opt.step()
            scheduler.step()
        return [p.detach().clone() for p in model.parameters()]

    for a, b in zip(run(0.02), run(torch.tensor(0.02, dtype=torch.float64)), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # A float32 tensor holds 0.02 rounded to float32 (relative 1.5e-8): measured 1.1e-7 apart.
    for a, b in zip(run(0.02), run(torch.tensor(0.02)), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="Invalid lr"):
        muon_torch.Muon([torch.nn.Parameter(torch.ones(2, 2))], lr=torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="Invalid lr"):
        muon_torch.Muon([torch.nn.Parameter(torch.ones(2, 2))], lr=torch.tensor(-0.1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adamw_group_equals_torch_optim_adamw(dtype: torch.dtype) -> None:
    """The AdamW part is torch.optim.AdamW's step operation for operation (its single-tensor
    form), guard included: bit-equal params and moments for finite gradients."""
    torch.manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(5, 3, dtype=dtype)), torch.nn.Parameter(torch.randn(4, dtype=dtype))]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt = muon_torch.Muon([{"params": ours, "algorithm": "adamw", "lr": 0.01, "betas": (0.9, 0.95),
                            "weight_decay": 0.1}], lr=0.02)
    ref = torch.optim.AdamW(theirs, lr=0.01, betas=(0.9, 0.95), weight_decay=0.1, eps=1e-8, foreach=False)
    for _ in range(20):
        for p, q in zip(ours, theirs, strict=True):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        opt.step()
        ref.step()
    for p, q in zip(ours, theirs, strict=True):
        assert torch.equal(p, q)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt.state[p][key], ref.state[q][key]), key
        assert int(opt.state[p]["nonfinite_steps"]) == 0
