"""torch helpers shared by everything that trains: device choice and resumable training state.

A training state is one safetensors file (weights of named modules and the tensors of named
optimisers) plus a JSON file (step, config, anything else JSON can hold). Both are written to a
temporary name and renamed into place, so a run killed while saving keeps its previous state.
No pickle anywhere.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import ConfigError, FormatError

STATE_TENSORS = "train.safetensors"
STATE_META = "train_state.json"


def resolve_device(name: str):
    """``auto`` (CUDA when torch sees one, else CPU), ``cpu``, ``cuda``, ``cuda:1``, ..."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:<index>") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} asked for, but torch sees no CUDA device; use --device cpu"
        )
    return dev


_HEAP_KEPT = False
#: set to 0 to leave glibc's heap thresholds alone (see keep_freed_heap)
KEEP_HEAP_ENV = "MARL_AUGMENT_KEEP_HEAP"


def keep_freed_heap() -> None:
    """Stop glibc from handing freed memory back to the kernel after every training update.

    PyTorch's CPU allocator has no cache: each update allocates and frees many 1–2 MB tensors.
    glibc's default thresholds give those pages back (trim, munmap) and fault them in again on
    the next update: page faults on every forward of the stacked agent networks, which then ran
    slower than unstacked ones (numbers in docs/performance.md, "Page faults"). Keeping up to
    256 MB of freed heap (and serving requests below 32 MB from it) removes them. Once per
    process, glibc only; elsewhere a no-op. Called when a learner is built for the CPU, never on
    import; ``MARL_AUGMENT_KEEP_HEAP=0`` turns it off.
    """
    global _HEAP_KEPT
    if _HEAP_KEPT or os.environ.get(KEEP_HEAP_ENV, "1") == "0":
        return
    _HEAP_KEPT = True

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 << 20)
        libc.mallopt(m_trim_threshold, 256 << 20)
    except (OSError, AttributeError):
        pass


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside the block and restored after it (when torch
    is already imported; a no-op otherwise). Acting one step at a time (evaluating, recording)
    gains nothing from several threads, and beside another busy process their spin-waits made
    recording with a trained policy several times slower (docs/performance.md)."""

    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def save_training_state(
    directory: str | Path,
    modules: Mapping[str, Any],
    optimizers: Mapping[str, Any],
    meta: Mapping[str, Any],
) -> None:
    """Write modules' weights, optimisers' tensors and ``meta`` (JSON) to ``directory``."""
    import torch
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        for k, v in module.state_dict().items():
            tensors[f"module.{name}.{k}"] = v.detach().cpu().contiguous()
    opt_meta: dict[str, Any] = {}
    for name, opt in optimizers.items():
        state = opt.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for pid, st in state["state"].items():
            for k, v in st.items():
                if isinstance(v, torch.Tensor):
                    tensors[f"opt.{name}.{pid}.{k}"] = v.detach().cpu().contiguous()
                else:
                    scalars.setdefault(str(pid), {})[k] = v
        opt_meta[name] = {"scalars": scalars, "param_groups": state["param_groups"]}
    tmp = d / (STATE_TENSORS + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(d / STATE_TENSORS)
    tmp_meta = d / (STATE_META + ".tmp")
    tmp_meta.write_text(json.dumps({**meta, "optimizers": opt_meta}))
    tmp_meta.replace(d / STATE_META)


def has_training_state(directory: str | Path) -> bool:
    d = Path(directory)
    return (d / STATE_META).is_file() and (d / STATE_TENSORS).is_file()


def load_training_state(
    directory: str | Path,
    modules: Mapping[str, Any],
    optimizers: Mapping[str, Any],
    device: Any = "cpu",
) -> dict[str, Any]:
    """Load :func:`save_training_state`'s files into ``modules``/``optimizers``; return meta."""
    from safetensors.torch import load_file

    d = Path(directory)
    try:
        meta = json.loads((d / STATE_META).read_text())
        tensors = load_file(str(d / STATE_TENSORS), device=str(device))
    except (OSError, ValueError) as e:
        raise FormatError(
            f"unreadable training state in {d} ({e}); delete it to start over"
        ) from None
    for name, module in modules.items():
        prefix = f"module.{name}."
        module.load_state_dict(
            {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        )
    for name, opt in optimizers.items():
        saved = meta["optimizers"][name]
        state: dict[int, dict[str, Any]] = {}
        for pid, scalars in saved["scalars"].items():
            state.setdefault(int(pid), {}).update(scalars)
        prefix = f"opt.{name}."
        for key, v in tensors.items():
            if key.startswith(prefix):
                pid, k = key[len(prefix) :].split(".", 1)
                state.setdefault(int(pid), {})[k] = v
        opt.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    meta.pop("optimizers", None)
    return meta


def clear_training_state(directory: str | Path) -> None:
    d = Path(directory)
    for name in (STATE_META, STATE_TENSORS):
        (d / name).unlink(missing_ok=True)
