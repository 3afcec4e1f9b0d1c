"""Worker processes for the commands that run several jobs at once (benchmark cells, seeds).

Processes are started with ``spawn``: JAX (SMAX) and torch do not survive ``fork`` with their
threads running. A pool stopped by an error or an interrupt starts nothing new and ends the jobs
in flight; what they checkpointed stays, so a rerun resumes.
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor


def spawn_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the processes running jobs now."""
    pool.shutdown(wait=False, cancel_futures=True)
    for p in list((getattr(pool, "_processes", None) or {}).values()):
        p.terminate()
