"""A faithful test double of SMAC's StarCraft2Env (no StarCraft II needed).

Same constructor arguments (map_name, seed, continuing_episode), same methods and return shapes
(reset -> (obs, state); step(actions) -> (reward, terminated, info)), the same assertion on
illegal actions, dead units left with only the no-op, and SMAC's way of reporting the end:
battle_won / dead_allies / dead_enemies at the end, info["episode_limit"] on a time-out only
with continuing_episode=True.
"""

from __future__ import annotations

import numpy as np

MAPS = {"3m": (3, 3, 60), "8m": (8, 8, 120)}
launches: list[int | None] = []  # seeds StarCraft II was "launched" with


class FakeStarCraft2Env:
    def __init__(self, map_name="3m", seed=None, continuing_episode=False, enemy_damage=0.2,
                 our_damage=0.25, **kwargs):
        self.n_agents, self.n_enemies, self.episode_limit = MAPS[map_name]
        self.n_actions = 6 + self.n_enemies
        self._seed = seed
        self.continuing_episode = continuing_episode
        self.enemy_damage, self.our_damage = enemy_damage, our_damage
        self._launched = False
        self._episode_steps = 0

    def get_env_info(self):
        return {"state_shape": 48 if self.n_agents == 3 else 168, "obs_shape": 30 if self.n_agents == 3 else 80,
                "n_actions": self.n_actions, "n_agents": self.n_agents, "episode_limit": self.episode_limit}

    def reset(self):
        if not self._launched:
            launches.append(self._seed)
            self._launched = True
            self.rng = np.random.default_rng(self._seed)
        self.ally_hp = np.ones(self.n_agents)
        self.enemy_hp = np.ones(self.n_enemies)
        self._episode_steps = 0
        return self.get_obs(), self.get_state()

    def get_obs(self):
        obs = []
        for i in range(self.n_agents):
            o = np.zeros(self.get_env_info()["obs_shape"], np.float32)
            if self.ally_hp[i] > 0:
                o[: self.n_enemies] = self.enemy_hp
                o[-1] = self.ally_hp[i]
                o[-2] = self._episode_steps / self.episode_limit
            obs.append(o)
        return obs

    def get_state(self):
        s = np.zeros(self.get_env_info()["state_shape"], np.float32)
        s[: self.n_agents] = self.ally_hp
        s[self.n_agents: self.n_agents + self.n_enemies] = self.enemy_hp
        return s

    def get_avail_agent_actions(self, agent_id):
        if self.ally_hp[agent_id] <= 0:
            return [1] + [0] * (self.n_actions - 1)
        avail = [0, 1, 1, 1, 1, 1] + [int(h > 0) for h in self.enemy_hp]
        return avail

    def get_avail_actions(self):
        return [self.get_avail_agent_actions(i) for i in range(self.n_agents)]

    def step(self, actions):
        actions = [int(a) for a in actions]
        for a_id, action in enumerate(actions):
            avail_actions = self.get_avail_agent_actions(a_id)
            assert avail_actions[action] == 1, f"Agent {a_id} cannot perform action {action}"
        self._episode_steps += 1
        before = self.enemy_hp.sum()
        for a in actions:
            if a >= 6:
                self.enemy_hp[a - 6] = max(0.0, self.enemy_hp[a - 6] - self.our_damage)
        alive = np.flatnonzero(self.ally_hp > 0)
        if alive.size and (self.enemy_hp > 0).any():
            hit = self.rng.choice(alive)
            self.ally_hp[hit] = max(0.0, self.ally_hp[hit] - self.enemy_damage)
        reward = float(before - self.enemy_hp.sum()) * 5
        info = {"battle_won": False}
        terminated = False
        if (self.enemy_hp <= 0).all():
            terminated, info["battle_won"] = True, True
            reward += 10
        elif (self.ally_hp <= 0).all():
            terminated = True
        elif self._episode_steps >= self.episode_limit:
            terminated = True
            if self.continuing_episode:
                info["episode_limit"] = True
        if terminated:
            info["dead_allies"] = int((self.ally_hp <= 0).sum())
            info["dead_enemies"] = int((self.enemy_hp <= 0).sum())
        return reward, terminated, info

    def close(self):
        self._launched = False
