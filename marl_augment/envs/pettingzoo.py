"""Any PettingZoo ParallelEnv by module path (``mpe2.simple_spread_v3``), and MPE with
continuous actions by name (``mpe:simple_spread``)."""

from __future__ import annotations

import contextlib
import importlib
import io
import pkgutil
import re
import warnings
from typing import Any

import numpy as np
from pettingzoo.utils.wrappers import BaseParallelWrapper

from ..errors import ConfigError, MissingDependency, NotFound

PREFIX = "pettingzoo:"
#: top-level packages of environments that one of our extras installs
EXTRAS = {"mpe2": "mpe", "jaxmarl": "smax", "gymnasium_robotics": "mamujoco"}


def env_id_for(module_path: str) -> str:
    return module_path if module_path.startswith(PREFIX) else PREFIX + module_path


def make_parallel_env(module_path: str, **kwargs: Any):
    """Import ``module_path`` (may be prefixed ``pettingzoo:``) and call its ``parallel_env``."""
    path = module_path[len(PREFIX) :] if module_path.startswith(PREFIX) else module_path
    if not path or any(not part.isidentifier() for part in path.split(".")):
        raise NotFound(f"{module_path!r} is not a module path like 'mpe2.simple_spread_v3'")
    top = path.split(".")[0]
    try:
        module = importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name == top and top in EXTRAS:
            raise MissingDependency(top, EXTRAS[top], f"environment {path!r}") from None
        if exc.name and (exc.name == path or path.startswith(exc.name + ".")):
            raise NotFound(
                f"cannot import environment module {path!r} ({exc}); is it installed?"
            ) from None
        raise
    factory = getattr(module, "parallel_env", None)
    if factory is None:
        raise NotFound(f"module {path!r} has no parallel_env(); it is not a PettingZoo environment")
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise NotFound(
            f"{path}.parallel_env() refused the options {sorted(kwargs)}: {exc}"
        ) from None


def mpe_module(name: str) -> str:
    """The mpe2 module of an MPE env name: ``simple_spread`` -> ``mpe2.simple_spread_v3`` (the
    newest version), ``simple_spread_v3`` as given."""
    try:
        import mpe2
    except ModuleNotFoundError as exc:
        if exc.name == "mpe2":
            raise MissingDependency("mpe2", "mpe", f"environment mpe:{name}") from None
        raise
    found = sorted(
        m.name
        for m in pkgutil.iter_modules(mpe2.__path__)
        if re.fullmatch(r"simple\w*_v\d+", m.name)
    )
    if name in found:
        return f"mpe2.{name}"
    versions = [m for m in found if re.fullmatch(re.escape(name) + r"_v\d+", m)]
    if not versions:
        raise NotFound(
            f"unknown MPE environment {name!r}; mpe2 has "
            f"{', '.join(sorted({re.sub(r'_v[0-9]+$', '', m) for m in found}))}"
        )
    return "mpe2." + max(versions, key=lambda m: int(m.rsplit("_v", 1)[1]))


def make_mpe(name: str, agent_speed_min: float | None = None, **kwargs: Any):
    """An MPE env of mpe2 with continuous actions (the OMAR / OG-MARL setting); ``kwargs`` go to
    its ``parallel_env`` (e.g. ``max_cycles``, ``N``), ``continuous_actions`` is always on.

    ``agent_speed_min`` makes DOM2's *shifted* MPE: every episode each agent's speed is drawn
    uniformly from [agent_speed_min, 1] (1 is MPE's own; DOM2 uses 0.3 for simple_spread, 0.4
    for predator-prey, 0.5 for world), see :class:`AgentSpeedShift`."""
    if kwargs.get("continuous_actions", True) is not True:
        raise NotFound(
            f"mpe:{name} has continuous actions; for discrete ones use "
            f"pettingzoo:{mpe_module(name)}"
        )
    env = make_parallel_env(mpe_module(name), **{**kwargs, "continuous_actions": True})
    if agent_speed_min is None:
        return env
    if (
        isinstance(agent_speed_min, bool)
        or not isinstance(agent_speed_min, (int, float))
        or not 0 < agent_speed_min <= 1
    ):
        raise ConfigError(f"agent_speed_min must be a number in (0, 1], got {agent_speed_min!r}")
    return AgentSpeedShift(env, float(agent_speed_min))


class AgentSpeedShift(BaseParallelWrapper):
    """DOM2's shifted MPE (Li, Pan & Huang, 2023, Sec. 5.1): each episode, each agent j moves at
    a speed v_j ~ U[v_min, 1] times its standard one. MPE turns an action into a force scaled by
    the agent's ``accel`` (5 when unset); v_j scales that force, so a slow agent accelerates,
    and with MPE's damping also moves, v_j times as fast for the same action. The speeds are
    drawn from the reset's seed (reproducible) and listed in ``speeds``."""

    def __init__(self, env: Any, speed_min: float) -> None:
        super().__init__(env)
        self.speed_min = speed_min
        self.speeds: dict[str, float] = {}
        self._rng = np.random.default_rng()
        world = getattr(env.unwrapped, "world", None)
        if world is None:
            raise NotFound("agent_speed_min works on mpe2's environments only (no MPE world)")
        self._base = {a.name: (5.0 if a.accel is None else float(a.accel)) for a in world.agents}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        out = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._rng = np.random.default_rng([int(seed), 0x5EED])
        for agent in self.env.unwrapped.world.agents:
            v = float(self._rng.uniform(self.speed_min, 1.0))
            agent.accel = self._base[agent.name] * v
            self.speeds[agent.name] = v
        return out


def mamujoco_args(name: str) -> tuple[str, str]:
    """``2x3-HalfCheetah`` -> (``HalfCheetah``, ``2x3``): robot and agent partition."""
    conf, sep, robot = name.partition("-")
    if not sep or not robot or not re.fullmatch(r"\d+x\d+\w*|\d+\w*", conf):
        raise NotFound(
            f"mamujoco:{name} is not <agents>-<robot>, e.g. mamujoco:2x3-HalfCheetah, "
            f"mamujoco:2x4-Ant, mamujoco:4x2-Ant"
        )
    return robot, conf


def make_mamujoco(name: str, **kwargs: Any):
    """Gymnasium-Robotics' MaMuJoCo: ``mamujoco:2x3-HalfCheetah`` is
    ``mamujoco_v1.parallel_env("HalfCheetah", "2x3", **kwargs)`` (continuous actions in
    [-1, 1], global state, 1,000-step episodes)."""
    robot, conf = mamujoco_args(name)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")  # notes on unrelated robotics envs at import
            from gymnasium_robotics import mamujoco_v1
    except ModuleNotFoundError as exc:
        if exc.name in ("gymnasium_robotics", "mujoco"):
            raise MissingDependency(exc.name, "mamujoco", f"environment mamujoco:{name}") from None
        raise
    _mujoco_warnings_to_python()
    try:
        return mamujoco_v1.parallel_env(robot, conf, **kwargs)
    except (ValueError, KeyError, TypeError, NotImplementedError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NotFound(
            f"mamujoco:{name}: MaMuJoCo refused robot {robot!r} with agents {conf!r} ({first})"
        ) from None


def _mujoco_warnings_to_python() -> None:
    """Route MuJoCo's warnings to Python's ``warnings`` (shown once) instead of its default,
    which also appends them to ``MUJOCO_LOG.TXT`` in the working directory: marl-augment writes
    nothing into folders it did not make. A handler the user installed is left alone."""
    import mujoco

    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(
            lambda msg: warnings.warn(f"MuJoCo: {msg}", RuntimeWarning, stacklevel=1)
        )
