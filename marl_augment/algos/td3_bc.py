"""Independent TD3+BC for continuous actions (OG-MARL's IDDPG+BC, in torch).

Each agent acts with the shared recurrent network of the discrete baselines (:class:`AgentNet`,
one-hot agent id appended), its output squashed by tanh into [-1, 1] and mapped onto the
agent's action bounds. Twin critics Q_1, Q_2 (MLPs 128-128, as OG-MARL's StateAndActionCritic)
see the global state, the agent's id and the agent's own action, normalised to [-1, 1]:
independent learners with a centralised state, trained on the team reward.

    critic:  0.5·Σ_j (Q_j(s_t, i, a_t^i) − y_t)²,
             y_t = r_t + γ (1 − term_t) min_j Q'_j(s_{t+1}, i, π'(o_{t+1}^i) + ε),
             ε = clip(N(0, σ²), −c, c)                          (TD3's target smoothing)
    actor:   − λ · mean Q_1(s_t, i, π(o_t^i)) + mean (π(o_t^i) − a_t^i)²,
             λ = α / mean |Q_1(s_t, i, π(o_t^i))|  (no gradient; α = 2.5)

as in TD3+BC (Fujimoto & Gu, 2021), the actor updated every ``policy_delay`` updates, target
networks by Polyak averaging (τ = 0.005). ``policy_noise=0, policy_delay=1`` is OG-MARL's
IDDPG+BC exactly, which uses neither. Deviations, both for one optimiser step per update: the
actor's gradient is taken through the critics as they were before this update's critic step
(TD3 steps the critic first), and gradients are clipped per network to ``max_grad_norm``.
Padded action dimensions of smaller agents are held at 0 and never enter a loss.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from ..errors import ConfigError
from .agent_stack import run_agent_stack
from .common import AgentNet, AlgoConfig, OfflineAlgorithm, masked_mean


@dataclass
class ActorCriticConfig(AlgoConfig):
    """Hyper-parameters the continuous actor-critics share (TD3+BC, MADDPG+CQL, OMAR)."""

    tau: float = 0.005
    """Polyak rate of the target networks."""
    critic_hidden: int = 128
    """Width of the critics' two hidden layers."""
    max_grad_norm: float = 1000.0
    """Gradients are clipped per network to this norm (TD3+BC clips none)."""


@dataclass
class CqlCriticConfig(ActorCriticConfig):
    """The conservative critics' penalty (CQL(H), as OG-MARL's MADDPG+CQL and OMAR draw it)."""

    num_ood_actions: int = 10
    """K: out-of-distribution actions of each kind per step (3K in the logsumexp)."""
    cql_weight: float = 3.0
    """w: weight of the CQL term."""
    cql_sigma: float = 0.2
    """Std of the noise on the policy's actions among the OOD samples (normalised units)."""


@dataclass
class Td3BcConfig(ActorCriticConfig):
    """TD3+BC hyper-parameters (TD3+BC's; OG-MARL's IDDPG+BC with policy_noise=0 and
    policy_delay=1)."""

    bc_alpha: float = 2.5
    """α: the Q term's weight relative to behaviour cloning (λ = α / mean |Q|)."""
    policy_noise: float = 0.2
    """Std of the target actions' Gaussian noise, in normalised action units ([-1, 1])."""
    noise_clip: float = 0.5
    """The target noise is clipped to ±this."""
    policy_delay: int = 2
    """The actor (and the targets) are updated every this many critic updates."""


def check_actor_critic(c: ActorCriticConfig) -> None:
    """Refuse impossible values of the shared actor-critic (and CQL) options."""
    if not 0 < c.tau <= 1 or c.critic_hidden < 1:
        raise ConfigError(
            f"need 0 < tau <= 1 and critic_hidden >= 1, got {c.tau} and {c.critic_hidden}"
        )
    if isinstance(c, CqlCriticConfig) and (
        c.cql_weight < 0 or c.cql_sigma <= 0 or c.num_ood_actions < 1
    ):
        raise ConfigError(
            f"need cql_weight >= 0, cql_sigma > 0 and num_ood_actions >= 1, got "
            f"{c.cql_weight}, {c.cql_sigma} and {c.num_ood_actions}"
        )


