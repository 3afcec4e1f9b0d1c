"""Small real PettingZoo ParallelEnvs for tests: agents that die, masks, wins, Box actions."""

from __future__ import annotations

import functools

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class Skirmish(ParallelEnv):
    """Three agents; agent i dies at step death[i] (random per episode); masks in obs or infos.

    Observation: Dict(observation=Box(4), action_mask=MultiBinary(5)) when ``mask_in="obs"``,
    plain Box(4) with the mask in infos when ``mask_in="infos"``. Team wins when the episode
    reaches ``max_steps`` with someone alive; the time limit is a truncation.
    """

    metadata = {"name": "skirmish_v0"}

    def __init__(self, max_steps: int = 12, mask_in: str = "obs"):
        self.possible_agents = ["red_0", "red_1", "red_2"]
        self.max_steps = max_steps
        self.mask_in = mask_in
        self.rng = np.random.default_rng(0)

    @functools.cache
    def observation_space(self, agent):
        box = spaces.Box(-10, 10, (4,), np.float32)
        if self.mask_in == "obs":
            return spaces.Dict({"observation": box, "action_mask": spaces.MultiBinary(5)})
        return box

    @functools.cache
    def action_space(self, agent):
        return spaces.Discrete(5)

    def state(self):
        return np.array([self.t, len(self.agents), *self.pos], dtype=np.float32)

    def _mask(self, i):
        m = np.ones(5, np.int8)
        m[(self.t + i) % 5] = 0  # one forbidden action, varying with time
        return m

    def _obs(self):
        obs, infos = {}, {}
        for a in self.agents:
            i = self.possible_agents.index(a)
            o = np.array([self.t, i, self.pos[i], self.rng.normal()], np.float32)
            if self.mask_in == "obs":
                obs[a] = {"observation": o, "action_mask": self._mask(i)}
                infos[a] = {}
            else:
                obs[a] = o
                infos[a] = {"action_mask": self._mask(i)}
        return obs, infos

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        self.pos = self.rng.normal(size=3).astype(np.float32)
        self.death = self.rng.integers(2, self.max_steps + 4, size=3)
        return self._obs()

    def step(self, actions):
        for a, act in actions.items():
            i = self.possible_agents.index(a)
            assert self._mask(i)[act], f"illegal action {act} for {a}"
            self.pos[i] += act - 2
        self.t += 1
        rewards = {a: float(actions[a]) * 0.1 + 0.25 for a in self.agents}
        terms = {a: bool(self.t >= self.death[self.possible_agents.index(a)]) for a in self.agents}
        trunc = self.t >= self.max_steps
        truncs = {a: bool(trunc and not terms[a]) for a in self.agents}
        obs, infos = self._obs()
        everyone_done = all(terms[a] or truncs[a] for a in self.agents)
        if everyone_done:
            won = any(truncs.values())
            infos = {a: {**infos[a], "battle_won": won} for a in infos}
        self.agents = [a for a in self.agents if not (terms[a] or truncs[a])]
        return obs, rewards, terms, truncs, infos


class BoxActions(ParallelEnv):
    """Two agents with Box actions (bounds given), three steps an episode; reward -|a|.
    ``mixed=True`` gives agent "b" a Discrete space instead (refused: one kind per store)."""

    metadata = {"name": "box_actions_v0"}
    possible_agents = ["a", "b"]

    def __init__(self, low=-1.0, high=1.0, mixed=False):
        self.low, self.high, self.mixed = low, high, mixed

    def observation_space(self, agent):
        return spaces.Box(-1, 1, (2,), np.float32)

    def action_space(self, agent):
        if self.mixed and agent == "b":
            return spaces.Discrete(3)
        return spaces.Box(self.low, self.high, (2,), np.float32)

    def reset(self, seed=None, options=None):
        self.agents, self.t = list(self.possible_agents), 0
        return {a: np.zeros(2, np.float32) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        self.t += 1
        obs = {a: np.clip(np.asarray(v, np.float32), -1, 1) for a, v in actions.items()}
        rew = {a: -float(np.abs(v).sum()) for a, v in actions.items()}
        done = self.t >= 3
        out = (
            obs,
            rew,
            {a: False for a in actions},
            {a: done for a in actions},
            {a: {} for a in actions},
        )
        if done:
            self.agents = []
        return out


def make_skirmish(name: str, **kwargs):
    """An env backend's factory: ``toy:<mask_in>`` (``obs`` or ``infos``)."""
    return Skirmish(mask_in=name, **kwargs)
