"""Parts shared by the offline MARL baselines (OG-MARL's discrete-action systems, in torch).

- :class:`AgentNet`: Linear(64) → ReLU → GRU(64) → ReLU → Linear(n_actions), one network for all
  agents, the observation extended by a one-hot agent id; the recurrent state starts from zeros
  at the start of every training window and of every episode when acting.
- :class:`SequenceSampler`: batches of fixed-length windows (``Dataset.sequences``' layout, with
  a step mask), drawn uniformly with replacement; batch ``k`` depends only on ``(seed, k)``, so a
  resumed run sees exactly the batches an uninterrupted one would.
- :class:`OfflineAlgorithm`: the interface of an algorithm (config dataclass, ``update``,
  greedy acting, saving a policy); :class:`TrainedPolicy` is the batch policy
  ``policy(obs, avail, first) -> actions`` that :func:`marl_augment.envs.evaluate.evaluate` runs.

Illegal actions are masked wherever a max or an argmax is taken; steps outside an episode
(``mask`` False) never enter a loss.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..data.dataset import Dataset
from ..data.schema import Spec
from ..data.windows import window_rows
from ..errors import ConfigError
from ..registry import config_from_options
from ..torch_state import keep_freed_heap, resolve_device
from . import keys_for

#: logit / Q value given to illegal actions before a max (finite, so no NaN from inf - inf)
NEG = -1e9
POLICY_FILE = "policy.json"
WEIGHTS_FILE = "weights.safetensors"


@dataclass
class AlgoConfig:
    """Hyper-parameters every baseline shares (OG-MARL's defaults)."""

    lr: float = 3e-4
    """Adam learning rate."""
    batch_size: int = 32
    """Training windows per update."""
    seq_len: int = 20
    """Length of a training window (steps)."""
    period: int = 10
    """Windows start every this many steps inside an episode (overlap, so every step is a TD
    target in some window; the last window of an episode is aligned to its end)."""
    gamma: float = 0.99
    """Discount factor."""
    hidden: int = 64
    """Width of the agent network's linear and GRU layers."""
    max_grad_norm: float = 20.0
    """Gradients are clipped to this global norm."""
    synthetic_share: float | None = None
    """Share of each batch's windows drawn from synthetic episodes (those an augmenter added);
    the rest come from the real ones. None draws all windows alike, as the data holds them. One
    augmented store can so be trained at several real:synthetic mixes without rewriting it."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``, ..."""


#: the most parameters an algorithm's networks may hold (targets included): 2^28 float32 is
#: 1 GiB, ~3 GiB with Adam's moments. Far above any MARL baseline (a QMIX on 27m_vs_30m has
#: ~0.2M); it turns a typo (``-o hidden=640000``) or a tampered policy.json into one line
#: instead of an allocation of terabytes.
MAX_PARAMETERS = 1 << 28
#: config fields that set a network's width, named when :data:`MAX_PARAMETERS` is exceeded
WIDTHS = ("hidden", "mixer_embed", "hypernet_embed")


class AgentNet(nn.Module):
    """Linear → ReLU → GRU → ReLU → Linear over (rows, time, features).

    ``in_scale`` (a buffer, saved with the weights) multiplies the inputs first: 1 for features
    already within [-1, 1], 1/max|x| for larger ones (SMAX's positions), see :func:`input_scales`.
    """

    def __init__(self, in_dim: int, n_actions: int, hidden: int = 64) -> None:
        super().__init__()
        self.register_buffer("in_scale", torch.ones(in_dim))
        self.fc = nn.Linear(in_dim, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, n_actions)

    @staticmethod
    def size(in_dim: int, n_actions: int, hidden: int) -> int:
        """Parameters of an ``AgentNet(in_dim, n_actions, hidden)``, counted without building it."""
        return (in_dim + 1) * hidden + 6 * hidden * (hidden + 1) + (hidden + 1) * n_actions

    def forward(
        self, x: torch.Tensor, h: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        y, h = self.gru(torch.relu(self.fc(x * self.in_scale)), h)
        return self.out(torch.relu(y)), h


def input_scales(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature input scales of observations and of the mixer's state: 1 / max(1, max|x|).

    Features within [-1, 1] pass unchanged; larger ones (absolute positions, hit points) are
    brought into [-1, 1], so the hyper-networks do not start with huge mixing weights.
    """
    obs = ds.columns["obs"]
    state = ds.columns["state"] if "state" in ds.columns else obs.reshape(obs.shape[0], -1)

    def scale(a: np.ndarray) -> np.ndarray:
        top = np.abs(a).max(axis=tuple(range(a.ndim - 1))) if a.shape[0] else np.ones(a.shape[-1])
        return (1.0 / np.maximum(top, 1.0)).astype(np.float32)

    return scale(obs), scale(state)


def agent_inputs(obs: torch.Tensor) -> torch.Tensor:
    """(B, T, N, O) observations → (B·N, T, O + N) rows with a one-hot agent id appended."""
    b, t, n, _ = obs.shape
    ids = torch.eye(n, device=obs.device, dtype=obs.dtype).expand(b, t, n, n)
    x = torch.cat([obs, ids], dim=-1)
    return x.permute(0, 2, 1, 3).reshape(b * n, t, -1)


def per_agent(y: torch.Tensor, b: int, n: int) -> torch.Tensor:
    """(B·N, T, A) network outputs → (B, T, N, A)."""
    return y.reshape(b, n, y.shape[1], -1).permute(0, 2, 1, 3)


def run_agents(net: AgentNet, obs: torch.Tensor) -> torch.Tensor:
    """Outputs of ``net`` for every agent and step of a (B, T, N, O) window batch: (B, T, N, A)."""
    b, _, n, _ = obs.shape
    y, _ = net(agent_inputs(obs))
    return per_agent(y, b, n)


def masked(values: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    """``values`` with illegal entries set to a large negative number."""
    return values.masked_fill(~legal, NEG)


def masked_argmax(values: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    return masked(values, legal).argmax(-1)


def legal_or_all(avail: torch.Tensor) -> torch.Tensor:
    """Legal masks where rows without any legal action (padding) count every action as legal."""
    return avail | ~avail.any(-1, keepdim=True)


def masked_mean(x: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the True entries of ``where`` (0 when there are none); no gradient
    flows from the other entries, whatever they hold."""
    w = where.to(x.dtype)
    return torch.where(where, x, torch.zeros_like(x)).sum() / w.sum().clamp(min=1.0)


def transition_rows(
    mask: torch.Tensor, term: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The transitions of a batch of windows (B, T), for learners that train on single steps:
    ``rows`` marks steps with a successor in the window or a terminal one, ``successors`` the
    steps that follow them, and ``boot`` (over ``rows``' entries, in order) those whose value
    is bootstrapped from their successor, one per ``successors`` entry."""
    has_next = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)
    rows = mask & (has_next | term)
    successors = torch.cat([torch.zeros_like(rows[:, :1]), rows[:, :-1] & has_next[:, :-1]], dim=1)
    return rows, successors, (has_next & ~term)[rows]


def cross_entropy(
    logits: torch.Tensor, actions: torch.Tensor, legal: torch.Tensor, where: torch.Tensor
) -> torch.Tensor:
    """Behaviour-cloning loss: CE of the data actions under legal-masked logits, over ``where``."""
    logp = torch.log_softmax(masked(logits, legal), dim=-1)
    nll = -logp.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return masked_mean(nll, where)


# -- data ---------------------------------------------------------------------------------------
def state_dim_of(spec: Spec) -> int:
    """Width of the mixer's state: the dataset's state, else all agents' observations."""
    return int(spec.state_dim) if spec.has_state else spec.n_agents * spec.obs_dim


class SequenceSampler:
    """Uniformly drawn batches of training windows as tensors on ``device``.

    Fields: ``obs`` (B, T, N, O), ``state`` (B, T, S; the agents' observations concatenated when
    the dataset has no state), ``avail`` (B, T, N, A) bool (all True when the dataset has no
    masks), ``actions`` (B, T, N) long, ``rewards`` (B, T), ``terminated`` (B, T) bool, ``mask``
    (B, T) bool (True on steps of the episode).
    """

    def __init__(
        self,
        ds: Dataset,
        seq_len: int,
        period: int,
        batch_size: int,
        seed: int,
        device: torch.device,
        synthetic_share: float | None = None,
    ) -> None:
        if len(ds) == 0:
            raise ConfigError("cannot train on an empty dataset")
        self.spec = ds.spec
        self.batch_size = int(batch_size)
        self.seq_len = int(seq_len)
        self.seed = int(seed)
        self.device = device
        self.ep, self.start = ds.sequence_index(self.seq_len, period)
        self.synthetic_share = synthetic_share
        if synthetic_share is not None:
            synthetic = np.asarray(ds.episode_origin)[self.ep] != 0
            self.pools = (np.flatnonzero(synthetic), np.flatnonzero(~synthetic))
            self.n_synthetic = int(round(float(synthetic_share) * self.batch_size))
            for pool, n, what in (
                (self.pools[0], self.n_synthetic, "synthetic"),
                (self.pools[1], self.batch_size - self.n_synthetic, "real"),
            ):
                if n and not pool.size:
                    raise ConfigError(
                        f"synthetic_share={synthetic_share} needs {what} episodes, "
                        f"and the dataset has none; augment it first or drop "
                        f"the option"
                    )
        self.offsets = ds.episode_offsets
        self.lengths = ds.episode_lengths
        cols = ds.columns
        obs = cols["obs"]
        state = cols["state"] if "state" in cols else obs.reshape(obs.shape[0], -1)
        self.cols = {
            "obs": _tensor(obs, np.float32, device),
            "state": _tensor(state, np.float32, device),
            "actions": _tensor(
                cols["actions"], np.float32 if self.spec.continuous else np.int64, device
            ),
            "rewards": _tensor(cols["rewards"], np.float32, device),
            "terminated": _tensor(cols["terminated"], bool, device),
        }
        if "avail_actions" in cols:
            self.cols["avail"] = _tensor(cols["avail_actions"], bool, device)

    @property
    def state_dim(self) -> int:
        return int(self.cols["state"].shape[-1])

    @property
    def n_windows(self) -> int:
        return int(self.ep.shape[0])

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """The batch of update ``step`` (a function of the seed and the step only)."""
        rng = np.random.default_rng([self.seed, int(step)])
        if self.synthetic_share is None:
            idx = rng.integers(0, self.n_windows, self.batch_size)
        else:  # a fixed number of windows from each pool, every batch
            syn, real = self.pools
            k = self.n_synthetic
            idx = np.concatenate(
                [
                    syn[rng.integers(0, max(1, syn.size), k)],
                    real[rng.integers(0, max(1, real.size), self.batch_size - k)],
                ]
            )
        return self.windows(idx)

    def windows(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        rows, mask = window_rows(
            self.offsets, self.lengths, self.ep[idx], self.start[idx], self.seq_len
        )
        r = torch.from_numpy(rows).to(self.device)
        m = torch.from_numpy(mask).to(self.device)
        out = {k: v[r] for k, v in self.cols.items()}
        out["mask"] = m
        if "avail" not in out and self.spec.continuous:  # which action entries are real
            dims = torch.from_numpy(self.spec.action_mask()).to(self.device)
            out["avail"] = dims.expand(*out["actions"].shape).clone()
        elif "avail" not in out:
            out["avail"] = torch.ones(
                *out["actions"].shape, self.spec.n_actions, dtype=torch.bool, device=self.device
            )
        # steps past the episode: zero data, nothing legal, not terminal
        for k in ("obs", "state", "rewards"):
            out[k] = out[k] * _expand(m, out[k]).to(out[k].dtype)
        out["avail"] = out["avail"] & _expand(m, out["avail"])
        out["actions"] = out["actions"] * _expand(m, out["actions"])
        out["terminated"] = out["terminated"] & m
        return out


def _tensor(a: np.ndarray, dtype: Any, device: torch.device) -> torch.Tensor:
    """A tensor of its own (the dataset's columns are read-only) on ``device``."""
    return torch.from_numpy(np.array(a, dtype=dtype, copy=True)).to(device)


def _expand(m: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return m.reshape(*m.shape, *([1] * (like.dim() - 2)))


# -- the algorithm interface ----------------------------------------------------------------------
def adam(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """Adam, fused into one kernel where the device supports it (CPU and CUDA do): the same
    update as the per-tensor loop up to rounding, and much faster for these ~20 small tensors
    (docs/performance.md, "Offline baselines")."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):  # a device without the fused kernel
        return torch.optim.Adam(params, lr=lr)


class OfflineAlgorithm(ABC):
    """An offline MARL algorithm over recurrent per-agent networks (see the module docstring)."""

    name: ClassVar[str] = ""
    Config: ClassVar[type] = AlgoConfig
    #: bumped when the same config and seed train differently than before by design (a loss or
    #: network change, not floating-point rounding such as fused Adam's): benchmark caches key
    #: train cells on it, so they are recomputed
    version: ClassVar[int] = 1
    #: the action kind (``discrete`` / ``continuous``) of the data this algorithm learns from
    action_kind: ClassVar[str] = "discrete"

    def __init__(
        self,
        spec: Spec,
        state_dim: int,
        config: Any = None,
        *,
        seed: int = 0,
        scales: tuple[np.ndarray, np.ndarray] | None = None,
        **options: Any,
    ) -> None:
        self.config = config_from_options("algorithm", self.name, self.Config, config, options)
        self.check_config()
        if spec.action_kind != self.action_kind:
            raise ConfigError(
                f"{self.name} learns {self.action_kind} actions, and {spec.env_id} data has "
                f"{spec.action_kind} ones; use one of {', '.join(keys_for(spec.action_kind))}"
            )
        self.spec = spec
        self.state_dim = int(state_dim)
        self.n_agents = spec.n_agents
        self.n_actions = spec.n_actions
        self.in_dim = spec.obs_dim + spec.n_agents
        self.check_size()
        self.device = resolve_device(self.config.device)
        if self.device.type == "cpu":
            keep_freed_heap()
        self.seed = int(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.build()
        if scales is not None:
            self.set_input_scales(*scales)
        for m in self.modules().values():
            m.to(self.device)
        self.optimizer = adam(
            [p for m in self.trained_modules() for p in m.parameters()], self.config.lr
        )
        self.updates = 0

    def check_config(self) -> None:
        c = self.config
        for f in ("lr", "batch_size", "seq_len", "period", "hidden"):
            if getattr(c, f) <= 0:
                raise ConfigError(f"{f} must be > 0, got {getattr(c, f)}")
        if not 0 <= c.gamma <= 1:
            raise ConfigError(f"gamma must be in [0, 1], got {c.gamma}")
        if c.synthetic_share is not None and (
            isinstance(c.synthetic_share, bool)
            or not isinstance(c.synthetic_share, (int, float))
            or not 0 <= c.synthetic_share <= 1
        ):
            raise ConfigError(
                f"synthetic_share must be a number in [0, 1] or null, got {c.synthetic_share!r}"
            )

    def num_parameters(self) -> int:
        """Parameters :meth:`build` will allocate, counted from the config and the data's sizes
        (subclasses with networks beyond one agent network add theirs)."""
        return AgentNet.size(self.in_dim, self.n_actions, self.config.hidden)

    def check_size(self) -> None:
        n = self.num_parameters()
        if n > MAX_PARAMETERS:
            widths = ", ".join(
                f"{f}={getattr(self.config, f)}" for f in WIDTHS if hasattr(self.config, f)
            )
            raise ConfigError(
                f"{self.name} on {self.n_agents} agents × {self.spec.obs_dim} obs × "
                f"{self.n_actions} actions (state {self.state_dim}) would hold {n:,} parameters, "
                f"over the limit of {MAX_PARAMETERS:,}: lower the widths ({widths}) or check "
                "the data's spec"
            )

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def set_input_scales(self, obs_scale: np.ndarray, state_scale: np.ndarray) -> None:
        """Scale inputs of every agent network (obs) and mixer (state); see :func:`input_scales`."""
        o = torch.ones(self.in_dim)
        o[: self.spec.obs_dim] = torch.as_tensor(obs_scale, dtype=torch.float32)
        for m in self.modules().values():
            if isinstance(m, AgentNet):
                m.in_scale.copy_(o)
            elif hasattr(m, "state_scale"):
                m.state_scale.copy_(torch.as_tensor(state_scale, dtype=torch.float32))

    # -- to implement -----------------------------------------------------------------------------
    @abstractmethod
    def build(self) -> None:
        """Create the networks (called under the algorithm's seed)."""

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Every network, by name (checkpointed; target networks included)."""

    @abstractmethod
    def trained_modules(self) -> list[nn.Module]:
        """Networks the optimiser updates."""

    @abstractmethod
    def acting_modules(self) -> list[str]:
        """Names of the networks a trained policy needs."""

    @abstractmethod
    def loss(
        self, batch: dict[str, torch.Tensor], gen: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of one batch and the numbers worth logging."""

    @abstractmethod
    def act_logits(self, outputs: dict[str, torch.Tensor], avail: torch.Tensor) -> torch.Tensor:
        """Per-action scores whose argmax over legal actions is the greedy action (B, N, A)."""

    def after_update(self) -> None:
        """Called after every optimiser step (target-network updates)."""

    def act(self, outputs: dict[str, torch.Tensor], avail: torch.Tensor) -> np.ndarray:
        """Actions from the acting networks' outputs (B, N, A) at one step: the greedy legal
        action (B, N) by default; continuous learners return action vectors (B, N, A)."""
        return masked_argmax(self.act_logits(outputs, avail), avail).cpu().numpy()

    # -- training --------------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, float]:
        loss, info = self.loss(batch, gen)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for m in self.trained_modules() for p in m.parameters()]
        info["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm))
        self.optimizer.step()
        self.updates += 1
        self.after_update()
        return info

    # -- acting ----------------------------------------------------------------------------------
    def policy(self) -> TrainedPolicy:
        return TrainedPolicy(self)

    def save_policy(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write what acting needs: ``policy.json`` + ``weights.safetensors`` (no pickle)."""
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tensors = {
            f"{name}.{k}": v.detach().cpu().contiguous()
            for name in self.acting_modules()
            for k, v in self.modules()[name].state_dict().items()
        }
        tmp = d / (WEIGHTS_FILE + ".tmp")
        save_file(tensors, str(tmp))
        tmp.replace(d / WEIGHTS_FILE)
        meta = {
            "format": "marl-augment/policy",
            "algo": self.name,
            "config": self.config_dict(),
            "spec": self.spec.to_json(),
            "state_dim": self.state_dim,
            "seed": self.seed,
            "updates": self.updates,
            **(extra or {}),
        }
        (d / POLICY_FILE).write_text(json.dumps(meta, indent=2))
        return d


class TrainedPolicy:
    """A batch policy over an algorithm's networks: greedy, legal, recurrent state per env."""

    def __init__(self, algo: OfflineAlgorithm) -> None:
        self.algo = algo
        self.hidden: dict[str, torch.Tensor] = {}

    @property
    def name(self) -> str:
        return self.algo.name

    @property
    def action_kind(self) -> str:
        """``discrete`` or ``continuous``: evaluation refuses an env of the other kind."""
        return self.algo.spec.action_kind

    @property
    def spec(self) -> Spec:
        """The spec of the data the policy was trained on."""
        return self.algo.spec

    @torch.no_grad()
    def __call__(self, obs: np.ndarray, avail: np.ndarray, first: np.ndarray) -> np.ndarray:
        a = self.algo
        obs = np.asarray(obs, dtype=np.float32)
        avail = np.asarray(avail, dtype=bool)
        b = obs.shape[0]
        if (
            obs.ndim != 3
            or obs.shape[1:] != (a.n_agents, a.spec.obs_dim)
            or avail.shape[1:] != (a.n_agents, a.n_actions)
        ):
            raise ConfigError(
                f"this {a.name} policy was trained on {a.n_agents} agents × {a.spec.obs_dim} obs × "
                f"{a.n_actions} actions ({a.spec.env_id}); the env gives obs "
                f"{tuple(obs.shape[1:])} and "
                f"masks {tuple(avail.shape[1:])}: evaluate it on the env its dataset came from"
            )
        x = agent_inputs(torch.from_numpy(obs).to(a.device)[:, None])
        reset = torch.from_numpy(np.repeat(np.asarray(first, dtype=bool), a.n_agents)).to(a.device)
        outputs = {}
        for name in a.acting_modules():
            h = self.hidden.get(name)
            if h is None or h.shape[1] != x.shape[0]:
                h = torch.zeros(1, x.shape[0], a.config.hidden, device=a.device)
            h = h.masked_fill(reset[None, :, None], 0.0)
            y, h = a.modules()[name](x, h)
            self.hidden[name] = h
            outputs[name] = per_agent(y, b, a.n_agents)[:, 0]
        return a.act(outputs, legal_or_all(torch.from_numpy(avail).to(a.device)))
