"""The docs' examples run: python blocks in sequence per page, bash blocks of cli.md too."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```(python|bash)\n(.*?)```", re.S)


def blocks(page: str, lang: str) -> list[str]:
    return [code for kind, code in BLOCK.findall((DOCS / page).read_text()) if kind == lang]


PY_PAGES = sorted(p.name for p in DOCS.glob("*.md") if blocks(p.name, "python"))


@pytest.mark.parametrize("page", PY_PAGES)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    if page == "formats.md":
        pytest.importorskip("mpe2")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page}"}
    for i, code in enumerate(blocks(page, "python")):
        try:
            exec(compile(code, f"{page}[block {i}]", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the failure being tested for
            raise AssertionError(f"{page} python block {i} failed: {exc!r}\n{code}") from exc


def test_cli_page_commands_run(tmp_path):
    pytest.importorskip("mpe2")
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    for i, code in enumerate(blocks("cli.md", "bash")):
        p = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert p.returncode == 0, f"cli.md bash block {i} failed:\n{code}\n{p.stderr}"
    assert (tmp_path / "spread-info.json").read_text().strip().startswith("{")


def test_every_command_is_documented():
    from typer.testing import CliRunner

    from marl_augment.cli import app

    text = (DOCS / "cli.md").read_text()
    out = CliRunner().invoke(app, ["--help"]).output
    commands = re.findall(r"│ (\w[\w-]*)\s{2,}", out)
    assert commands, out
    for c in commands:
        assert f"## `{c}`" in text, f"command {c!r} is not documented in docs/cli.md"
