"""The code style is checked, not hoped for: ruff's lint rules and its formatter (lines <= 100)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["marl_augment", "tests", "benchmarks"]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if exe is None:
        pytest.fail("ruff is not installed; install the dev extra: pip install -e '.[dev]'")
    return subprocess.run([exe, *args, *SOURCES], cwd=ROOT, capture_output=True, text=True)


def test_lint_rules_hold():
    r = _ruff("check", "--output-format", "concise")
    assert r.returncode == 0, r.stdout + r.stderr


def test_code_is_formatted():
    r = _ruff("format", "--check")
    assert r.returncode == 0, "run 'ruff format " + " ".join(SOURCES) + "':\n" + r.stdout
