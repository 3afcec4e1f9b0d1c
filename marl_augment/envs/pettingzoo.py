"""Any PettingZoo ParallelEnv by module path (``mpe2.simple_spread_v3``)."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import MissingDependency, NotFound

PREFIX = "pettingzoo:"
#: top-level packages of environments that one of our extras installs
EXTRAS = {"mpe2": "mpe", "jaxmarl": "smax"}


def env_id_for(module_path: str) -> str:
    return module_path if module_path.startswith(PREFIX) else PREFIX + module_path


def make_parallel_env(module_path: str, **kwargs: Any):
    """Import ``module_path`` (optionally prefixed ``pettingzoo:``) and call its ``parallel_env``."""
    path = module_path[len(PREFIX):] if module_path.startswith(PREFIX) else module_path
    if not path or any(not part.isidentifier() for part in path.split(".")):
        raise NotFound(f"{module_path!r} is not a module path like 'mpe2.simple_spread_v3'")
    top = path.split(".")[0]
    try:
        module = importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name == top and top in EXTRAS:
            raise MissingDependency(top, EXTRAS[top], f"environment {path!r}") from None
        if exc.name and (exc.name == path or path.startswith(exc.name + ".")):
            raise NotFound(f"cannot import environment module {path!r} ({exc}); is it installed?") from None
        raise
    factory = getattr(module, "parallel_env", None)
    if factory is None:
        raise NotFound(f"module {path!r} has no parallel_env(); it is not a PettingZoo environment")
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise NotFound(f"{path}.parallel_env() refused the options {sorted(kwargs)}: {exc}") from None
