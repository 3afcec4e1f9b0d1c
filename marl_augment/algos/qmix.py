"""QMIX's pieces: the monotonic mixer and the double-Q TD loss on windows of episodes.

Q_tot(s, a) = V(s) + w2(s) · ELU(W1(s)ᵀ q(a) + b1(s)), with W1, w2 made non-negative by an
absolute value, so Q_tot is monotone in every agent's Q (the argmax of Q_tot is the agents'
own argmaxes). Target: y_t = r_t + γ (1 − terminated_t) Q_tot^target(s_{t+1}, a*_{t+1}), a* the
online network's argmax over allowed (legal, or for BCQ legal and likely) actions, valued by the
target networks. A step is a TD target only when its successor is in the window or the episode
terminated there: a time-limit truncation is not terminal, and with nothing to bootstrap from,
such a step does not enter the loss.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .common import AgentNet, AlgoConfig, OfflineAlgorithm, masked_argmax, masked_mean


@dataclass
class QmixConfig(AlgoConfig):
    """QMIX's hyper-parameters on top of the shared ones."""

    mixer_embed: int = 32
    """Width of the mixer's hidden layer."""
    hypernet_embed: int = 64
    """Width of the hyper-networks that make the mixer's weights from the state."""
    target_update: int = 200
    """Copy the online networks into the target networks every this many updates."""


