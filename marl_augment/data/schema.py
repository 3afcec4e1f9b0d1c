"""The episode-store contract: which arrays exist, their dtypes and shapes, and how to check them.

One store holds the transitions of all episodes concatenated along axis 0 (no padding on disk).
Row ``t`` holds ``(o_t, s_t, legal_t, a_t, r_t, done_t)`` as in OG-MARL. Episode ``e`` is rows
``[episode_offsets[e], episode_offsets[e+1])``.

The checks here are shared by the writer (before anything reaches disk) and the reader (on open),
so both refuse the same things with the same one-line :class:`SchemaError`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SchemaError
from ..outputs import STORE_FORMAT

SCHEMA_VERSION = 1
FORMAT_NAME = STORE_FORMAT

#: Per-transition arrays: name -> (dtype, trailing dims expressed with spec fields, required).
#: The trailing dims use "N" (agents), "O" (obs dim), "S" (state dim), "A" (actions).
#: These are the discrete-action layouts; a continuous-action spec stores ``actions`` as
#: float32 rows of shape (N, A) instead (see :meth:`Spec.dtype` and :meth:`Spec.row_shape`).
TRANSITION_ARRAYS: dict[str, tuple[np.dtype, tuple[str, ...], bool]] = {
    "obs": (np.dtype("float32"), ("N", "O"), True),
    "state": (np.dtype("float32"), ("S",), False),
    "avail_actions": (np.dtype("bool"), ("N", "A"), False),
    "actions": (np.dtype("int32"), ("N",), True),
    "rewards": (np.dtype("float32"), (), True),
    "agent_rewards": (np.dtype("float32"), ("N",), False),
    "terminated": (np.dtype("bool"), (), True),
    "truncated": (np.dtype("bool"), (), True),
    "alive": (np.dtype("bool"), ("N",), False),
}
#: Per-episode arrays (besides ``episode_offsets``, which has E+1 entries).
EPISODE_ARRAYS: dict[str, tuple[np.dtype, bool]] = {
    "episode_origin": (np.dtype("uint8"), True),
    "episode_won": (np.dtype("bool"), False),
}
FLOAT_ARRAYS = ("obs", "state", "rewards", "agent_rewards")
OFFSETS = "episode_offsets"
ACTION_KINDS = ("discrete", "continuous")
CONTINUOUS_ACTIONS = (np.dtype("float32"), ("N", "A"))


@dataclass(frozen=True)
class Spec:
    """What a dataset looks like: agents, sizes and where it came from."""

    env_id: str
    """Environment id, e.g. ``smax:3m``, ``smac:3m``, ``pettingzoo:mpe2.simple_spread_v3``."""
    agent_ids: tuple[str, ...]
    """Agent names in the order of the agent axis."""
    obs_dim: int
    """Width of ``obs`` (the largest agent's observation size; smaller ones are zero padded)."""
    n_actions: int
    """Discrete: width of ``avail_actions`` and the bound of ``actions`` (largest agent's action
    count). Continuous: the width of an action vector (the largest agent's action dimension)."""
    state_dim: int | None = None
    """Width of ``state``, or None when the dataset has no global state."""
    obs_dims: tuple[int, ...] | None = None
    """True observation size per agent when agents differ (None: all equal ``obs_dim``)."""
    agent_n_actions: tuple[int, ...] | None = None
    """True action count per agent when agents differ (None: all equal ``n_actions``)."""
    has_avail_actions: bool = False
    """Whether the store holds legal-action masks (absent means every action is legal)."""
    has_alive: bool = False
    """Whether the store marks dead / absent agents in ``alive``."""
    has_agent_rewards: bool = False
    """Whether per-agent rewards are stored besides the team reward."""
    reward_mode: str = "sum"
    """How the team reward was formed from agent rewards (``sum``, ``mean``, ``max``, ``given``)."""
    max_episode_len: int | None = None
    """Longest episode in the dataset (filled in by the writer)."""
    action_kind: str = "discrete"
    """``discrete`` (``actions`` int32 (T, N)) or ``continuous`` (float32 (T, N, A)). Stores
    written before continuous actions existed have no such field and read as discrete."""
    action_low: tuple[tuple[float, ...], ...] | None = None
    """Continuous only: per agent, the lower bound of each of its action dimensions (its true
    dimension count long; padded dimensions of smaller agents hold 0 in the store)."""
    action_high: tuple[tuple[float, ...], ...] | None = None
    """Continuous only: per agent, the upper bound of each action dimension."""
    extras: Mapping[str, Any] = field(default_factory=dict)
    """Free-form JSON-compatible facts about the source (kept verbatim)."""

    @property
    def n_agents(self) -> int:
        return len(self.agent_ids)

    @property
    def has_state(self) -> bool:
        return self.state_dim is not None

    @property
    def continuous(self) -> bool:
        """Whether actions are real vectors (``actions`` float32 (T, N, A))."""
        return self.action_kind == "continuous"

    @property
    def action_dims(self) -> tuple[int, ...]:
        """True action count (discrete) or action dimension (continuous) of each agent."""
        return tuple(self.agent_n_actions or (self.n_actions,) * self.n_agents)

    def action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Continuous only: ``(low, high)``, each float32 (N, A); padded dimensions are [0, 0]."""
        if not self.continuous:
            raise SchemaError(f"{self.env_id} has discrete actions: they have no bounds")
        low = np.zeros((self.n_agents, self.n_actions), np.float32)
        high = np.zeros((self.n_agents, self.n_actions), np.float32)
        for i, d in enumerate(self.action_dims):
            low[i, :d] = self.action_low[i]
            high[i, :d] = self.action_high[i]
        return low, high

    def action_mask(self) -> np.ndarray:
        """(N, A) bool: which action entries are real (False for padding of smaller agents)."""
        return np.arange(self.n_actions)[None, :] < np.asarray(self.action_dims)[:, None]

    def dtype(self, name: str) -> np.dtype:
        """The dtype of per-transition array ``name`` in a store of this spec."""
        if name == "actions" and self.continuous:
            return CONTINUOUS_ACTIONS[0]
        return TRANSITION_ARRAYS[name][0]

    def dims(self) -> dict[str, int]:
        d = {"N": self.n_agents, "O": self.obs_dim, "A": self.n_actions}
        if self.state_dim is not None:
            d["S"] = self.state_dim
        return d

    def arrays(self) -> list[str]:
        """Names of the per-transition arrays a store with this spec holds."""
        present = {
            "state": self.has_state,
            "avail_actions": self.has_avail_actions,
            "alive": self.has_alive,
            "agent_rewards": self.has_agent_rewards,
        }
        return [n for n, (_, _, req) in TRANSITION_ARRAYS.items() if req or present.get(n, False)]

    def row_shape(self, name: str) -> tuple[int, ...]:
        dims = self.dims()
        axes = (
            CONTINUOUS_ACTIONS[1]
            if name == "actions" and self.continuous
            else TRANSITION_ARRAYS[name][1]
        )
        return tuple(dims[d] for d in axes)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["agent_ids"] = list(self.agent_ids)
        for k in ("obs_dims", "agent_n_actions"):
            if d[k] is not None:
                d[k] = list(d[k])
        for k in ("action_low", "action_high"):
            if d[k] is not None:
                d[k] = [[float(x) for x in row] for row in d[k]]
        if not self.continuous:  # discrete specs keep the fields of stores written before
            for k in ("action_kind", "action_low", "action_high"):
                d.pop(k)
        d["extras"] = dict(self.extras)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Spec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SchemaError(
                f"store spec has unknown fields {sorted(unknown)}; upgrade marl-augment"
            )
        if not isinstance(d, Mapping):
            raise SchemaError(
                "store spec is not an object; it was edited or damaged "
                "(a store's zarr.json, a saved model): re-create it from its source"
            )
        missing = [k for k in ("env_id", "agent_ids", "obs_dim", "n_actions") if k not in d]
        if missing:
            raise SchemaError(
                f"store spec lacks {missing}; it was edited or damaged "
                f"(a store's zarr.json, a saved model): re-create it from its source"
            )

        def bad(key: str, want: str) -> SchemaError:
            return SchemaError(
                f"store spec field {key!r} must be {want}, got {d[key]!r}; it was "
                f"edited or damaged: re-create the store or model from its source"
            )

        def is_size(v: Any, limit: int = 1 << 22) -> bool:  # caps absurd sizes before allocation
            return isinstance(v, int) and not isinstance(v, bool) and 1 <= v < limit

        kw = dict(d)
        if not isinstance(d["env_id"], str):
            raise bad("env_id", "a string")
        ids = d["agent_ids"]
        if (
            not isinstance(ids, list)
            or not all(isinstance(a, str) for a in ids)
            or len(ids) > 10_000
        ):
            raise bad("agent_ids", "a list of at most 10,000 strings")
        kw["agent_ids"] = tuple(ids)
        for k in ("obs_dim", "n_actions"):
            if not is_size(d[k]):
                raise bad(k, "a whole number in 1..4,194,303")
        for k in ("state_dim", "max_episode_len"):
            if d.get(k) is not None and not is_size(d[k]):
                raise bad(k, "a whole number in 1..4,194,303 or null")
        for k in ("obs_dims", "agent_n_actions"):
            if d.get(k) is not None:
                if not isinstance(d[k], list) or not all(is_size(x) for x in d[k]):
                    raise bad(k, "a list of whole numbers >= 1 or null")
                kw[k] = tuple(d[k])
        for k in ("has_avail_actions", "has_alive", "has_agent_rewards"):
            if k in d and not isinstance(d[k], bool):
                raise bad(k, "true or false")
        if "reward_mode" in d and not isinstance(d["reward_mode"], str):
            raise bad("reward_mode", "a string")
        if "action_kind" in d and d["action_kind"] not in ACTION_KINDS:
            raise bad("action_kind", f"one of {list(ACTION_KINDS)}")
        for k in ("action_low", "action_high"):
            if d.get(k) is not None:
                rows = d[k]
                if not isinstance(rows, list) or not all(
                    isinstance(r, list)
                    and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in r)
                    for r in rows
                ):
                    raise bad(k, "a list (one per agent) of lists of numbers, or null")
                kw[k] = tuple(tuple(float(x) for x in r) for r in rows)
        if "extras" in d and not isinstance(d["extras"], Mapping):
            raise bad("extras", "an object")
        spec = cls(**kw)
        spec.check()
        return spec

    def replace(self, **changes: Any) -> Spec:
        return dataclasses.replace(self, **changes)

    def check(self) -> None:
        """Refuse specs that cannot describe a store."""
        if not self.agent_ids:
            raise SchemaError("spec has no agents")
        if len(set(self.agent_ids)) != len(self.agent_ids):
            raise SchemaError(f"spec has duplicate agent ids {list(self.agent_ids)}")
        for name in ("obs_dim", "n_actions"):
            if int(getattr(self, name)) < 1:
                raise SchemaError(f"spec.{name} must be >= 1, got {getattr(self, name)}")
        if self.state_dim is not None and self.state_dim < 1:
            raise SchemaError(f"spec.state_dim must be >= 1 or None, got {self.state_dim}")
        for name, bound in (("obs_dims", self.obs_dim), ("agent_n_actions", self.n_actions)):
            v = getattr(self, name)
            if v is not None and (len(v) != self.n_agents or max(v) > bound or min(v) < 1):
                raise SchemaError(
                    f"spec.{name} must list one size in 1..{bound} per agent, got {list(v)}"
                )
        if self.action_kind not in ACTION_KINDS:
            raise SchemaError(
                f"spec.action_kind must be one of {list(ACTION_KINDS)}, got {self.action_kind!r}"
            )
        if self.continuous:
            self._check_bounds()
        elif self.action_low is not None or self.action_high is not None:
            raise SchemaError(
                "spec.action_low/action_high are for continuous actions; "
                "set action_kind='continuous' or drop the bounds"
            )
        try:
            json.dumps(dict(self.extras))
        except TypeError as exc:
            raise SchemaError(f"spec.extras must be JSON-serialisable: {exc}") from None

    def _check_bounds(self) -> None:
        if self.has_avail_actions:
            raise SchemaError(
                "a continuous-action spec cannot have legal-action masks "
                "(has_avail_actions); drop them or make the actions discrete"
            )
        if self.action_low is None or self.action_high is None:
            raise SchemaError(
                "a continuous-action spec needs action_low and action_high "
                "(per agent, one bound per action dimension)"
            )
        dims = self.action_dims
        for name in ("action_low", "action_high"):
            rows = getattr(self, name)
            if len(rows) != self.n_agents or any(len(r) != d for r, d in zip(rows, dims)):
                raise SchemaError(
                    f"spec.{name} must list, per agent, one bound per action "
                    f"dimension {list(dims)}; got lengths "
                    f"{[len(r) for r in rows]}"
                )
            if not all(np.isfinite(x) for r in rows for x in r):
                raise SchemaError(
                    f"spec.{name} holds a non-finite bound; continuous actions "
                    f"need finite bounds (clip or rescale the action space)"
                )
        for i, (lo, hi) in enumerate(zip(self.action_low, self.action_high)):
            if any(a > b for a, b in zip(lo, hi)):
                raise SchemaError(
                    f"spec.action_low exceeds spec.action_high for agent "
                    f"{self.agent_ids[i]!r}: {list(lo)} > {list(hi)}"
                )


def check_columns(
    columns: Mapping[str, np.ndarray], spec: Spec, *, where: str = "", row0: int = 0
) -> None:
    """Check a block of transition rows against the spec (dtype, shape, values).

    ``row0`` is the global index of the block's first row, used in messages.
    """
    at = f" {where}" if where else ""
    expected = spec.arrays()
    missing = [n for n in expected if n not in columns]
    if missing:
        raise SchemaError(f"missing array(s) {missing}{at}")
    extra = [n for n in columns if n not in expected]
    if extra:
        raise SchemaError(
            f"unexpected array(s) {extra}{at}: the spec does not declare them "
            f"(set has_state/has_avail_actions/has_alive/has_agent_rewards)"
        )
    n_rows = None
    for name in expected:
        arr = columns[name]
        dtype = spec.dtype(name)
        if arr.dtype != dtype:
            raise SchemaError(f"array {name!r}{at} has dtype {arr.dtype}, expected {dtype}")
        want = spec.row_shape(name)
        if arr.shape[1:] != want:
            raise SchemaError(
                f"array {name!r}{at} has rows of shape {arr.shape[1:]}, expected {want}"
            )
        if n_rows is None:
            n_rows = arr.shape[0]
        elif arr.shape[0] != n_rows:
            raise SchemaError(
                f"array {name!r}{at} has {arr.shape[0]} rows but {expected[0]!r} has {n_rows} "
                f"(an array is truncated or padded)"
            )
    for name in FLOAT_ARRAYS:
        if name in columns:
            finite = np.isfinite(columns[name])
            if not finite.all():
                bad = np.argwhere(~finite)[0]
                raise SchemaError(
                    f"array {name!r}{at} holds a non-finite value ({columns[name][tuple(bad)]}) "
                    f"at row {row0 + int(bad[0])}"
                )
    actions = columns["actions"]
    if spec.continuous:
        _check_continuous_actions(actions, spec, at, row0)
    elif actions.size:
        lo, hi = int(actions.min()), int(actions.max())
        if lo < 0 or hi >= spec.n_actions:
            bad = np.argwhere((actions < 0) | (actions >= spec.n_actions))[0]
            raise SchemaError(
                f"array 'actions'{at} holds action {int(actions[tuple(bad)])} at row "
                f"{row0 + int(bad[0])}, agent {int(bad[1])}; expected 0..{spec.n_actions - 1}"
            )
    if "avail_actions" in columns and actions.size:
        avail = columns["avail_actions"]
        taken_legal = np.take_along_axis(avail, actions[..., None].astype(np.intp), axis=-1)[..., 0]
        if "alive" in columns:
            taken_legal = taken_legal | ~columns["alive"]
        if not taken_legal.all():
            r, a = (int(x) for x in np.argwhere(~taken_legal)[0])
            raise SchemaError(
                f"array 'actions'{at} holds an illegal action: agent {a} took action "
                f"{int(actions[r, a])} at row {row0 + r}, which 'avail_actions' marks unavailable"
            )
    both = columns["terminated"] & columns["truncated"]
    if both.any():
        r = int(np.argmax(both))
        raise SchemaError(
            f"row {row0 + r}{at} is marked both terminated and truncated; an episode ends one way"
        )


def _check_continuous_actions(actions: np.ndarray, spec: Spec, at: str, row0: int) -> None:
    if not actions.size:
        return
    finite = np.isfinite(actions)
    if not finite.all():
        r, a, d = (int(x) for x in np.argwhere(~finite)[0])
        raise SchemaError(
            f"array 'actions'{at} holds a non-finite value ({actions[r, a, d]}) at "
            f"row {row0 + r}, agent {a}, dimension {d}"
        )
    low, high = spec.action_bounds()
    mask = spec.action_mask()
    outside = ((actions < low) | (actions > high)) & mask
    if outside.any():
        r, a, d = (int(x) for x in np.argwhere(outside)[0])
        raise SchemaError(
            f"array 'actions'{at} holds {float(actions[r, a, d]):.6g} at row {row0 + r}, agent "
            f"{a}, dimension {d}, outside its bounds [{low[a, d]:.6g}, {high[a, d]:.6g}]; clip the "
            f"actions or widen spec.action_low/action_high"
        )
    padded = (actions != 0) & ~mask
    if padded.any():
        r, a, d = (int(x) for x in np.argwhere(padded)[0])
        raise SchemaError(
            f"array 'actions'{at} holds {float(actions[r, a, d]):.6g} in padding "
            f"(row {row0 + r}, agent {a}, dimension {d} >= its "
            f"{spec.action_dims[a]} dimensions); padding must be 0"
        )


def check_offsets(offsets: np.ndarray, n_rows: int) -> None:
    """Offsets must start at 0, strictly increase (no empty episode) and end at ``n_rows``."""
    if offsets.ndim != 1 or offsets.shape[0] < 1:
        raise SchemaError(
            f"array {OFFSETS!r} must be 1-D with E+1 entries, got shape {offsets.shape}"
        )
    if offsets.dtype != np.int64:
        raise SchemaError(f"array {OFFSETS!r} has dtype {offsets.dtype}, expected int64")
    if offsets[0] != 0:
        raise SchemaError(f"array {OFFSETS!r} must start at 0, starts at {int(offsets[0])}")
    steps = np.diff(offsets)
    if (steps <= 0).any():
        e = int(np.argmax(steps <= 0))
        raise SchemaError(
            f"array {OFFSETS!r} is not strictly increasing at episode {e} "
            f"({int(offsets[e])} -> {int(offsets[e + 1])})"
        )
    if offsets[-1] != n_rows:
        raise SchemaError(
            f"array {OFFSETS!r} covers rows 0..{int(offsets[-1])} but the store has {n_rows} rows"
        )


def check_episode_ends(offsets: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> None:
    """Every episode ends with exactly one of terminated / truncated, and only there."""
    done = terminated | truncated
    ends = offsets[1:] - 1
    not_ended = ~done[ends]
    if not_ended.any():
        e = int(np.argmax(not_ended))
        raise SchemaError(
            f"episode {e} (rows {int(offsets[e])}..{int(offsets[e + 1]) - 1}) has neither "
            f"'terminated' nor 'truncated' set on its last row"
        )
    is_end = np.zeros(done.shape[0], dtype=bool)
    is_end[ends] = True
    early = done & ~is_end
    if early.any():
        r = int(np.argmax(early))
        e = int(np.searchsorted(offsets, r, side="right") - 1)
        raise SchemaError(
            f"row {r} is marked done but is not the last row of episode {e}; "
            f"episode boundaries and done flags disagree"
        )


def normalise_columns(columns: Mapping[str, Any], spec: Spec) -> dict[str, np.ndarray]:
    """Cast user-supplied columns to the contract dtypes (refusing lossy casts of actions)."""
    out: dict[str, np.ndarray] = {}
    for name, value in columns.items():
        if name not in TRANSITION_ARRAYS:
            raise SchemaError(f"unknown array {name!r}; a store holds {sorted(TRANSITION_ARRAYS)}")
        arr = np.asarray(value)
        dtype = spec.dtype(name)
        if name == "actions" and spec.continuous:
            if arr.dtype.kind not in "fiu":
                raise SchemaError(
                    f"array 'actions' has dtype {arr.dtype}; continuous actions are numbers"
                )
            if arr.ndim == 2 and spec.n_actions == 1:  # (T, N) for one-dimensional actions
                arr = arr[..., None]
        elif name == "actions" and arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise SchemaError(
                    "array 'actions' holds non-integer values but the spec declares discrete "
                    "actions; for continuous actions set action_kind='continuous' with bounds"
                )
        out[name] = np.ascontiguousarray(arr, dtype=dtype)
    return out


def episode_ids(offsets: np.ndarray) -> np.ndarray:
    """Episode index of every row."""
    lengths = np.diff(offsets)
    return np.repeat(np.arange(lengths.shape[0], dtype=np.int64), lengths)


def episode_returns(offsets: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """Undiscounted team return of each episode."""
    if offsets.shape[0] <= 1:
        return np.zeros(0, dtype=np.float64)
    return (
        np.add.reduceat(rewards.astype(np.float64), offsets[:-1])
        if rewards.size
        else np.zeros(offsets.shape[0] - 1)
    )


def check_names(names: Sequence[str]) -> None:
    for n in names:
        if n not in TRANSITION_ARRAYS and n not in EPISODE_ARRAYS and n != OFFSETS:
            raise SchemaError(f"unknown array {n!r} in store")


def episode_stats(
    lengths: np.ndarray,
    returns: np.ndarray,
    origin: np.ndarray,
    won: np.ndarray | None,
    ends: np.ndarray | None = None,
) -> dict[str, Any]:
    """Summary statistics of a dataset from per-episode arrays.

    ``ends`` (optional, per episode): True where the episode terminated, False where truncated.
    """
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    out: dict[str, Any] = {
        "episodes": int(lengths.shape[0]),
        "transitions": int(lengths.sum()),
        "real_episodes": int((origin == 0).sum()),
        "synthetic_episodes": int((origin != 0).sum()),
    }
    if lengths.size:
        out.update(
            {
                "return_mean": float(returns.mean()),
                "return_std": float(returns.std()),
                "return_min": float(returns.min()),
                "return_max": float(returns.max()),
                "return_quantiles": {
                    str(q): float(v) for q, v in zip(qs, np.quantile(returns, qs))
                },
                "length_mean": float(lengths.mean()),
                "length_min": int(lengths.min()),
                "length_max": int(lengths.max()),
                "length_quantiles": {
                    str(q): float(v) for q, v in zip(qs, np.quantile(lengths, qs))
                },
            }
        )
    if ends is not None:
        out["terminated"] = int(ends.sum())
        out["truncated"] = int((~ends).sum())
    if won is not None:
        out["win_rate"] = float(won.mean())
    return out
