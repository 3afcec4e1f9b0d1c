"""Recording datasets in any PettingZoo env: a built-in policy or a trained one acting with
OG-MARL's behaviour noise, through a JSON Lines log into an episode store (``record``)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: ``bars(description, total, unit)``: a context manager yielding ``advance(n)``
Bars = Callable[..., contextlib.AbstractContextManager[Callable[[int], None]]]


@contextlib.contextmanager
def no_bars(description: str, total: int | None = None, unit: str = "") -> Iterator[Any]:
    yield lambda n=1: None


def default_noise(action_kind: str) -> float:
    """OG-MARL's behaviour noise: ε = 0.05 for discrete actions (its SMAC cards), Gaussian std
    0.2 for continuous ones (its 2halfcheetah card: MATD3 rolled out with noise of std 0.2)."""
    return 0.2 if action_kind == "continuous" else 0.05


def behaviour_policy(policy: str, noise: float | None, seed: int, env) -> tuple[Any, dict[str, Any]]:
    """The recording policy: a built-in one by name, or a trained policy folder (a ``train``
    run or a ``behaviour train`` checkpoint) acting with OG-MARL's behaviour noise; refused in
    one line when its action kind is not the env's."""
    if not Path(policy).is_dir():
        if noise is not None:
            raise ConfigError("--noise applies to a trained policy (--policy FOLDER)")
        return policy, {}
    from ..adapters.pettingzoo_log import agent_action_kinds
    from ..algos import load_policy
    from .evaluate import NoisyPolicy

    trained = load_policy(policy)
    kind = agent_action_kinds(env, list(env.possible_agents))
    if trained.action_kind != kind:
        raise ConfigError(f"the policy in {policy} acts with {trained.action_kind} actions and "
                          f"the env takes {kind} ones")
    level = noise if noise is not None else default_noise(kind)
    facts = {"behaviour_run": str(Path(policy).resolve()), "behaviour_noise": level,
             "behaviour_algo": trained.name}
    return NoisyPolicy(trained, level, seed=seed, name=f"{trained.name}+noise"), facts


def record_env(env_id: str, out: str, *, episodes: int, policy: str = "random",
               noise: float | None = None, seed: int = 0,
               env_kwargs: dict[str, Any] | None = None, log: Path | None = None,
               overwrite: bool = False, source: dict[str, Any] | None = None,
               bars: Bars = no_bars):
    """Record ``episodes`` episodes of ``env_id`` into the store ``out`` and return it.

    The env's settings (``env_kwargs``) go with the data, so evaluation in its env id makes the
    same env; ``source`` adds facts to the store's source (provenance of the behaviour).
    """
    from ..adapters.pettingzoo_log import PettingZooLogAdapter, temp_log_path
    from ..adapters.pettingzoo_log import record as record_log
    from ..data.store import check_output_path
    from ..torch_state import torch_threads
    from . import make_env, team_reward

    check_output_path(out, overwrite=overwrite, inputs=[policy] if Path(policy).is_dir() else [])
    kwargs = dict(env_kwargs or {})
    env = make_env(env_id, **kwargs)
    actor, facts = behaviour_policy(policy, noise, seed, env)
    facts.update(source or {})
    with tempfile.TemporaryDirectory(prefix="marl-augment-") as tmp:
        log_path = log if log is not None else temp_log_path(Path(tmp))
        with bars(f"recording {env_id}", total=episodes) as advance, torch_threads(1):
            record_log(env, log_path, episodes=episodes, policy=actor, seed=seed,
                       env_id=env_id, overwrite=overwrite, progress=advance,
                       meta={"env_kwargs": kwargs, **facts})
        with bars("writing store", unit="transitions") as advance:
            recorded = {"recorded_from": env_id, "policy": policy, "seed": seed, **facts}
            if log is None:
                recorded.update(path=None, sha256=None)  # the log was temporary
            adapter = PettingZooLogAdapter(PettingZooLogAdapter.Config(
                reward=team_reward(env_id), extras={"env_kwargs": kwargs} if kwargs else {}))
            return adapter.convert(log_path, out, overwrite=overwrite, progress=advance,
                                   source=recorded)
