"""``torch.compile(opt.step, fullgraph=True)``: no graph break, and the eager result.

Traced by TorchDynamo with the ``"eager"`` backend, which runs the captured graph as is: that is
what ``fullgraph=True`` checks (one graph, or an error naming the break), without the minutes
of C++ code generation of the default backend on a CPU. ``benchmarks/bench.py`` times the
default (inductor) backend against eager.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import muon_torch
from muon_common import RECIPE


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Embedding(10, 8), torch.nn.Linear(8, 16), torch.nn.ReLU(),
                               torch.nn.Linear(16, 4))


def _defaults(model: torch.nn.Module) -> muon_torch.Muon:
    return muon_torch.Muon(model.parameters(), lr=0.02)


def _recommended_hybrid(model: torch.nn.Module) -> muon_torch.Muon:
    # The optimizer recommended() builds (its scheduler wraps opt.step in lr_scheduler code that
    # Dynamo does not trace; a Tensor lr lets a scheduler change it without a recompile).
    groups = muon_torch.param_groups(model, adamw=("0.",), adamw_betas=RECIPE.adamw_betas)
    return muon_torch.Muon(groups, lr=torch.tensor(RECIPE.lr), **RECIPE.muon_options())


@pytest.mark.parametrize("make", [_defaults, _recommended_hybrid], ids=["defaults", "recommended_hybrid"])
def test_step_compiles_as_one_graph_with_the_eager_result(make: Callable[[torch.nn.Module], muon_torch.Muon]) -> None:
    torch._dynamo.reset()
    models = [_model(), _model()]
    opts = [make(m) for m in models]
    steps = [opts[0].step, torch.compile(opts[1].step, fullgraph=True, backend="eager")]
    for k in range(3):
        for m in models:
            for i, p in enumerate(m.parameters()):
                p.grad = torch.sin(torch.arange(p.numel(), dtype=p.dtype) * (k + 1) + i).reshape(p.shape)
                if k == 1 and i == 0:
                    p.grad[0, 0] = float("nan")  # the AdamW embedding skips a step, compiled too
        for step in steps:
            step()
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        # Measured 3.0e-8 at most (a float32 ulp or two at these magnitudes): under Dynamo, AdamW's
        # Python-float bias corrections of the tensor step count become float32 tensor ops.
        # 1e-6 is 30x that, and 300x below a step (lr 0.01 times an O(1) update).
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)
    counts = [[int(o.state[p]["nonfinite_steps"]) for p in m.parameters()] for o, m in zip(opts, models, strict=True)]
    assert counts[0] == counts[1] and counts[0][0] == 1
