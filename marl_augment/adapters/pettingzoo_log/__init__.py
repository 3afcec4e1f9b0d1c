"""Logs of any PettingZoo ``ParallelEnv``: a recorder, the on-disk format, and the adapter.

The log format (``marl-augment/pettingzoo-log`` v1, documented in ``docs/formats.md``) is JSON
Lines, optionally gzip-compressed (``.jsonl.gz``): one header line, then one line per ``reset``
and per ``step`` in the order they happened. It is plain JSON so that anyone can write it without
our recorder, and loading it never executes code (no pickle).

:class:`Recorder` wraps an env and writes that log while the user's own loop runs;
:class:`PettingZooLogAdapter` converts logs to an episode store, streaming.
"""

from .adapter import PettingZooLogAdapter, PettingZooLogConfig
from .format import LOG_FORMAT, LOG_VERSION, LogWriter, interrupted, read_log, temp_log_path
from .recorder import Recorder

__all__ = [
    "LOG_FORMAT",
    "LOG_VERSION",
    "LogWriter",
    "PettingZooLogAdapter",
    "PettingZooLogConfig",
    "Recorder",
    "interrupted",
    "read_log",
    "temp_log_path",
]
