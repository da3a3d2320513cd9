"""Smoke test of the four training examples: each runs a few steps of Muon and AdamW and saves its plot.

Each example's ``main`` trains with ``muon_*.recommended`` (and its schedule) and with AdamW
(with the same schedule shape) and returns the training and held-out loss curves; here a
short run must give finite curves of the right length, write the PNG, and the Muon run must
lower its held-out loss. The Flax examples train in float32, JAX's default (``conftest.py``
turns float64 on only for a test that asks for it).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from parity_tests.harness import load_example

STEPS = 12


@pytest.mark.parametrize(("name", "extra", "n_points"), [
    ("digits_torch", [], STEPS + 1),  # measured before training and after every step
    ("digits_flax", [], STEPS + 1),
    ("charlm_torch", ["--sample-chars", "4"], 3),  # before training, at step 10 and at the end
    ("charlm_flax", ["--sample-chars", "4"], 3),
])
def test_example_trains_and_plots(name: str, extra: list[str], n_points: int, tmp_path: Path) -> None:
    if name.endswith("_torch"):
        import torch

        threads = torch.get_num_threads()
    curves = load_example(name).main(["--steps", str(STEPS), "--out", str(tmp_path), *extra])
    if name.endswith("_torch"):
        torch.set_num_threads(threads)  # main sets one thread

    assert (tmp_path / f"{name}.png").stat().st_size > 0
    assert len(curves.steps) == n_points and curves.steps[0] == 0 and curves.steps[-1] == STEPS
    assert set(curves.train) == set(curves.held_out) and len(curves.train) == 2
    for losses in (*curves.train.values(), *curves.held_out.values()):
        assert len(losses) == n_points
        assert all(math.isfinite(v) for v in losses)
    (muon,) = (key for key in curves.held_out if key.startswith("Muon"))
    assert curves.held_out[muon][-1] < curves.held_out[muon][0]
    assert curves.train[muon][-1] < curves.train[muon][0]
