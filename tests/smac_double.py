"""A test double of StarCraft SMAC's ``StarCraft2Env`` that behaves like the real class.

Written against oxwhirl/smac (``smac/env/starcraft2/starcraft2.py``, ``maps/__init__.py``); each
behaviour names the real function it follows. No StarCraft II is needed: the "game" is a toy
battle (allies hit the enemy they target, the enemy hits a random living ally each step), but
everything the wrapper can observe follows SMAC:

- the constructor takes exactly SMAC's keyword arguments (no ``**kwargs``: a misspelt keyword
  fails as it would) and an unknown map raises ``KeyError`` from the map registry;
- ``reset()`` launches the game only while ``_episode_count == 0`` (a second reset before any
  episode has ended launches a second game and adds the enemies' health to ``max_reward``
  again, exactly as SMAC does); later resets restart the episode in the running game;
- ``step()`` asserts legal actions, computes SMAC's reward (damage + kill bonus, + win bonus,
  ``abs`` when only positive, 1/-1 when sparse) divided by ``max_reward / reward_scale_rate``,
  reports ``dead_allies``/``dead_enemies`` on every step, ``battle_won``, and
  ``episode_limit`` on a time-out only with ``continuing_episode``;
- a lost connection (``lose_connection_on_step``) restarts the game fully and returns
  ``(0, True, {})``.
"""

from __future__ import annotations

import numpy as np

# smac/env/starcraft2/maps/smac_maps.py: the fields the environment reads, for three maps
MAP_REGISTRY = {
    "3m": {
        "n_agents": 3,
        "n_enemies": 3,
        "limit": 60,
        "a_race": "T",
        "b_race": "T",
        "unit_type_bits": 0,
        "map_type": "marines",
    },
    "8m": {
        "n_agents": 8,
        "n_enemies": 8,
        "limit": 120,
        "a_race": "T",
        "b_race": "T",
        "unit_type_bits": 0,
        "map_type": "marines",
    },
    "2s3z": {
        "n_agents": 5,
        "n_enemies": 5,
        "limit": 120,
        "a_race": "P",
        "b_race": "P",
        "unit_type_bits": 2,
        "map_type": "stalkers_and_zealots",
    },
}
#: (health_max, shield_max) of each map's units, allies and enemies alike (StarCraft II's)
UNITS = {"3m": [(45, 0)] * 3, "8m": [(45, 0)] * 8, "2s3z": [(80, 80)] * 2 + [(100, 50)] * 3}
#: the shapes ``get_env_info`` reports on the real maps with default settings
SHAPES = {"3m": (30, 48), "8m": (80, 168), "2s3z": (80, 120)}

launches: list[int | None] = []  # the seed of every StarCraft II "process" started
open_processes: list[object] = []  # the ones not closed yet


def get_smac_map_registry():
    """smac.env.starcraft2.maps.smac_maps.get_smac_map_registry."""
    return MAP_REGISTRY


def get_map_params(map_name):
    """smac.env.starcraft2.maps.get_map_params: an unknown map is a KeyError."""
    return get_smac_map_registry()[map_name]


class _Process:
    def __init__(self, seed):
        launches.append(seed)
        open_processes.append(self)

    def close(self):
        if self in open_processes:
            open_processes.remove(self)


class _Unit:
    def __init__(self, health, shield):
        self.health = self.health_max = float(health)
        self.shield = self.shield_max = float(shield)