class TwinCritic(nn.Module):
    """Two critics Q_j(s, agent id, own action), j = 1, 2, as one module: MLPs over the scaled
    state, a one-hot agent id and the agent's normalised action, computed together.

    The first layer is split by input: the state's part is computed once per step and shared by
    the agents (the state is the same for all), the id's part is a per-agent bias.
    """

    def __init__(
        self, state_dim: int, n_agents: int, n_actions: int, hidden: int, heads: int = 2
    ) -> None:
        super().__init__()
        self.register_buffer("state_scale", torch.ones(state_dim))

        def layer(fan_in: int, fan_out: int) -> tuple[nn.Parameter, nn.Parameter]:
            bound = 1.0 / fan_in**0.5  # nn.Linear's default initialisation
            w = torch.empty(heads, fan_in, fan_out).uniform_(-bound, bound)
            b = torch.empty(heads, 1, fan_out).uniform_(-bound, bound)
            return nn.Parameter(w), nn.Parameter(b)

        fan_in = state_dim + n_agents + n_actions
        w1, self.b1 = layer(fan_in, hidden)
        self.w_state = nn.Parameter(w1[:, :state_dim].clone())
        self.w_id = nn.Parameter(w1[:, state_dim : state_dim + n_agents].clone())
        self.w_action = nn.Parameter(w1[:, state_dim + n_agents :].clone())
        self.w2, self.b2 = layer(hidden, hidden)
        self.w3, self.b3 = layer(hidden, 1)

    @staticmethod
    def size(state_dim: int, n_agents: int, n_actions: int, hidden: int, heads: int = 2) -> int:
        return heads * (
            (state_dim + n_agents + n_actions + 1) * hidden + (hidden + 1) * hidden + hidden + 1
        )

    def forward(self, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``state`` (B, T, S), ``actions`` (B, T, N, A) normalised → Q (heads, B, T, N)."""
        b, t, n, a = actions.shape
        heads = self.w_state.shape[0]
        s = (state * self.state_scale).reshape(1, b * t, -1).expand(heads, -1, -1)
        h_state = torch.bmm(s, self.w_state).reshape(heads, b * t, 1, -1)
        h_act = torch.bmm(actions.reshape(1, b * t * n, a).expand(heads, -1, -1), self.w_action)
        h = h_state + h_act.reshape(heads, b * t, n, -1) + self.w_id[:, None] + self.b1[:, None]
        h = torch.relu(h).reshape(heads, b * t * n, -1)
        h = torch.relu(torch.baddbmm(self.b2, h, self.w2))
        return torch.baddbmm(self.b3, h, self.w3).reshape(heads, b, t, n)


class Td3Bc(OfflineAlgorithm):
    name = "td3-bc"
    Config = Td3BcConfig
    action_kind = "continuous"

    def check_config(self) -> None:
        OfflineAlgorithm.check_config(self)
        check_actor_critic(self.config)
        c = self.config
        if c.bc_alpha < 0 or c.policy_noise < 0 or c.noise_clip < 0 or c.policy_delay < 1:
            raise ConfigError(
                f"need bc_alpha >= 0, policy_noise >= 0, noise_clip >= 0 and "
                f"policy_delay >= 1; got {c.bc_alpha}, {c.policy_noise}, "
                f"{c.noise_clip}, {c.policy_delay}"
            )

    def num_parameters(self) -> int:
        """Actor and critics, each with its target copy."""
        return (
            2 * AgentNet.size(self.in_dim, self.n_actions, self.config.hidden)
            + 2 * self.critic_size()
        )

    def critic_size(self) -> int:
        return TwinCritic.size(
            self.state_dim, self.n_agents, self.n_actions, self.config.critic_hidden
        )

    def build(self) -> None:
        self.actor = self.make_actor()
        self.critics = self.make_critics()
        self.target_actor = copy.deepcopy(self.actor)
        self.target_critics = copy.deepcopy(self.critics)
        for p in [*self.target_actor.parameters(), *self.target_critics.parameters()]:
            p.requires_grad_(False)
        low, high = (torch.from_numpy(b) for b in self.spec.action_bounds())
        self.low, self.span = low, (high - low)
        self.dims = torch.from_numpy(self.spec.action_mask())

    def make_actor(self) -> nn.Module:
        """The actor (built under the algorithm's seed): the recurrent agent network."""
        return AgentNet(self.in_dim, self.n_actions, self.config.hidden)

    def make_critics(self) -> nn.Module:
        """The twin critics (built under the algorithm's seed)."""
        return TwinCritic(self.state_dim, self.n_agents, self.n_actions, self.config.critic_hidden)

    def modules(self) -> dict[str, nn.Module]:
        return {
            "actor": self.actor,
            "critics": self.critics,
            "target_actor": self.target_actor,
            "target_critics": self.target_critics,
        }

    def trained_modules(self) -> list[nn.Module]:
        return [self.actor, self.critics]

    def acting_modules(self) -> list[str]:
        return ["actor"]

    # -- actions --------------------------------------------------------------------------------
    def _squash(self, raw: torch.Tensor) -> torch.Tensor:
        """Network outputs → normalised actions in [-1, 1], padded dimensions 0."""
        return torch.tanh(raw) * self.dims.to(raw.device)

    def normalise(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions within their bounds → [-1, 1] (dimensions with low == high and padding: 0)."""
        low, span = self.low.to(actions.device), self.span.to(actions.device)
        u = 2 * (actions - low) / span.clamp(min=1e-12) - 1
        return torch.where(span > 0, u, torch.zeros_like(u)).clamp(-1, 1)

    def act_logits(self, outputs, avail):
        return outputs["actor"]

    def act(self, outputs, avail) -> np.ndarray:
        u = self._squash(outputs["actor"])
        low, span = self.low.to(u.device), self.span.to(u.device)
        return (low + (u + 1) / 2 * span).cpu().numpy()

    # -- learning -------------------------------------------------------------------------------
    def loss(self, batch, gen):
        c = self.config
        mask, term, state = batch["mask"], batch["terminated"], batch["state"]
        data_u = self.normalise(batch["actions"])
        step_dims = batch["avail"]  # (B, T, N, A) real entries
        act_now = self.updates % c.policy_delay == 0
        if act_now:
            pi_raw, target_raw = run_agent_stack([self.actor, self.target_actor], batch["obs"])
        else:
            with torch.no_grad():
                (target_raw,) = run_agent_stack([self.target_actor], batch["obs"])
        with torch.no_grad():
            nxt = self._squash(target_raw)[:, 1:]
            noise = torch.randn(nxt.shape, generator=gen, device=nxt.device) * c.policy_noise
            nxt = (nxt + noise.clamp(-c.noise_clip, c.noise_clip)).clamp(-1, 1) * self.dims.to(
                nxt.device
            )
            q_next = self.target_critics(state[:, 1:], nxt).min(0).values
            q_next = torch.cat([q_next, torch.zeros_like(q_next[:, :1])], dim=1)
            has_next = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)
            boot = (has_next & ~term)[..., None]
            y = batch["rewards"][..., None] + torch.where(
                boot, c.gamma * q_next, torch.zeros_like(q_next)
            )
            valid = (mask & (has_next | term))[..., None].expand_as(q_next)
        qs = self.critics(state, data_u)
        critic = masked_mean(0.5 * (qs - y) ** 2, valid.expand_as(qs)) * 2  # sum of the twins
        info = {
            "critic_loss": float(critic.detach()),
            "q_data": float(masked_mean(qs[0].detach(), valid)),
        }
        loss = critic
        if act_now:
            pi = self._squash(pi_raw)
            frozen = {k: v.detach() for k, v in self.critics.named_parameters()}
            frozen.update(dict(self.critics.named_buffers()))
            q_pi = functional_call(self.critics, frozen, (state, pi))[0]
            on = mask[..., None].expand_as(q_pi)
            lam = c.bc_alpha / masked_mean(q_pi.abs(), on).detach().clamp(min=1e-6)
            bc = masked_mean((pi - data_u) ** 2, step_dims & mask[..., None, None])
            actor = -lam * masked_mean(q_pi, on) + bc
            loss = loss + actor
            info.update(
                actor_loss=float(actor.detach()),
                bc_loss=float(bc.detach()),
                q_policy=float(masked_mean(q_pi.detach(), on)),
            )
        info["loss"] = float(loss.detach())
        return loss, info

    def update(self, batch, gen):
        """One optimiser step over the actor and the critics (each network's gradient clipped
        on its own), then the target networks when :meth:`_targets_due`."""
        loss, info = self.loss(batch, gen)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norms = [
            torch.nn.utils.clip_grad_norm_(list(m.parameters()), self.config.max_grad_norm)
            for m in self.trained_modules()
            if any(p.grad is not None for p in m.parameters())
        ]
        info["grad_norm"] = float(max(norms))
        self.optimizer.step()
        self.updates += 1
        if self._targets_due():
            self.after_update()
        return info

    def _targets_due(self) -> bool:
        """Whether the update just made moves the targets (TD3: with each actor update)."""
        return (self.updates - 1) % self.config.policy_delay == 0

    @torch.no_grad()
    def after_update(self) -> None:
        tau = self.config.tau
        for online, target in (
            (self.actor, self.target_actor),
            (self.critics, self.target_critics),
        ):
            for p, tp in zip(online.parameters(), target.parameters()):
                tp.lerp_(p, tau)
