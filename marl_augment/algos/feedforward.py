"""Feed-forward continuous policies: the actors of online behaviour learners (MATD3).

A :class:`MlpActor` is one network for all agents (observation, scaled, with a one-hot agent id
appended) → ReLU MLP → tanh, mapped onto each agent's action bounds; padded action dimensions
of agents with fewer dimensions are 0. It has no memory, so acting needs no recurrent state.

Saved like the offline learners' policies (``policy.json`` + ``weights.safetensors``, no
pickle) with ``format: marl-augment/feedforward-policy``; :func:`marl_augment.algos.load_policy`
loads both kinds, so ``evaluate --policy`` and ``record --policy`` take either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, FormatError
from .common import POLICY_FILE, WEIGHTS_FILE

#: policy.json's format of a feed-forward actor (what :func:`load_policy` recognises)
FORMAT = "marl-augment/feedforward-policy"


class MlpActor(nn.Module):
    """(…, N, O) observations → (…, N, A) actions in [-1, 1] (padded dimensions 0)."""

    def __init__(
        self, n_agents: int, obs_dim: int, n_actions: int, hidden: int, action_dims: list[int]
    ) -> None:
        super().__init__()
        self.n_agents, self.obs_dim, self.n_actions = n_agents, obs_dim, n_actions
        self.register_buffer("in_scale", torch.ones(obs_dim))
        mask = torch.zeros(n_agents, n_actions)
        for i, d in enumerate(action_dims):
            mask[i, :d] = 1.0
        self.register_buffer("dims", mask)
        self.net = nn.Sequential(
            nn.Linear(obs_dim + n_agents, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_actions),
        )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        ids = torch.eye(self.n_agents, device=obs.device, dtype=obs.dtype).expand(
            *obs.shape[:-1], self.n_agents
        )
        x = torch.cat([obs * self.in_scale, ids], dim=-1)
        return torch.tanh(self.net(x)) * self.dims


class FeedForwardPolicy:
    """A batch policy ``policy(obs, avail, first) -> actions`` (B, N, A) within the bounds."""

    action_kind = "continuous"

    def __init__(
        self,
        actor: MlpActor,
        low: np.ndarray,
        high: np.ndarray,
        *,
        name: str = "matd3",
        env_id: str = "",
        device: str = "cpu",
        spec: Any = None,
    ) -> None:
        self.actor = actor.to(device).eval()
        #: the spec of the data an offline learner trained on (None: an online checkpoint)
        self.spec = spec
        self.device = torch.device(device)
        self.low = torch.as_tensor(np.asarray(low, np.float32), device=self.device)
        self.high = torch.as_tensor(np.asarray(high, np.float32), device=self.device)
        self.name, self.env_id = name, env_id

    def to_bounds(self, u: torch.Tensor) -> torch.Tensor:
        """Normalised actions in [-1, 1] → the agents' bounds (padding stays 0)."""
        return (self.low + (u + 1) / 2 * (self.high - self.low)) * self.actor.dims

    @torch.no_grad()
    def __call__(self, obs: np.ndarray, avail: np.ndarray, first: np.ndarray) -> np.ndarray:
        a = self.actor
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim != 3 or obs.shape[1:] != (a.n_agents, a.obs_dim):
            raise ConfigError(
                f"this {self.name} policy acts on {a.n_agents} agents × "
                f"{a.obs_dim} obs ({self.env_id}); the env gives obs "
                f"{tuple(obs.shape[1:])}: use it on the env it was trained in"
            )
        u = a(torch.from_numpy(obs).to(self.device))
        return self.to_bounds(u).cpu().numpy()


def save_feedforward_policy(
    directory: str | Path,
    actor: MlpActor,
    *,
    low: np.ndarray,
    high: np.ndarray,
    action_dims: list[int],
    hidden: int,
    name: str,
    meta: dict[str, Any],
) -> Path:
    """Write ``policy.json`` + ``weights.safetensors`` (the weights first, each atomically)."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in actor.state_dict().items()}
    save_file(tensors, str(d / (WEIGHTS_FILE + ".tmp")))
    (d / (WEIGHTS_FILE + ".tmp")).replace(d / WEIGHTS_FILE)
    doc = {
        "format": FORMAT,
        "algo": name,
        "n_agents": actor.n_agents,
        "obs_dim": actor.obs_dim,
        "n_actions": actor.n_actions,
        "action_dims": list(action_dims),
        "hidden": hidden,
        "action_low": np.asarray(low, np.float64).tolist(),
        "action_high": np.asarray(high, np.float64).tolist(),
        **meta,
    }
    (d / (POLICY_FILE + ".tmp")).write_text(json.dumps(doc, indent=2))
    (d / (POLICY_FILE + ".tmp")).replace(d / POLICY_FILE)
    return d


def load_feedforward_policy(
    d: Path, meta: dict[str, Any], device: str = "cpu"
) -> FeedForwardPolicy:
    """The policy of a folder whose ``policy.json`` (``meta``) has :data:`FORMAT`."""
    from safetensors.torch import load_file

    try:
        actor = MlpActor(
            int(meta["n_agents"]),
            int(meta["obs_dim"]),
            int(meta["n_actions"]),
            int(meta["hidden"]),
            [int(x) for x in meta["action_dims"]],
        )
        actor.load_state_dict(load_file(str(d / WEIGHTS_FILE)))
        low = np.asarray(meta["action_low"], np.float32)
        high = np.asarray(meta["action_high"], np.float32)
        if low.shape != (actor.n_agents, actor.n_actions) or low.shape != high.shape:
            raise ValueError(
                f"action bounds of shape {low.shape}, expected {(actor.n_agents, actor.n_actions)}"
            )
    except Exception as e:  # noqa: BLE001 - JSON fields, safetensors and shape errors alike
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FormatError(f"unreadable policy in {d} ({first}); train it again") from None
    return FeedForwardPolicy(
        actor,
        low,
        high,
        name=str(meta.get("algo", "matd3")),
        env_id=str(meta.get("env_id", "")),
        device=device,
    )
