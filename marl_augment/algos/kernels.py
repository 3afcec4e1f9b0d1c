"""C++ kernels for the CPU (``_kernels.cpp``): the GRU recurrence of the stacked agent networks
(:mod:`marl_augment.algos.agent_stack`), one pass over the gates per step where ATen would run a
dozen small operators. Where they are not available (other devices and dtypes, no compiler) the
callers run PyTorch's own modules instead. (A fused QMIX mixing kernel was tried too and
dropped: 1–3% of an update.)

The C++ code is compiled on first use (with the machine's C++ compiler and ninja) and cached
by PyTorch under ``~/.cache/torch_extensions`` (``TORCH_EXTENSIONS_DIR``). ``-march=native``: a
cache shared between machines of different CPU generations needs one ``TORCH_EXTENSIONS_DIR`` each.
``MARL_AUGMENT_NO_CPP=1`` turns the kernels off.
"""

from __future__ import annotations

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
        if not _built():
            print(
                "marl-augment: compiling the CPU kernels (once per machine, ~30 s)",
                file=sys.stderr,
                flush=True,
            )
        try:
            return cpp_extension.load(
                _NAME, [str(Path(__file__).with_name("_kernels.cpp"))], extra_cflags=_CFLAGS
            )
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


def _built() -> bool:
    """Whether PyTorch's extension cache already holds a build (only for a message)."""
    try:
        from torch.utils.cpp_extension import _get_build_directory

        return any(Path(_get_build_directory(_NAME, verbose=False)).glob("*.so"))
    except Exception:  # noqa: BLE001 - a private helper: if it moves, only the message goes
        return True
