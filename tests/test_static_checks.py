"""The type checker and the linter are part of the suite: a change that breaks either fails the
tests, not only a review. Both read their settings from pyproject.toml (mypy's ``files``, ruff's
rules), so what is checked is configured in one place."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def _run_tool(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} is not installed: run `pip install -e '.[dev]'` (./dev setup does)")
    # mypy keeps its incremental cache in the checkout (.mypy_cache, ignored by git): reruns are fast.
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def test_mypy_finds_no_errors():
    done = _run_tool("mypy")
    assert done.returncode == 0, f"mypy found errors:\n{done.stdout[-6000:]}{done.stderr[-2000:]}"


def test_ruff_finds_no_errors():
    done = _run_tool("ruff", "check", "agent", "experiments", "sandbox", "tests", "benchmarks")
    assert done.returncode == 0, f"ruff found errors:\n{done.stdout[-6000:]}{done.stderr[-2000:]}"


def test_mypy_reports_a_type_error(tmp_path):
    """The check can fail: the same configuration rejects a file with a type error."""
    bad = tmp_path / "bad.py"
    bad.write_text("def half(x: int) -> int:\n    return x / 2\n")
    done = _run_tool("mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir",
                     str(tmp_path / "cache"), str(bad))
    assert done.returncode == 1 and "Incompatible return value type" in done.stdout
