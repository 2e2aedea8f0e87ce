"""Style is checked, not remembered: ruff (pyproject's [tool.ruff]) passes over the whole repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ruff() -> list[str]:
    """`python -m ruff` from the test environment, else a ruff on PATH."""
    try:
        import ruff  # noqa: F401
        return [sys.executable, "-m", "ruff"]
    except ImportError:
        exe = shutil.which("ruff")
        if exe is None:
            pytest.fail("ruff is not installed; `pip install -e '.[test]'` brings it")
        return [exe]


def test_repository_passes_ruff():
    proc = subprocess.run([*_ruff(), "check", "--no-cache", "--output-format", "concise", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_reads_the_project_config(tmp_path):
    """A line over 120 characters fails under pyproject's settings (the config is really read)."""
    bad = tmp_path / "bad.py"
    bad.write_text("x = " + "1 + " * 40 + "1\n")
    proc = subprocess.run([*_ruff(), "check", "--no-cache", "--config", os.path.join(ROOT, "pyproject.toml"),
                           str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "E501" in proc.stdout, proc.stdout + proc.stderr