class FakeStarCraft2Env:
    #: the toy battle's damage per step: an ally's attack on its target, the enemy's on a
    #: random living ally (fractions of a unit's health + shield)
    our_damage = 0.25
    enemy_damage = 0.2

    @classmethod
    def with_battle(cls, our_damage: float, enemy_damage: float) -> type:
        """A subclass with other battle dynamics (the constructor stays SMAC's)."""
        return type(
            "FakeStarCraft2Env", (cls,), {"our_damage": our_damage, "enemy_damage": enemy_damage}
        )

    def __init__(
        self,
        map_name="8m",
        step_mul=8,
        move_amount=2,
        difficulty="7",
        game_version=None,
        seed=None,
        continuing_episode=False,
        obs_all_health=True,
        obs_own_health=True,
        obs_last_action=False,
        obs_pathing_grid=False,
        obs_terrain_height=False,
        obs_instead_of_state=False,
        obs_timestep_number=False,
        state_last_action=True,
        state_timestep_number=False,
        reward_sparse=False,
        reward_only_positive=True,
        reward_death_value=10,
        reward_win=200,
        reward_defeat=0,
        reward_negative_scale=0.5,
        reward_scale=True,
        reward_scale_rate=20,
        replay_dir="",
        replay_prefix="",
        window_size_x=1920,
        window_size_y=1200,
        heuristic_ai=False,
        heuristic_rest=False,
        debug=False,
    ):
        self.map_name = map_name
        map_params = get_map_params(map_name)
        self.n_agents = map_params["n_agents"]
        self.n_enemies = map_params["n_enemies"]
        self.episode_limit = map_params["limit"]
        self.continuing_episode = continuing_episode
        self._seed = seed
        self.reward_sparse = reward_sparse
        self.reward_only_positive = reward_only_positive
        self.reward_death_value = reward_death_value
        self.reward_win = reward_win
        self.reward_defeat = reward_defeat
        self.reward_negative_scale = reward_negative_scale
        self.reward_scale = reward_scale
        self.reward_scale_rate = reward_scale_rate
        self.n_actions_no_attack = 6
        self.n_actions = self.n_actions_no_attack + self.n_enemies
        # StarCraft2Env.__init__: the enemies' health is added on the first episode's reset
        self.max_reward = self.n_enemies * self.reward_death_value + self.reward_win
        self._episode_count = 0
        self._episode_steps = 0
        self._total_steps = 0
        self.force_restarts = 0
        self.battles_won = self.battles_game = self.timeouts = 0
        self.agents, self.enemies = {}, {}
        self._sc2_proc = None
        self.lose_connection_on_step: int | None = None  # a test sets it to drop the game

    # -- launching -------------------------------------------------------------------------
    def _launch(self):
        """StarCraft2Env._launch: a new game process, seeded with ``_seed``."""
        self._sc2_proc = _Process(self._seed)
        self._rng = np.random.default_rng(self._seed)

    def full_restart(self):
        """StarCraft2Env.full_restart: close the process and launch a new one."""
        self._sc2_proc.close()
        self._launch()
        self.force_restarts += 1

    def close(self):
        """StarCraft2Env.close."""
        if self._sc2_proc:
            self._sc2_proc.close()

    def seed(self):
        return self._seed

    # -- episodes --------------------------------------------------------------------------
    def reset(self):
        """StarCraft2Env.reset: launch while no episode has ended, else restart in the game."""
        self._episode_steps = 0
        if self._episode_count == 0:
            self._launch()
        # else: StarCraft2Env._restart kills all units and the map's trigger respawns them
        self.death_tracker_ally = np.zeros(self.n_agents)
        self.death_tracker_enemy = np.zeros(self.n_enemies)
        self.win_counted = self.defeat_counted = False
        self.init_units()
        return self.get_obs(), self.get_state()

    def init_units(self):
        """StarCraft2Env.init_units: on the first episode, every enemy's health_max +
        shield_max is added to max_reward."""
        units = UNITS[self.map_name]
        self.agents = {i: _Unit(*units[i]) for i in range(self.n_agents)}
        self.enemies = {i: _Unit(*units[i]) for i in range(self.n_enemies)}
        if self._episode_count == 0:
            for e in self.enemies.values():
                self.max_reward += e.health_max + e.shield_max

    def step(self, actions):
        """StarCraft2Env.step: returns (reward, terminated, info)."""
        actions_int = [int(a) for a in actions]
        for a_id, action in enumerate(actions_int):
            self.get_agent_action(a_id, action)
        if (
            self.lose_connection_on_step is not None
            and self._episode_steps + 1 == self.lose_connection_on_step
        ):
            # protocol.ConnectionError in the request: StarCraft2Env.step restarts the game
            self.lose_connection_on_step = None
            self.full_restart()
            return 0, True, {}
        self._total_steps += 1
        self._episode_steps += 1
        self.previous_ally_units = {i: (u.health, u.shield) for i, u in self.agents.items()}
        self.previous_enemy_units = {i: (u.health, u.shield) for i, u in self.enemies.items()}
        for action in actions_int:
            if action >= self.n_actions_no_attack:
                self._hit(self.enemies[action - self.n_actions_no_attack], self.our_damage)
        alive = [i for i, u in self.agents.items() if u.health > 0]
        if alive and any(u.health > 0 for u in self.enemies.values()):
            self._hit(self.agents[int(self._rng.choice(alive))], self.enemy_damage)
        game_end_code = self.update_units()

        terminated = False
        reward = self.reward_battle()
        info = {"battle_won": False}
        info["dead_allies"] = sum(u.health == 0 for u in self.agents.values())
        info["dead_enemies"] = sum(u.health == 0 for u in self.enemies.values())
        if game_end_code is not None:
            terminated = True
            self.battles_game += 1
            if game_end_code == 1 and not self.win_counted:
                self.battles_won += 1
                self.win_counted = True
                info["battle_won"] = True
                reward = reward + self.reward_win if not self.reward_sparse else 1
            elif game_end_code == -1 and not self.defeat_counted:
                self.defeat_counted = True
                reward = reward + self.reward_defeat if not self.reward_sparse else -1
        elif self._episode_steps >= self.episode_limit:
            terminated = True
            if self.continuing_episode:
                info["episode_limit"] = True
            self.battles_game += 1
            self.timeouts += 1
        if terminated:
            self._episode_count += 1
        if self.reward_scale:
            reward /= self.max_reward / self.reward_scale_rate
        return reward, terminated, info

    @staticmethod
    def _hit(unit, fraction):
        dmg = fraction * (unit.health_max + unit.shield_max)
        absorbed = min(unit.shield, dmg)
        unit.shield -= absorbed
        unit.health = max(0.0, unit.health - (dmg - absorbed))

    def update_units(self):
        """StarCraft2Env.update_units: 1 won, -1 lost, 0 draw, None running."""
        allies = sum(u.health > 0 for u in self.agents.values())
        enemies = sum(u.health > 0 for u in self.enemies.values())
        if allies == 0 and enemies > 0:
            return -1
        if allies > 0 and enemies == 0:
            return 1
        if allies == 0 and enemies == 0:
            return 0
        return None

    def reward_battle(self):
        """StarCraft2Env.reward_battle."""
        if self.reward_sparse:
            return 0
        delta_deaths = delta_ally = delta_enemy = 0.0
        neg_scale = self.reward_negative_scale
        for al_id, u in self.agents.items():
            if not self.death_tracker_ally[al_id]:
                prev = sum(self.previous_ally_units[al_id])
                if u.health == 0:
                    self.death_tracker_ally[al_id] = 1
                    if not self.reward_only_positive:
                        delta_deaths -= self.reward_death_value * neg_scale
                    delta_ally += prev * neg_scale
                else:
                    delta_ally += neg_scale * (prev - u.health - u.shield)
        for e_id, u in self.enemies.items():
            if not self.death_tracker_enemy[e_id]:
                prev = sum(self.previous_enemy_units[e_id])
                if u.health == 0:
                    self.death_tracker_enemy[e_id] = 1
                    delta_deaths += self.reward_death_value
                    delta_enemy += prev
                else:
                    delta_enemy += prev - u.health - u.shield
        if self.reward_only_positive:
            return abs(delta_enemy + delta_deaths)
        return delta_enemy + delta_deaths - delta_ally

    def get_agent_action(self, a_id, action):
        """StarCraft2Env.get_agent_action's assertions."""
        avail_actions = self.get_avail_agent_actions(a_id)
        assert avail_actions[action] == 1, f"Agent {a_id} cannot perform action {action}"
        if action == 0:
            assert self.agents[a_id].health == 0, "No-op only available for dead agents."

    # -- observations ----------------------------------------------------------------------
    def get_env_info(self):
        """MultiAgentEnv.get_env_info."""
        obs_shape, state_shape = SHAPES[self.map_name]
        return {
            "state_shape": state_shape,
            "obs_shape": obs_shape,
            "n_actions": self.n_actions,
            "n_agents": self.n_agents,
            "episode_limit": self.episode_limit,
        }

    def get_obs_agent(self, agent_id):
        o = np.zeros(SHAPES[self.map_name][0], np.float32)
        u = self.agents[agent_id]
        if u.health > 0:  # a dead unit sees zeros
            o[: self.n_enemies] = [e.health / e.health_max for e in self.enemies.values()]
            o[-1] = u.health / u.health_max
            o[-2] = self._episode_steps / self.episode_limit
        return o

    def get_obs(self):
        return [self.get_obs_agent(i) for i in range(self.n_agents)]

    def get_state(self):
        s = np.zeros(SHAPES[self.map_name][1], np.float32)
        s[: self.n_agents] = [u.health / u.health_max for u in self.agents.values()]
        s[self.n_agents : self.n_agents + self.n_enemies] = [
            e.health / e.health_max for e in self.enemies.values()
        ]
        return s

    def get_avail_agent_actions(self, agent_id):
        """StarCraft2Env.get_avail_agent_actions: a dead unit has only the no-op."""
        if self.agents[agent_id].health > 0:
            return [0, 1, 1, 1, 1, 1] + [int(e.health > 0) for e in self.enemies.values()]
        return [1] + [0] * (self.n_actions - 1)

    def get_avail_actions(self):
        return [self.get_avail_agent_actions(i) for i in range(self.n_agents)]

    def get_total_actions(self):
        return self.n_actions
