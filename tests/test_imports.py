"""Each twin imports and runs without the other framework installed.

Every check runs in a fresh interpreter whose ``sys.meta_path`` starts with a
finder that raises ``ImportError`` for the blocked top-level packages (as if they
were not installed) and records every attempt, so that even an import that the
library swallows with ``try/except ImportError`` is caught.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

JAX_STACK = ("jax", "jaxlib", "optax", "flax", "chex")
TORCH_STACK = ("torch",)

_BLOCKER = """
import importlib.abc
import sys

BLOCKED = {blocked!r}
ATTEMPTS = []


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            ATTEMPTS.append(name)
            raise ImportError(f"{{name}} is blocked for this test", name=name)
        return None


assert not BLOCKED & set(sys.modules), sorted(BLOCKED & set(sys.modules))
sys.meta_path.insert(0, _Blocker())
"""

_NOT_IMPORTED = """
assert not ATTEMPTS, f"tried to import blocked packages: {ATTEMPTS}"
assert not BLOCKED & {m.partition(".")[0] for m in sys.modules}, sorted(sys.modules)
print("OK")
"""

_TORCH_STEP = """
import torch
import muon_torch

torch.manual_seed(0)
model = torch.nn.Linear(4, 3)
before = model.weight.detach().clone()
opt = muon_torch.Muon(model.parameters(), lr=0.1)
model(torch.randn(5, 4)).square().sum().backward()
opt.step()
assert not torch.equal(before, model.weight), "the step did not move the weight"
assert muon_torch.orthogonalize(torch.randn(3, 4)).shape == (3, 4)
"""

_JAX_STEP = """
import jax
import jax.numpy as jnp
import optax
import muon_jax

params = {"w": jnp.ones((3, 4)) + jnp.eye(3, 4), "b": jnp.ones((4,))}
opt = muon_jax.muon(0.1)
state = opt.init(params)
grads = jax.tree.map(lambda p: 0.5 * p, params)
updates, state = opt.update(grads, state, params)
new = optax.apply_updates(params, updates)
assert not bool(jnp.array_equal(new["w"], params["w"])), "the step did not move the weight"
assert muon_jax.orthogonalize(jnp.ones((2, 3, 4))).shape == (2, 3, 4)
"""

_COMMON = """
import muon_common
from muon_common import DEFAULTS, Hyperparameters, MatrixAxes, resolve_matrix_axes, validate_lr

assert Hyperparameters(**DEFAULTS) == Hyperparameters()
validate_lr(0.1)
for check in (lambda: validate_lr(-1.0), lambda: Hyperparameters(beta=1.0)):
    try:
        check()
    except ValueError:
        pass
    else:
        raise AssertionError("an invalid value was accepted")
assert resolve_matrix_axes((2, 3, 4), MatrixAxes(rows=1, cols=2)).batch == (0,)
assert muon_common.ns_schedule("ns", 3) == ([muon_common.NS_METHODS["ns"].coefficients[0]] * 3, 1.0)
"""


def _start(code: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def _blocked_script(blocked: tuple[str, ...], body: str) -> str:
    return textwrap.dedent(_BLOCKER.format(blocked=set(blocked))) + body + _NOT_IMPORTED


def _unblocked_script(package: str, other: tuple[str, ...]) -> str:
    return f"""
import sys
import {package}
loaded = sorted({set(other)!r} & set(sys.modules))
assert not loaded, f"importing {package} loaded {{loaded}}"
print("OK")
"""


SCRIPTS = {
    "torch_without_jax": _blocked_script(JAX_STACK, _TORCH_STEP),
    "jax_without_torch": _blocked_script(TORCH_STACK, _JAX_STEP),
    "common_without_frameworks": _blocked_script(JAX_STACK + TORCH_STACK + ("numpy",), _COMMON),
    "muon_torch_alone": _unblocked_script("muon_torch", JAX_STACK),
    "muon_jax_alone": _unblocked_script("muon_jax", TORCH_STACK),
    # The harness can fail: with jax blocked, ``import muon_jax`` must raise.
    "blocker_sanity": _blocked_script(JAX_STACK, "import muon_jax\n"),
}


@pytest.fixture(scope="module")
def results() -> dict[str, tuple[int, str, str]]:
    """Run every script at once (they are independent) and collect (rc, stdout, stderr)."""
    procs = {name: _start(code) for name, code in SCRIPTS.items()}
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        out[name] = (proc.returncode, stdout, stderr)
    return out


def _assert_ok(result: tuple[int, str, str]) -> None:
    rc, stdout, stderr = result
    assert rc == 0, f"stdout:\n{stdout}\nstderr:\n{stderr}"
    assert stdout.strip().endswith("OK"), stdout


def test_muon_torch_without_jax_stack(results: dict[str, tuple[int, str, str]]) -> None:
    _assert_ok(results["torch_without_jax"])


def test_muon_jax_without_torch(results: dict[str, tuple[int, str, str]]) -> None:
    _assert_ok(results["jax_without_torch"])


def test_muon_common_without_any_framework(results: dict[str, tuple[int, str, str]]) -> None:
    _assert_ok(results["common_without_frameworks"])


@pytest.mark.parametrize("name", ["muon_torch_alone", "muon_jax_alone"])
def test_twin_does_not_load_the_other_framework(results: dict[str, tuple[int, str, str]], name: str) -> None:
    """Nothing blocked: importing one twin leaves the other framework out of sys.modules."""
    _assert_ok(results[name])


def test_blocker_is_effective(results: dict[str, tuple[int, str, str]]) -> None:
    rc, _, stderr = results["blocker_sanity"]
    assert rc != 0
    assert "ImportError" in stderr or "ModuleNotFoundError" in stderr, stderr
    assert "jax is blocked for this test" in stderr, stderr


def test_modules_are_named_after_what_they_hold() -> None:
    """``muon_torch.muon`` is the functional step and ``muon_torch.optimizer`` the module of the
    optimizer: no module hides behind a function of the same name."""
    import importlib
    import pickle
    import types

    import muon_torch

    assert isinstance(importlib.import_module("muon_torch.optimizer"), types.ModuleType)
    assert callable(muon_torch.muon) and not isinstance(muon_torch.muon, types.ModuleType)
    # What 0.1 pickled (``torch.save(optimizer)``) names the class by its old module path.
    old = pickle.dumps(muon_torch.Muon, protocol=0).replace(b"muon_torch.optimizer", b"muon_torch.muon")
    assert b"muon_torch.muon\n" in old
    assert pickle.loads(old) is muon_torch.Muon
