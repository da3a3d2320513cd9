"""The benchmarks' command lines: ``--device`` on the CPU, the device in the header, bad devices, gpu.sh.

The CUDA paths themselves need a GPU (``benchmarks/gpu.sh``); here they are reached only as far as
the check that refuses them on a machine without one.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

ROOT = Path(__file__).parents[1]
BENCHMARKS = ROOT / "benchmarks"


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python benchmarks/<script> <args>`` from the repository root, with the root as ``PYTHONPATH``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_bench_cpu_prints_device_and_precision() -> None:
    result = run_script("bench.py", "--quick", "--device", "cpu", "--sections", "1")
    assert result.returncode == 0, result.stderr
    header = result.stdout.split("## 1.")[0]
    assert "- device cpu: torch on cpu (" in header
    assert re.search(r"jax on \S+ \(cpu, ", header)
    assert "jax_default_matmul_precision = " in header
    assert "| jax.jit |" in result.stdout


def test_quality_cpu_prints_device(tmp_path: Path) -> None:
    out = tmp_path / "quality.md"
    result = run_script("quality.py", "--device", "cpu", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("- device cpu: orthogonalisation on cpu (")
    # The CPU report keeps the repository's format: no device line under the title.
    assert out.read_text().startswith("# Orthogonalisation quality (float32)\n\n- `gaussian`: (256, 512)")


def load_script(script: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``benchmarks/<script>`` imported in this process (faster than a subprocess for argument errors)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # bench.py sets it if unset
    name = f"benchmark_cli_{Path(script).stem}"
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", ["bench.py", "quality.py"])
def test_unknown_device_is_refused(script: str, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    main = load_script(script, monkeypatch).main
    with pytest.raises(SystemExit) as exit_info:
        main(["--device", "nonsense"])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert "argument --device: invalid choice: 'nonsense' (choose from" in err
    assert out == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
@pytest.mark.parametrize(("script", "device"), [("bench.py", "gpu"), ("quality.py", "cuda")])
def test_gpu_without_cuda_is_refused(script: str, device: str, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    main = load_script(script, monkeypatch).main
    with pytest.raises(SystemExit) as exit_info:
        main(["--device", device])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert f"--device {device}: torch" in err and "sees no CUDA device" in err
    assert out == ""


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_gpu_script_is_executable_bash() -> None:
    script = BENCHMARKS / "gpu.sh"
    assert os.access(script, os.X_OK)
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_compared_calls_are_timed_interleaved(monkeypatch: pytest.MonkeyPatch) -> None:
    """``measure_many``: one warm-up each, then rounds in which every call runs once, each round
    starting one call later; a call slower than ``slow_s`` is timed by its warm-up alone."""
    bench = load_script("bench.py", monkeypatch)
    order: list[str] = []
    now = [0.0]
    monkeypatch.setattr(bench.time, "perf_counter", lambda: now[0])

    def call(name: str, seconds: float) -> tuple[Any, None]:
        def run() -> None:
            order.append(name)
            now[0] += seconds

        return run, None

    cfg = bench.Config(repeats=3, budget_s=100.0, slow_s=5.0)
    timings = bench.measure_many([call("a", 1.0), call("b", 2.0), call("c", 3.0)], cfg)
    assert order == list("abc" "abc" "bca" "cab")
    assert [(t.seconds, t.n, t.warm_only) for t in timings] == [(1.0, 3, False), (2.0, 3, False), (3.0, 3, False)]
    # A warm-up over slow_s: that call's one sample, and the rounds go on without it.
    order.clear()
    timings = bench.measure_many([call("a", 1.0), call("b", 10.0), call("c", 3.0)], cfg)
    assert order == list("abc" "ac" "ca" "ac")
    assert [(t.seconds, t.n, t.warm_only) for t in timings] == [(1.0, 3, False), (10.0, 1, True), (3.0, 3, False)]


def test_torch_threads_are_set_and_checked(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    main = load_script("bench.py", monkeypatch).main
    with pytest.raises(SystemExit) as exit_info:
        main(["--torch-threads", "0"])
    assert exit_info.value.code == 2
    assert "--torch-threads must be at least 1, got 0" in capsys.readouterr().err
    threads = torch.get_num_threads()
    try:
        main(["--quick", "--sections", "1", "--torch-threads", "1"])
        assert "(1 threads)" in capsys.readouterr().out
    finally:
        torch.set_num_threads(threads)
