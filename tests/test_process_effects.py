"""Importing marl-augment changes nothing process-wide; what training changes is switchable."""

from __future__ import annotations

import json
import subprocess
import sys

IMPORT_ALL = """
import json, os, sys, warnings
import torch
before = (dict(os.environ), torch.get_num_threads(), list(warnings.filters), sys.stdout, sys.stderr)
import marl_augment, marl_augment.algos, marl_augment.augment, marl_augment.bench, marl_augment.cli
import marl_augment.envs, marl_augment.adapters
after = (dict(os.environ), torch.get_num_threads(), list(warnings.filters), sys.stdout, sys.stderr)
from marl_augment import torch_state
print(json.dumps({"same": [a == b for a, b in zip(before, after)], "heap": torch_state._HEAP_KEPT}))
"""


def test_importing_the_package_changes_nothing_global():
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True, check=True
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res == {"same": [True] * 5, "heap": False}


def test_the_heap_setting_comes_with_a_cpu_learner_and_can_be_turned_off(monkeypatch):
    from marl_augment import torch_state

    monkeypatch.setattr(torch_state, "_HEAP_KEPT", False)
    monkeypatch.setenv(torch_state.KEEP_HEAP_ENV, "0")
    torch_state.keep_freed_heap()
    assert torch_state._HEAP_KEPT is False
    monkeypatch.setenv(torch_state.KEEP_HEAP_ENV, "1")
    torch_state.keep_freed_heap()
    assert torch_state._HEAP_KEPT is True


def test_a_benchmark_cell_in_the_callers_process_restores_its_torch_threads(tmp_path):
    import torch

    from marl_augment.bench.cells import run_cell

    before = torch.get_num_threads()
    torch.set_num_threads(2 if before != 2 else 1)
    want = torch.get_num_threads()
    try:
        bad = {
            "kind": "augment",
            "config": {
                "data": "data-missing",
                "method": "rad-s",
                "scale": 1.0,
                "seed": 0,
                "options": {},
            },
            "labels": {},
        }
        try:
            run_cell(bad, str(tmp_path))  # fails inside: no such data cell
        except Exception:  # noqa: BLE001
            pass
        assert torch.get_num_threads() == want
    finally:
        torch.set_num_threads(before)
