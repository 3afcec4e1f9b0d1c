"""The adapter: PettingZoo logs to an episode store, streaming (``--from pettingzoo-log``)."""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...data.dataset import StoreWriter
from ...data.schema import Spec
from ...data.store import check_output_path
from ...errors import (
    ConfigError,
    FormatError,
    NotFound,
    SchemaError,
)
from .format import (
    LOG_FORMAT,
    LOG_VERSION,
    MAX_ACTIONS,
    MAX_AGENTS,
    MAX_OBS_DIM,
    REWARD_MODES,
    WIN_KEYS,
    interrupted,
    read_log,
)


@dataclass
class PettingZooLogConfig:
    """Options of the ``pettingzoo-log`` adapter."""

    reward: str = "sum"
    """Team reward from the agents' rewards: ``sum`` (default), ``mean`` or ``max``."""
    env_id: str | None = None
    """Override the env id recorded in the log header."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Extra facts to keep in the store's spec."""
    clip_actions: bool = False
    """Continuous actions: clip actions outside the header's bounds to them (as most envs do
    when stepping) instead of refusing the log; the store's source counts the clipped values."""


class _Episode:
    """Rows of one episode being assembled."""

    def __init__(self) -> None:
        self.rows: dict[str, list[np.ndarray]] = {
            k: []
            for k in (
                "obs",
                "state",
                "avail_actions",
                "actions",
                "rewards",
                "agent_rewards",
                "alive",
            )
        }
        self.steps = 0


