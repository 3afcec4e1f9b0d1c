"""C++ kernels for the CPU (``_kernels.cpp``): the GRU recurrence of the stacked agent networks
(:mod:`marl_augment.algos.agent_stack`), one pass over the gates per step where ATen would run a
dozen small operators. Where they are not available (other devices and dtypes, no compiler) the
callers run PyTorch's own modules instead. (A fused QMIX mixing kernel was tried too and
dropped: 1–3% of an update.)

The C++ code is compiled on first use (with the machine's C++ compiler and ninja) and cached
by PyTorch under ``~/.cache/torch_extensions`` (``TORCH_EXTENSIONS_DIR``). ``-march=native``: a
cache shared between machines of different CPU generations needs one ``TORCH_EXTENSIONS_DIR`` each.
``MARL_AUGMENT_NO_CPP=1`` turns the kernels off.

The build is named by a hash of the source and flags and compiled from a copy of the source in
its own folder, so that checkouts or installs of the same code share one build and never rebuild
it under each other. Builds are serialised by a lock on a file beside that folder; whoever holds
it removes a lock file PyTorch left there (a build that was killed leaves one, and PyTorch would
wait for it forever).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils import cpp_extension

#: set to 1 to run PyTorch's modules even where the C++ kernels build
NO_CPP_ENV = "MARL_AUGMENT_NO_CPP"
_NAME = "marl_augment_kernels"
_CFLAGS = ["-O3", "-march=native", "-mprefer-vector-width=512", "-ffast-math", "-fopenmp-simd"]
_MODULE: Any = None
_TRIED = False


def cpu_kernels(like: torch.Tensor) -> Any:
    """The compiled kernels when ``like`` is a float32 CPU tensor and they build, else None."""
    if not (like.device.type == "cpu" and like.dtype == torch.float32):
        return None
    global _MODULE, _TRIED
    if not _TRIED:
        _TRIED = True
        if os.environ.get(NO_CPP_ENV, "") in ("", "0"):
            _MODULE = _build()
    return _MODULE


def _build() -> Any:
    try:
        venv_bin = str(Path(sys.executable).parent)  # pip's ninja, when the venv is not activated
        path = os.environ.get("PATH")
        if shutil.which("ninja") is None and shutil.which("ninja", path=venv_bin):
            os.environ["PATH"] = venv_bin + os.pathsep + (path or "")
        try:
            return _load()
        finally:  # the process's PATH as it was
            if path is None:
                os.environ.pop("PATH", None)
            else:
                os.environ["PATH"] = path
    except Exception as e:  # noqa: BLE001 - no compiler, no ninja, ...: the same values, slower
        print(
            f"marl-augment: the CPU kernels did not build ({type(e).__name__}: {str(e)[:200]}); "
            f"training goes on with PyTorch's nn.GRU, slower",
            file=sys.stderr,
            flush=True,
        )
        return None


def build_name() -> str:
    """The extension's name: ``marl_augment_kernels_<hash of the source and flags>``."""
    source = Path(__file__).with_name("_kernels.cpp").read_bytes()
    digest = hashlib.sha256(source + " ".join(_CFLAGS).encode()).hexdigest()[:12]
    return f"{_NAME}_{digest}"


def build_folder(name: str) -> Path:
    """Where PyTorch builds and caches extension ``name``."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root:
        return Path(root) / name
    flavour = f"py{sys.version_info.major}{sys.version_info.minor}_cpu"
    return Path.home() / ".cache" / "torch_extensions" / flavour / name


def _load() -> Any:
    name = build_name()
    folder = build_folder(name)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".build-lock"), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # released when this process exits, however it exits
        try:
            # no other marl-augment process is building now: a lock PyTorch left is stale
            (folder / "lock").unlink(missing_ok=True)
            source = folder / "_kernels.cpp"
            text = Path(__file__).with_name("_kernels.cpp").read_bytes()
            if not source.is_file() or source.read_bytes() != text:
                source.write_bytes(text)
            if not any(folder.glob("*.so")):
                print(
                    "marl-augment: compiling the CPU kernels (once per machine, about half "
                    "a minute)",
                    file=sys.stderr,
                    flush=True,
                )
            return cpp_extension.load(
                name, [str(source)], extra_cflags=_CFLAGS, build_directory=str(folder)
            )
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
