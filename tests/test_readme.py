"""The README's commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command() -> None:
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    install, test = blocks[0], blocks[1]
    assert "pip install" in install and "examples/" in install
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert ci_lines[-1] == test, "the last line of .ci/run must be the README's test command"


def test_ci_pins_torch_through_the_constraints_file() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "-c constraints-dev.txt" in ci
    assert "torch==2.13.0" in (ROOT / "constraints-dev.txt").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "torch==" not in pyproject, "the library itself must not hard-pin torch"
