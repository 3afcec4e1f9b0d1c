"""Recording datasets in any PettingZoo env: a built-in policy or a trained one acting with
OG-MARL's behaviour noise, through a JSON Lines log (:func:`record`, the adapters' recorder)
into an episode store (:func:`record_env`, the ``record`` command)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..adapters.pettingzoo_log import PettingZooLogAdapter, Recorder, interrupted, temp_log_path
from ..algos import load_policy
from ..data.store import check_output_path
from ..errors import ConfigError, EnvError, FormatError
from ..spaces import action_kind, action_mask_of, agent_action_kinds, box_bounds
from ..torch_state import torch_threads
from . import episode_seed, make_env, team_reward
from .evaluate import MAX_INTERRUPTED_IN_A_ROW, NoisyPolicy

#: ``bars(description, total, unit)``: a context manager yielding ``advance(n)``
Bars = Callable[..., contextlib.AbstractContextManager[Callable[[int], None]]]


@contextlib.contextmanager
def no_bars(description: str, total: int | None = None, unit: str = "") -> Iterator[Any]:
    yield lambda n=1: None


def default_noise(action_kind: str) -> float:
    """OG-MARL's behaviour noise: ε = 0.05 for discrete actions (its SMAC cards), Gaussian std
    0.2 for continuous ones (its 2halfcheetah card: MATD3 rolled out with noise of std 0.2)."""
    return 0.2 if action_kind == "continuous" else 0.05


def behaviour_policy(
    policy: str, noise: float | None, seed: int, env
) -> tuple[Any, dict[str, Any]]:
    """The recording policy: a built-in one by name, or a trained policy folder (a ``train``
    run or a ``behaviour train`` checkpoint) acting with OG-MARL's behaviour noise; refused in
    one line when its action kind is not the env's."""
    if not Path(policy).is_dir():
        if noise is not None:
            raise ConfigError("--noise applies to a trained policy (--policy FOLDER)")
        return policy, {}

    trained = load_policy(policy)
    kind = agent_action_kinds(env, list(env.possible_agents))
    if trained.action_kind != kind:
        raise ConfigError(
            f"the policy in {policy} acts with {trained.action_kind} actions and "
            f"the env takes {kind} ones"
        )
    level = noise if noise is not None else default_noise(kind)
    facts = {
        "behaviour_run": str(Path(policy).resolve()),
        "behaviour_noise": level,
        "behaviour_algo": trained.name,
    }
    return NoisyPolicy(trained, level, seed=seed, name=f"{trained.name}+noise"), facts


def record_env(
    env_id: str,
    out: str,
    *,
    episodes: int,
    policy: str = "random",
    noise: float | None = None,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    log: Path | None = None,
    overwrite: bool = False,
    source: dict[str, Any] | None = None,
    bars: Bars = no_bars,
):
    """Record ``episodes`` episodes of ``env_id`` into the store ``out`` and return it.

    The env's settings (``env_kwargs``) go with the data, so evaluation in its env id makes the
    same env; ``source`` adds facts to the store's source (provenance of the behaviour).
    """

    check_output_path(out, overwrite=overwrite, inputs=[policy] if Path(policy).is_dir() else [])
    kwargs = dict(env_kwargs or {})
    env = make_env(env_id, **kwargs)
    actor, facts = behaviour_policy(policy, noise, seed, env)
    facts.update(source or {})
    with tempfile.TemporaryDirectory(prefix="marl-augment-") as tmp:
        log_path = log if log is not None else temp_log_path(Path(tmp))
        with bars(f"recording {env_id}", total=episodes) as advance, torch_threads(1):
            record(
                env,
                log_path,
                episodes=episodes,
                policy=actor,
                seed=seed,
                env_id=env_id,
                overwrite=overwrite,
                progress=advance,
                meta={"env_kwargs": kwargs, **facts},
            )
        with bars("writing store", unit="transitions") as advance:
            recorded = {"recorded_from": env_id, "policy": policy, "seed": seed, **facts}
            if log is None:
                recorded.update(path=None, sha256=None)  # the log was temporary
            adapter = PettingZooLogAdapter(
                PettingZooLogAdapter.Config(
                    reward=team_reward(env_id), extras={"env_kwargs": kwargs} if kwargs else {}
                )
            )
            return adapter.convert(
                log_path, out, overwrite=overwrite, progress=advance, source=recorded
            )


def random_policy(seed: int):
    """Uniformly random legal actions (respecting action masks); continuous actions uniform
    within their bounds."""
    rng = np.random.default_rng(seed)
    bounds: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # per agent, read once

    def act(env, obs, infos) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for a in env.agents:
            space = env.action_space(a)
            if action_kind(space) == "continuous":
                if a not in bounds:
                    bounds[a] = tuple(np.asarray(b, np.float32) for b in box_bounds(space, a))
                lo, hi = bounds[a]
                out[a] = rng.uniform(lo, hi).astype(np.float32).reshape(space.shape)
                continue
            n = int(space.n)
            m = action_mask_of(obs.get(a), infos.get(a))
            legal = np.flatnonzero(m) if m is not None else np.arange(n)
            if legal.size == 0:
                raise FormatError(f"agent {a!r} has no legal action (its action mask is all zero)")
            out[a] = int(rng.choice(legal))
        return out

    return act


POLICIES = {"random": random_policy}


def record(
    env,
    log_path: str | os.PathLike,
    *,
    episodes: int,
    policy: Any = "random",
    seed: int = 0,
    env_id: str | None = None,
    overwrite: bool = False,
    progress: Any = None,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Run ``episodes`` episodes of ``env`` and log them. ``policy`` is a built-in policy's
    name, or an ``act(env, obs, infos) -> actions`` callable (its ``reset()``, if it has one, is
    called at every episode start: e.g. :class:`marl_augment.envs.evaluate.NoisyPolicy`)."""
    if isinstance(policy, str) and policy not in POLICIES:
        raise ConfigError(f"unknown policy {policy!r}; choose one of {sorted(POLICIES)}")
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    act = POLICIES[policy](seed) if isinstance(policy, str) else policy
    name = policy if isinstance(policy, str) else getattr(policy, "name", type(policy).__name__)
    rec = Recorder(
        env,
        log_path,
        env_id=env_id,
        overwrite=overwrite,
        meta={"policy": name, "seed": seed, **(meta or {})},
    )
    try:
        done = started = in_a_row = 0
        while done < episodes:
            obs, infos = rec.reset(seed=episode_seed(env, seed, started))
            if hasattr(act, "reset"):
                act.reset()
            started += 1
            while rec.agents:
                obs, _, _, _, infos = rec.step(act(rec, obs, infos))
            if interrupted(infos):  # logged as such, left out by convert: play another
                in_a_row += 1
                if in_a_row >= MAX_INTERRUPTED_IN_A_ROW:
                    raise EnvError(
                        f"{in_a_row} episodes in a row were cut short by the "
                        "environment (StarCraft II lost its connection); check the "
                        "game installation and record again"
                    )
                continue
            in_a_row = 0
            done += 1
            if progress is not None:
                progress(1)
        rec.close()
    except BaseException:
        rec.abort()
        raise
    return rec.log_path