class PettingZooLogAdapter:
    """Converts ``marl-augment/pettingzoo-log`` files into an episode store (streaming)."""

    Config = PettingZooLogConfig
    name = "pettingzoo-log"

    def __init__(self, config: PettingZooLogConfig | None = None) -> None:
        self.config = config or PettingZooLogConfig()
        if self.config.reward not in REWARD_MODES:
            raise ConfigError(f"reward must be one of {REWARD_MODES}, got {self.config.reward!r}")

    def convert(
        self,
        src: str | os.PathLike,
        out: str | os.PathLike,
        *,
        overwrite: bool = False,
        progress: Any = None,
        source: Mapping[str, Any] | None = None,
    ):
        """Convert log ``src`` into a new store at ``out``; ``source`` adds facts to its attrs."""
        src = Path(src)
        if not src.exists():
            raise NotFound(f"no log file at {str(src)!r}")
        check_output_path(out, overwrite=overwrite, inputs=[src])
        records = read_log(src)
        try:
            lineno, header = next(records)
        except StopIteration:
            raise FormatError(f"{src.name} is empty: expected a header line") from None
        spec, ctx = self._spec_from_header(src, lineno, header)
        report = {
            "cut_episodes": 0,
            "dropped_unfinished": 0,
            "empty_episodes": 0,
            "interrupted_episodes": 0,
        }
        source = {
            "adapter": self.name,
            "path": str(src.resolve()),
            "sha256": _sha256(src),
            "log_version": header.get("version"),
            "meta": header.get("meta", {}),
            **dict(source or {}),
        }
        with StoreWriter(out, spec, overwrite=overwrite, source=source, inputs=[src]) as w:
            for cols, won in self._episodes(src, records, ctx, report):
                w.append_episode(cols, won=won)
                if progress is not None:
                    progress(cols["actions"].shape[0])
            w.source.update(report)
        if report["dropped_unfinished"]:
            warnings.warn(
                f"{src.name}: the last episode was unfinished and was dropped", stacklevel=2
            )
        return w.result

    # -- header -----------------------------------------------------------------------------
    def _spec_from_header(self, src: Path, lineno: int, h: Mapping[str, Any]):
        if h.get("format") != LOG_FORMAT:
            raise FormatError(
                f"{src.name} line {lineno} is not a {LOG_FORMAT} header (got format="
                f"{h.get('format')!r}); see docs/formats.md"
            )
        if h.get("version") != LOG_VERSION:
            raise FormatError(
                f"{src.name}: log version {h.get('version')} is not supported (expected "
                f"{LOG_VERSION})"
            )
        name = src.name
        agents = h.get("agents")
        if (
            not isinstance(agents, list)
            or not agents
            or len(agents) > MAX_AGENTS
            or not all(isinstance(a, str) and 0 < len(a) <= 200 for a in agents)
        ):
            raise FormatError(
                f"{name} header: 'agents' must be a list of 1..{MAX_AGENTS} agent "
                f"names (strings); see docs/formats.md"
            )
        if len(set(agents)) != len(agents):
            raise FormatError(f"{name} header: 'agents' lists an agent twice")
        obs_dims = _per_agent(h.get("obs_dims"), agents, name, "obs_dims", MAX_OBS_DIM)
        acts = _per_agent(h.get("n_actions"), agents, name, "n_actions", MAX_ACTIONS)
        state_dim = h.get("state_dim")
        if state_dim is not None:
            state_dim = _bounded_int(state_dim, f"{name} header: 'state_dim'", MAX_OBS_DIM)
        has_mask = h.get("has_action_mask", False)
        if not isinstance(has_mask, bool):
            raise FormatError(
                f"{name} header: 'has_action_mask' must be true or false, got {has_mask!r}"
            )
        if h.get("env_id") is not None and not isinstance(h.get("env_id"), str):
            raise FormatError(f"{name} header: 'env_id' must be a string, got {h.get('env_id')!r}")
        if not isinstance(h.get("meta", {}), dict):
            raise FormatError(f"{name} header: 'meta' must be an object")
        hetero_act = len(set(acts)) > 1
        hetero_obs = len(set(obs_dims)) > 1
        kind = h.get("action_kind", "discrete")
        if kind not in ("discrete", "continuous"):
            raise FormatError(
                f"{name} header: 'action_kind' must be 'discrete' or 'continuous', got {kind!r}"
            )
        bounds: dict[str, Any] = {}
        if kind == "continuous":
            if has_mask:
                raise FormatError(f"{name} header: continuous actions cannot have action masks")
            for key in ("action_low", "action_high"):
                d = h.get(key)
                if not isinstance(d, dict) or any(a not in d for a in agents):
                    raise FormatError(
                        f"{name} header: '{key}' must map every agent to its "
                        f"bounds (continuous actions)"
                    )
                rows = []
                for a, n_a in zip(agents, acts):
                    b = _floats(d[a], f"{name} header", f"'{key}' of {a!r}")
                    if b.shape[0] != n_a:
                        raise FormatError(
                            f"{name} header: '{key}' of {a!r} has {b.shape[0]} "
                            f"values, its action has {n_a} dimensions"
                        )
                    rows.append(tuple(float(x) for x in b))
                bounds[key] = tuple(rows)
        spec = Spec(
            env_id=self.config.env_id or str(h.get("env_id") or "pettingzoo:unknown"),
            agent_ids=tuple(agents),
            obs_dim=max(obs_dims),
            n_actions=max(acts),
            state_dim=state_dim,
            obs_dims=tuple(obs_dims) if hetero_obs else None,
            agent_n_actions=tuple(acts) if hetero_act else None,
            has_avail_actions=kind == "discrete" and (has_mask or hetero_act),
            has_alive=True,
            has_agent_rewards=True,
            reward_mode=self.config.reward,
            extras=dict(self.config.extras),
            action_kind=kind,
            **bounds,
        )
        try:
            spec.check()
        except SchemaError as exc:
            raise FormatError(f"{name} header: {exc}") from None
        if spec.continuous:
            low, high = spec.action_bounds()
            ctx_bounds = (low.astype(np.float64), high.astype(np.float64))
        else:
            ctx_bounds = None
        ctx = {
            "agents": agents,
            "index": {a: i for i, a in enumerate(agents)},
            "obs_dims": obs_dims,
            "acts": acts,
            "has_mask": has_mask,
            "spec": spec,
            "bounds": ctx_bounds,
        }
        return spec, ctx

    # -- episodes ---------------------------------------------------------------------------
    def _episodes(
        self, src: Path, records, ctx, report
    ) -> Iterator[tuple[dict[str, np.ndarray], bool | None]]:
        spec: Spec = ctx["spec"]
        ep: _Episode | None = None
        cur: dict[str, Any] = {}
        for lineno, rec in records:
            kind = rec.get("t")
            where = f"{src.name} line {lineno}"
            if kind == "reset":
                if ep is not None and ep.steps:
                    report["cut_episodes"] += 1  # reset while agents were live: cut by the user
                    yield self._finish(ep, spec, terminated=False, won=None)
                elif ep is not None:
                    report["empty_episodes"] += 1
                ep = _Episode()
                cur = self._observation(rec, ctx, where)
            elif kind == "step":
                if ep is None:
                    raise FormatError(
                        f"{where}: a step before any reset, or after the episode ended"
                    )
                self._step(ep, rec, cur, ctx, where, report)
                terms = rec.get("terminations") or {}
                truncs = rec.get("truncations") or {}
                for key, d in (("terminations", terms), ("truncations", truncs)):
                    if not isinstance(d, dict) or not all(isinstance(x, bool) for x in d.values()):
                        raise FormatError(f"{where}: '{key}' must map agents to true/false")
                if not isinstance(rec.get("infos") or {}, dict):
                    raise FormatError(f"{where}: 'infos' must be an object keyed by agent")
                done = {a for a in rec["actions"] if terms.get(a) or truncs.get(a)}
                cur = self._observation(rec, ctx, where)
                # PettingZoo drops done agents from env.agents; the episode ends when none is left
                if not set(cur["obs"]) - done:
                    if interrupted(rec.get("infos") or {}):  # the env cut it short: not data
                        report["interrupted_episodes"] += 1
                        ep = None
                        continue
                    terminated = any(bool(terms.get(a)) for a in rec["actions"])
                    yield self._finish(
                        ep, spec, terminated=terminated, won=_won(rec.get("infos") or {})
                    )
                    ep = None
            else:
                raise FormatError(
                    f"{where}: unknown record type t={kind!r} (expected 'reset' or 'step')"
                )
        if ep is not None and ep.steps:
            report["dropped_unfinished"] += 1

    def _observation(self, rec, ctx, where) -> dict[str, Any]:
        spec: Spec = ctx["spec"]
        obs_in = rec.get("obs")
        if not isinstance(obs_in, dict):
            raise FormatError(f"{where}: 'obs' must be an object mapping agents to observations")
        masks_in = rec.get("action_mask", {}) or {}
        infos = rec.get("infos", {}) or {}
        if not isinstance(masks_in, dict) or not isinstance(infos, dict):
            raise FormatError(f"{where}: 'action_mask' and 'infos' must be objects keyed by agent")
        out: dict[str, Any] = {"obs": {}, "mask": {}}
        for a, o in obs_in.items():
            i = ctx["index"].get(a)
            if i is None:
                raise FormatError(f"{where}: unknown agent {a!r} (header lists {ctx['agents']})")
            mask = masks_in.get(a)
            if isinstance(o, dict):
                mask = o.get("action_mask", mask)
                o = o.get("observation")
            if mask is None and isinstance(infos.get(a), dict):
                mask = infos[a].get("action_mask")
            vec = _floats(o, where, f"obs of {a!r}")
            if vec.shape[0] != ctx["obs_dims"][i]:
                raise FormatError(
                    f"{where}: obs of {a!r} has {vec.shape[0]} values, header says "
                    f"{ctx['obs_dims'][i]}"
                )
            out["obs"][a] = vec
            if mask is not None:
                try:
                    m = np.asarray(mask, dtype=np.float64)
                except (TypeError, ValueError):
                    raise FormatError(
                        f"{where}: action mask of {a!r} is not a list of 0/1"
                    ) from None
                if m.ndim == 1 and not np.isin(m, (0.0, 1.0)).all():
                    raise FormatError(f"{where}: action mask of {a!r} holds values other than 0/1")
                if m.ndim != 1 or m.shape[0] != ctx["acts"][i]:
                    raise FormatError(
                        f"{where}: action mask of {a!r} must have {ctx['acts'][i]} entries"
                    )
                out["mask"][a] = m.astype(bool)
            elif ctx["has_mask"]:
                raise FormatError(
                    f"{where}: no action mask for {a!r} but the header says has_action_mask"
                )
        if spec.state_dim is not None:
            if "state" not in rec:
                raise FormatError(
                    f"{where}: no 'state' but the header says state_dim={spec.state_dim}"
                )
            st = _floats(rec["state"], where, "state")
            if st.shape[0] != spec.state_dim:
                raise FormatError(
                    f"{where}: state has {st.shape[0]} values, header says {spec.state_dim}"
                )
            out["state"] = st
        return out

    def _step(self, ep: _Episode, rec, cur, ctx, where, report) -> None:
        spec: Spec = ctx["spec"]
        actions = rec.get("actions")
        rewards = rec.get("rewards", {})
        if not isinstance(actions, dict) or not isinstance(rewards, dict):
            raise FormatError(f"{where}: 'actions' and 'rewards' must be objects keyed by agent")
        n, o_dim, n_act = spec.n_agents, spec.obs_dim, spec.n_actions
        obs = np.zeros((n, o_dim), np.float32)
        avail = np.zeros((n, n_act), bool)
        act = np.zeros((n, n_act) if spec.continuous else n, spec.dtype("actions"))
        rew = np.zeros(n, np.float32)
        alive = np.zeros(n, bool)
        for a, v in actions.items():
            i = ctx["index"].get(a)
            if i is None:
                raise FormatError(f"{where}: unknown agent {a!r} (header lists {ctx['agents']})")
            if a not in cur["obs"]:
                raise FormatError(f"{where}: agent {a!r} acted without an observation before")
            o = cur["obs"][a]
            obs[i, : o.shape[0]] = o
            if spec.continuous:
                act[i, : ctx["acts"][i]] = self._continuous(v, a, i, ctx, where, report)
                rew[i] = _reward(rewards.get(a, 0.0), a, where)
                alive[i] = True
                continue
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not math.isfinite(v)
                or float(v) != int(v)
            ):
                raise FormatError(
                    f"{where}: action of {a!r} is {v!r}, but the header declares discrete "
                    f"actions (a whole number); record continuous actions with action_kind "
                    f"'continuous' in the header"
                )
            v = int(v)
            if not 0 <= v < ctx["acts"][i]:
                raise FormatError(
                    f"{where}: action {v} of {a!r} is outside 0..{ctx['acts'][i] - 1}"
                )
            m = cur["mask"].get(a)
            if m is not None:
                avail[i, : m.shape[0]] = m
                if not m[v]:
                    raise FormatError(
                        f"{where}: {a!r} took action {v}, which its action mask forbids"
                    )
            else:
                avail[i, : ctx["acts"][i]] = True
            act[i] = v
            rew[i] = _reward(rewards.get(a, 0.0), a, where)
            alive[i] = True
        if not alive.any():
            raise FormatError(f"{where}: a step in which no agent acted")
        team = {"sum": np.sum, "mean": np.mean, "max": np.max}[self.config.reward](
            rew[alive].astype(np.float64)
        )
        for k, v in (
            ("obs", obs),
            ("avail_actions", avail),
            ("actions", act),
            ("agent_rewards", rew),
            ("alive", alive),
            ("rewards", np.float32(team)),
        ):
            ep.rows[k].append(v)
        if spec.state_dim is not None:
            ep.rows["state"].append(cur["state"])
        ep.steps += 1

    def _continuous(self, v: Any, a: str, i: int, ctx, where: str, report) -> np.ndarray:
        if not isinstance(v, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in v
        ):
            raise FormatError(
                f"{where}: action of {a!r} is {v!r}; the header declares "
                f"continuous actions (a list of {ctx['acts'][i]} numbers)"
            )
        x = np.asarray(v, np.float64)
        if x.shape[0] != ctx["acts"][i]:
            raise FormatError(
                f"{where}: action of {a!r} has {x.shape[0]} values, its action "
                f"space has {ctx['acts'][i]} dimensions"
            )
        if not np.isfinite(x).all():
            raise FormatError(f"{where}: action of {a!r} holds a non-finite value (NaN or inf)")
        lo, hi = (b[i, : x.shape[0]] for b in ctx["bounds"])
        out = (x < lo) | (x > hi)
        if out.any():
            if not self.config.clip_actions:
                d = int(np.argmax(out))
                raise FormatError(
                    f"{where}: action of {a!r} is {x[d]:.6g} in dimension {d}, outside its "
                    f"bounds [{lo[d]:.6g}, {hi[d]:.6g}]; convert with clip_actions=true to clip "
                    f"it as the env does"
                )
            report["clipped_action_values"] = report.get("clipped_action_values", 0) + int(
                out.sum()
            )
            x = np.clip(x, lo, hi)
        return x.astype(np.float32)

    def _finish(self, ep: _Episode, spec: Spec, *, terminated: bool, won: bool | None):
        keep = spec.arrays()
        cols = {k: np.stack(v) for k, v in ep.rows.items() if v and k in keep}
        t = ep.steps
        cols["terminated"] = np.zeros(t, bool)
        cols["truncated"] = np.zeros(t, bool)
        (cols["terminated"] if terminated else cols["truncated"])[-1] = True
        return cols, won


def _reward(r: Any, a: str, where: str) -> float:
    if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r):
        raise FormatError(f"{where}: reward of {a!r} is {r!r}, not a finite number")
    return float(r)


def _bounded_int(v: Any, what: str, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
        raise FormatError(f"{what} must be a whole number in 1..{hi}, got {v!r}")
    return v


def _per_agent(d: Any, agents: list[str], name: str, key: str, hi: int) -> list[int]:
    if not isinstance(d, dict) or any(a not in d for a in agents):
        raise FormatError(f"{name} header: '{key}' must map every agent to its size")
    return [_bounded_int(d[a], f"{name} header: '{key}' of {a!r}", hi) for a in agents]


def _floats(values: Any, where: str, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise FormatError(f"{where}: {what} is not a list of numbers") from None
    if not np.isfinite(arr).all():
        raise FormatError(f"{where}: {what} holds a non-finite value (NaN or inf)")
    return arr.astype(np.float32)


def _won(infos: Mapping[str, Any]) -> bool | None:
    for info in infos.values():
        if isinstance(info, Mapping):
            for k in WIN_KEYS:
                if k in info and isinstance(info[k], (bool, int)):
                    return bool(info[k])
    return None


def _sha256(path: Path) -> str:

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()
