"""Generated SMAC-shaped datasets for tests and benchmarks (no simulator needed).

A small vectorised marines-vs-marines skirmish produces observations, states, legal-action
masks, actions and rewards laid out like SMAC's ``Nm`` maps (SMAC 3m: obs 30, state 48,
9 actions). It is not SMAC — the dynamics are crude — but the values have SMAC's structure
(bounded features, quantised health, many zeros after deaths), so compression, validation and
throughput measured on it are representative.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .dataset import StoreWriter
from .schema import Spec

MOVES = np.array([[0, 1], [0, -1], [1, 0], [-1, 0]], dtype=np.float32)  # north south east west


def smac_like_spec(n_agents: int = 3) -> Spec:
    n = n_agents
    obs_dim = 4 + n * 5 + (n - 1) * 5 + 1
    state_dim = n * 4 + n * 3 + n * (6 + n)
    return Spec(
        env_id=f"synthetic:{n}m",
        agent_ids=tuple(f"agent_{i}" for i in range(n)),
        obs_dim=obs_dim,
        n_actions=6 + n,
        state_dim=state_dim,
        has_avail_actions=True,
        has_alive=True,
        reward_mode="given",
        extras={"generator": "marl_augment.data.synthetic"},
    )


def smac_like_episodes(
    n_episodes: int,
    *,
    n_agents: int = 3,
    seed: int = 0,
    max_len: int = 60,
    skill: float = 0.5,
    batch: int = 256,
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]]:
    """Yield (columns, lengths, won) for batches of generated episodes.

    ``skill`` in [0, 1] is the probability that an agent attacks the weakest enemy in range
    (focus fire) instead of acting at random; higher skill gives higher returns.
    """
    rng = np.random.default_rng(seed)
    done_eps = 0
    while done_eps < n_episodes:
        b = min(batch, n_episodes - done_eps)
        yield _simulate(rng, b, n_agents, max_len, skill)
        done_eps += b


def _simulate(rng: np.random.Generator, b: int, n: int, max_len: int, skill: float):
    sight, shoot, move = 9.0, 6.0, 2.0 / 32
    n_actions = 6 + n
    ally = np.stack([rng.uniform(0.35, 0.45, (b, n)), rng.uniform(0.4, 0.6, (b, n))], -1)
    enemy = np.stack([rng.uniform(0.55, 0.65, (b, n)), rng.uniform(0.4, 0.6, (b, n))], -1)
    hp_a = np.ones((b, n), np.float32)
    hp_e = np.ones((b, n), np.float32)
    cool = np.zeros((b, n), np.float32)
    last_act = np.zeros((b, n, n_actions), np.float32)
    running = np.ones(b, bool)
    length = np.zeros(b, np.int64)
    won = np.zeros(b, bool)
    rec: dict[str, list[np.ndarray]] = {
        k: []
        for k in (
            "obs",
            "state",
            "avail_actions",
            "actions",
            "rewards",
            "alive",
            "terminated",
            "truncated",
        )
    }
    scale = 32.0  # map units per position unit
    for t in range(max_len):
        alive_a, alive_e = hp_a > 0, hp_e > 0
        rel_e = (enemy[:, None, :, :] - ally[:, :, None, :]) * scale  # (b, n, n, 2)
        dist_e = np.linalg.norm(rel_e, axis=-1)
        vis_e = (dist_e < sight) & alive_e[:, None, :] & alive_a[:, :, None]
        rel_a = (ally[:, None, :, :] - ally[:, :, None, :]) * scale
        dist_a = np.linalg.norm(rel_a, axis=-1)
        # observation, SMAC layout: move feats, enemy feats, ally feats (others), own health
        obs = np.zeros((b, n, 4 + n * 5 + (n - 1) * 5 + 1), np.float32)
        obs[:, :, 0:4] = alive_a[..., None]
        ef = (
            np.stack(
                [
                    vis_e,
                    dist_e / sight,
                    rel_e[..., 0] / sight,
                    rel_e[..., 1] / sight,
                    np.broadcast_to(hp_e[:, None, :], vis_e.shape),
                ],
                -1,
            )
            * vis_e[..., None]
        )
        obs[:, :, 4 : 4 + n * 5] = ef.reshape(b, n, n * 5)
        others = np.array([[j for j in range(n) if j != i] for i in range(n)], dtype=np.intp)
        vis_a = (dist_a < sight) & alive_a[:, None, :] & alive_a[:, :, None]
        af = (
            np.stack(
                [
                    vis_a,
                    dist_a / sight,
                    rel_a[..., 0] / sight,
                    rel_a[..., 1] / sight,
                    np.broadcast_to(hp_a[:, None, :], vis_a.shape),
                ],
                -1,
            )
            * vis_a[..., None]
        )
        af = af[:, np.arange(n)[:, None], others]  # (b, n, n-1, 5)
        obs[:, :, 4 + n * 5 : -1] = af.reshape(b, n, (n - 1) * 5)
        obs[:, :, -1] = hp_a
        obs *= alive_a[..., None]
        centre = np.array([0.5, 0.5], np.float32)
        state = np.concatenate(
            [
                np.stack([hp_a, cool, *(ally - centre).transpose(2, 0, 1)], -1).reshape(b, -1)
                * np.repeat(alive_a, 4, 1),
                np.stack([hp_e, *(enemy - centre).transpose(2, 0, 1)], -1).reshape(b, -1)
                * np.repeat(alive_e, 3, 1),
                last_act.reshape(b, -1),
            ],
            1,
        ).astype(np.float32)
        # legal actions: 0 no-op (dead only), 1 stop, 2..5 move, 6.. attack enemy j in range
        avail = np.zeros((b, n, n_actions), bool)
        avail[:, :, 0] = ~alive_a
        avail[:, :, 1:6] = alive_a[..., None]
        avail[:, :, 6:] = (dist_e < shoot) & alive_e[:, None, :] & alive_a[:, :, None]
        # behaviour: focus the weakest enemy in range with prob skill, else uniform legal
        u = rng.random((b, n, n_actions)) * avail
        act = u.argmax(-1)
        target_hp = np.where(avail[:, :, 6:], hp_e[:, None, :], np.inf)
        can_attack = avail[:, :, 6:].any(-1)
        focus = (rng.random((b, n)) < skill) & can_attack
        act = np.where(focus, 6 + target_hp.argmin(-1), act)
        approach = (rng.random((b, n)) < skill) & ~can_attack & alive_a
        act = np.where(approach, 4, act)  # move east, towards the enemy side
        # enemy: attack closest ally in range
        dist_ea = dist_e.transpose(0, 2, 1)
        enemy_hits = (dist_ea < shoot) & alive_a[:, None, :] & alive_e[:, :, None]
        enemy_target = np.where(enemy_hits, dist_ea, np.inf).argmin(-1)
        enemy_fire = enemy_hits.any(-1)
        # apply
        dmg_e = np.zeros((b, n), np.float32)
        attack = (act >= 6) & alive_a & (cool <= 0)
        np.add.at(dmg_e, (np.nonzero(attack)[0], act[attack] - 6), 6.0 / 45.0)
        dmg_a = np.zeros((b, n), np.float32)
        np.add.at(dmg_a, (np.nonzero(enemy_fire)[0], enemy_target[enemy_fire]), 6.0 / 45.0 * 0.8)
        mv = (act >= 2) & (act <= 5)
        ally = ally + np.where(mv[..., None], MOVES[np.clip(act - 2, 0, 3)] * move, 0)
        enemy = enemy + np.where(
            alive_e[..., None], (ally.mean(1, keepdims=True) - enemy) * 0.01, 0
        )
        cool = np.where(attack, 1.0, np.maximum(cool - 0.5, 0)).astype(np.float32)
        new_hp_e = np.clip(np.round((hp_e - dmg_e) * 45) / 45, 0, 1)
        new_hp_a = np.clip(np.round((hp_a - dmg_a) * 45) / 45, 0, 1)
        kills = ((hp_e > 0) & (new_hp_e <= 0)).sum(1)
        reward = ((hp_e - new_hp_e).sum(1) * 45 / (45 * n) * 10 + kills * 10 / n).astype(np.float32)
        hp_e, hp_a = new_hp_e.astype(np.float32), new_hp_a.astype(np.float32)
        win = (hp_e <= 0).all(1)
        lose = (hp_a <= 0).all(1)
        reward = np.where(win, reward + 10.0, reward).astype(np.float32)
        term = running & (win | lose)
        trunc = running & ~term & (t == max_len - 1)
        last_act = np.eye(n_actions, dtype=np.float32)[act] * alive_a[..., None]
        for k, v in (
            ("obs", obs),
            ("state", state),
            ("avail_actions", avail),
            ("actions", act.astype(np.int32)),
            ("rewards", reward),
            ("alive", alive_a),
            ("terminated", term),
            ("truncated", trunc),
        ):
            rec[k].append(v)
        length += running
        won |= running & win
        running &= ~(term | trunc)
        if not running.any():
            break
    stacked = {k: np.stack(v, 1) for k, v in rec.items()}  # (b, T, ...)
    t_idx = np.arange(stacked["obs"].shape[1])
    keep = t_idx[None, :] < length[:, None]
    cols = {k: v[keep] for k, v in stacked.items()}
    return cols, length, won


def smac_like_dataset(
    n_episodes: int,
    path,
    *,
    n_agents: int = 3,
    seed: int = 0,
    skill: float = 0.5,
    overwrite: bool = False,
    max_len: int = 60,
):
    """Write a generated SMAC-shaped store and return it as a Dataset."""

    spec = smac_like_spec(n_agents)
    with StoreWriter(
        path,
        spec,
        overwrite=overwrite,
        source={"adapter": "synthetic", "seed": seed, "skill": skill},
    ) as w:
        for cols, lengths, won in smac_like_episodes(
            n_episodes, n_agents=n_agents, seed=seed, skill=skill, max_len=max_len
        ):
            w.append_episodes(cols, lengths, won=won.tolist())
    return w.result
