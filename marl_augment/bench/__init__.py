"""The benchmark: datasets × augmenters × offline algorithms × seeds, cached cell by cell.

    cfg = marl_augment.bench.load_config("paper-smax.toml", seeds=[0, 1, 2])
    rows = marl_augment.bench.run_benchmark(cfg, "bench/", workers=2)

See :mod:`marl_augment.bench.grid` (cells, executors) and :mod:`marl_augment.bench.report`.
"""

from __future__ import annotations

from .config import BenchConfig, load_config
from .grid import plan, read_results, run_benchmark

__all__ = ["BenchConfig", "load_config", "plan", "read_results", "run_benchmark"]