class QMixer(nn.Module):
    """Monotonic mixing network conditioned on the global state.

    The hyper-networks (W1: S→64→N·E, w2: S→64→E, V: S→E→1, b1: S→E) share one input layer
    ``hyper_in`` whose outputs are the concatenation of their first layers (the same functions
    as separate layers, fewer kernel launches). ``state_scale`` (a buffer) scales the state first.
    """

    def __init__(self, n_agents: int, state_dim: int, embed: int = 32, hypernet: int = 64) -> None:
        super().__init__()
        self.n_agents, self.embed, self.hypernet = n_agents, embed, hypernet
        self.register_buffer("state_scale", torch.ones(state_dim))
        self.hyper_in = nn.Linear(state_dim, 2 * hypernet + 2 * embed)
        self.w1_out = nn.Linear(hypernet, n_agents * embed)
        self.w2_out = nn.Linear(hypernet, embed)
        self.v_out = nn.Linear(embed, 1)

    @staticmethod
    def size(n_agents: int, state_dim: int, embed: int, hypernet: int) -> int:
        """Parameters of a ``QMixer``, counted without building it."""
        return (
            (state_dim + 1) * (2 * hypernet + 2 * embed)
            + (hypernet + 1) * n_agents * embed
            + (hypernet + 1) * embed
            + embed
            + 1
        )

    def weights(self, state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Mixing weights of (B, T, S) states, flattened over (B, T) for batched products:
        W1 (B·T, N, E), b1 (B·T, 1, E), w2 (B·T, 1, E), V (B, T, 1)."""
        b, t, _ = state.shape
        hp, e = self.hypernet, self.embed
        h = self.hyper_in(state * self.state_scale)
        b1 = h[..., 2 * hp + e :]
        h = torch.relu(h[..., : 2 * hp + e])
        w1 = self.w1_out(h[..., :hp]).abs().reshape(b * t, self.n_agents, e)
        w2 = self.w2_out(h[..., hp : 2 * hp]).abs().reshape(b * t, 1, e)
        v = self.v_out(h[..., 2 * hp :])
        return w1, b1.reshape(b * t, 1, e), w2, v

    @staticmethod
    def mix(qs: torch.Tensor, weights: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Q_tot of K joint actions at once: ``qs`` (B, T, N, K) → (B, T, K)."""
        w1, b1, w2, v = weights
        b, t, n, k = qs.shape
        # one batched (K×N)·(N×E) product per step: faster on CPU than broadcast-and-sum over a
        # (B, T, N, K, E) intermediate, forward and backward (docs/performance.md)
        hidden = nn.functional.elu(torch.baddbmm(b1, qs.reshape(b * t, n, k).transpose(1, 2), w1))
        # the E→1 product as multiply-and-sum: a batched (K×E)·(E×1) product's backward is an
        # outer product, slow in CPU bmm (docs/performance.md has the times)
        return (hidden * w2).sum(-1).reshape(b, t, k) + v

    def forward(self, qs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``qs`` (B, T, N) agent Qs of one joint action, ``state`` (B, T, S) → Q_tot (B, T)."""
        return self.mix(qs.unsqueeze(-1), self.weights(state)).squeeze(-1)


class QmixBase(OfflineAlgorithm):
    """Agent network + mixer with target copies; subclasses add their loss terms."""

    Config = QmixConfig

    def build(self) -> None:
        c = self.config
        self.agent = AgentNet(self.in_dim, self.n_actions, c.hidden)
        self.mixer = QMixer(self.n_agents, self.state_dim, c.mixer_embed, c.hypernet_embed)
        self.target_agent = copy.deepcopy(self.agent).requires_grad_(False)
        self.target_mixer = copy.deepcopy(self.mixer).requires_grad_(False)

    def check_config(self) -> None:
        super().check_config()
        for f in ("mixer_embed", "hypernet_embed", "target_update"):
            if getattr(self.config, f) <= 0:
                raise ConfigError(f"{f} must be > 0, got {getattr(self.config, f)}")

    def num_parameters(self) -> int:
        c = self.config
        mixer = QMixer.size(self.n_agents, self.state_dim, c.mixer_embed, c.hypernet_embed)
        return 2 * (super().num_parameters() + mixer)  # online and target networks

    def modules(self) -> dict[str, nn.Module]:
        return {
            "agent": self.agent,
            "mixer": self.mixer,
            "target_agent": self.target_agent,
            "target_mixer": self.target_mixer,
        }

    def trained_modules(self) -> list[nn.Module]:
        return [self.agent, self.mixer]

    def acting_modules(self) -> list[str]:
        return ["agent"]

    def act_logits(self, outputs, avail):
        return outputs["agent"]

    def after_update(self) -> None:
        if self.updates % self.config.target_update == 0:
            self.target_agent.load_state_dict(self.agent.state_dict())
            self.target_mixer.load_state_dict(self.mixer.state_dict())

    def td_loss(
        self,
        batch: dict[str, torch.Tensor],
        q: torch.Tensor,
        q_tot: torch.Tensor,
        next_allowed: torch.Tensor,
        target_q: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """TD loss 0.5·(y − Q_tot)² over valid steps, and the numbers worth logging.

        ``q`` (B, T, N, A): online agent Q values; ``q_tot`` (B, T): online Q_tot of the data's
        joint actions; ``next_allowed`` (B, T, N, A): actions the greedy next action may be
        chosen from; ``target_q`` (B, T, N, A): the target agent network's values (computed with
        the online ones by :func:`~marl_augment.algos.agent_stack.run_agent_stack`).
        """
        mask, term = batch["mask"], batch["terminated"]
        with torch.no_grad():
            a_next = masked_argmax(q[:, 1:], next_allowed[:, 1:])
            q_next = target_q[:, 1:].gather(-1, a_next.unsqueeze(-1)).squeeze(-1)
            tot_next = self.target_mixer(q_next, batch["state"][:, 1:])
            tot_next = torch.cat([tot_next, torch.zeros_like(tot_next[:, :1])], dim=1)
            has_next = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)
            boot = has_next & ~term
            y = batch["rewards"] + torch.where(
                boot, self.config.gamma * tot_next, torch.zeros_like(tot_next)
            )
            valid = mask & (has_next | term)
        td = masked_mean(0.5 * (y - q_tot) ** 2, valid)
        info = {"td_loss": float(td.detach()), "q_tot": float(masked_mean(q_tot.detach(), mask))}
        return td, info
