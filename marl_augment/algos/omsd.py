"""OMSD for continuous actions (Qiao, Li, Yang, Zha & Wang, "Offline Multi-agent Reinforcement
Learning via Sequential Score Decomposition", arXiv:2505.05968), in torch.

OMSD regularises decentralised deterministic policies towards the data's *joint* behaviour
without modelling the joint action at once. The joint behaviour policy factorises sequentially,
μ(a¹…aᴺ | o) = Π_i μ_i(aⁱ | oⁱ, a¹…aⁱ⁻¹), and each factor's score ∇ log μ_i is learned by a
diffusion model ε_ψ(aⁱ_t, t | oⁱ, a^{<i}) of agent i's action given its observation and the
actions of the agents before it. A joint critic Q(o¹…oᴺ, a¹…aᴺ) trained in-sample (IQL) on the
team reward supplies the improvement direction. Each agent's policy πⁱ(oⁱ) then follows SRPO's
score-regularised gradient (Chen et al., 2023), with the agents before it acting by their
current policies — so agent i is pulled towards the behaviour mode its predecessors chose:

    behaviour:  ‖z − ε_ψ(α_t aⁱ + σ_t z, t | oⁱ, a^{<i})‖²,   t ~ U[10⁻³, 1]
    critic:     V: expectile_κ( min_k Q̄_k(o, a) − V(o) );   Q_k: (Q_k(o, a) − r − γ(1−d) V(o'))²
    policy:     wt(t) · ε_ψ(α_t âⁱ + σ_t z, t | oⁱ, â^{<i}) · âⁱ  −  β · ∇_{aⁱ} Q̄(o, â) · âⁱ,
                âⁱ = πⁱ(oⁱ), â^{<i} the earlier agents' policy actions (no gradient), wt = σ_t²,
                t ~ U[0.02, 0.98], Q̄ the mean of the target twins

(the ε and ∇Q terms carry no gradient: the loss is SRPO's surrogate whose gradient in âⁱ is
wt·ε_ψ − β·∇Q). Facts taken from the paper and its authors' code (qiaodan-cuhk/diffmarl):
the VP SDE with linear β from 0.1 to 20, IQL critics over the concatenated observations,
expectile 0.7, twin Q MLPs 256-256, a tanh policy 256-256, β = 0.02 (their HalfCheetah value;
0.08 for simple_spread), wt = σ², Adam 3·10⁻⁴, τ = 0.005, batches of 512.

Deviations, each for a reason: the behaviour model, critic and policies are trained together in
one loop instead of in three stages (the behaviour model and the IQL critic never look at the
policy, so the stages only differ in how far the first two have converged when the policy starts;
``policy_start`` holds the policy back for a head start); one noise network with a one-hot agent
id serves all agents, its predecessor actions zero-padded (the authors train one per agent), and
likewise one policy network (as the other learners here share theirs); the learning rates are
constant (the authors anneal them over 10⁶ updates, beyond a CPU's budget).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .common import OfflineAlgorithm, transition_rows
from .dom2 import NoiseNet, vp_schedule
from .feedforward import FeedForwardPolicy, MlpActor
from .maddpg_cql import TwinJointCritic
from .td3_bc import ActorCriticConfig, Td3Bc, check_actor_critic

T_MIN = 1e-3
"""Smallest diffusion time the behaviour model is trained at."""
T_POLICY = (0.02, 0.98)
"""Range of the diffusion times of the policy's regularisation (SRPO's)."""


@dataclass
class OmsdConfig(ActorCriticConfig):
    """OMSD's hyper-parameters (the authors' values unless said otherwise)."""

    batch_size: int = 512
    """Windows per batch (of ``seq_len`` steps; 2 steps: one transition and its successor)."""
    seq_len: int = 2
    period: int = 1
    """Every step starts a window: every transition is trained on."""
    hidden: int = 256
    """Width of the policy's two hidden layers."""
    critic_hidden: int = 256
    """Width of the Q and V networks' two hidden layers."""
    noise_hidden: int = 256
    """Width of the behaviour noise network's residual layers."""
    beta: float = 0.02
    """β: weight of the critic's gradient against the behaviour score (0.08 for simple_spread
    in the authors' runs)."""
    expectile: float = 0.7
    """κ: IQL's expectile of V."""
    weighting: str = "vds"
    """wt(t) of the score term: ``vds`` (σ², the authors'), ``stable`` (1) or ``score`` (α/σ)."""
    normalise_guidance: bool = False
    """Divide ∇Q by its root mean square per row (SRPO's ``regq``; off in the authors' runs)."""
    critic_input: str = "obs"
    """The joint critic's input: ``obs`` (all agents' observations, the authors') or
    ``state`` (the dataset's global state)."""
    sequential: bool = True
    """Condition each agent's behaviour model on its predecessors' actions (OMSD); ``False``
    gives independent per-agent scores μ_i(aⁱ | oⁱ) (the authors' CTDE ablation)."""
    policy_start: int = 1000
    """Updates before the policy's loss joins (the behaviour model and critic learn alone)."""
    max_grad_norm: float = 1000.0


class Omsd(Td3Bc):
    name = "omsd"
    Config = OmsdConfig

    def check_config(self) -> None:
        OfflineAlgorithm.check_config(self)
        check_actor_critic(self.config)
        c = self.config
        if c.noise_hidden < 1 or c.beta < 0 or not 0 < c.expectile < 1 or c.policy_start < 0:
            raise ConfigError(
                f"need noise_hidden >= 1, beta >= 0, 0 < expectile < 1 and "
                f"policy_start >= 0, got {c.noise_hidden}, {c.beta}, "
                f"{c.expectile} and {c.policy_start}"
            )
        if c.weighting not in ("vds", "stable", "score"):
            raise ConfigError(f"weighting must be vds, stable or score, got {c.weighting!r}")
        if c.critic_input not in ("obs", "state"):
            raise ConfigError(f"critic_input must be obs or state, got {c.critic_input!r}")
        if c.seq_len < 2:
            raise ConfigError(
                f"OMSD learns from transitions: seq_len must be >= 2, got {c.seq_len}"
            )

    # -- networks -------------------------------------------------------------------------------
    @property
    def critic_in(self) -> int:
        """Width of the joint critic's input (before the joint action)."""
        if self.config.critic_input == "state":
            return self.state_dim
        return self.n_agents * self.spec.obs_dim

    @property
    def cond_dim(self) -> int:
        """The noise network's condition: observation, one-hot id, the predecessors' actions."""
        return self.spec.obs_dim + self.n_agents + (self.n_agents - 1) * self.n_actions

    def num_parameters(self) -> int:
        c, n, a = self.config, self.n_agents, self.n_actions
        actor = (
            (self.spec.obs_dim + n + 1) * c.hidden + (c.hidden + 1) * c.hidden + (c.hidden + 1) * a
        )
        return (
            actor
            + NoiseNet.size(self.cond_dim, a, c.noise_hidden)
            + 2 * TwinJointCritic.size(self.critic_in, n * a, c.critic_hidden)
            + TwinJointCritic.size(self.critic_in, 0, c.critic_hidden, heads=1)
        )

    def build(self) -> None:
        c = self.config
        dims = self.spec.action_mask()
        self.actor = MlpActor(
            self.n_agents, self.spec.obs_dim, self.n_actions, c.hidden, [int(d.sum()) for d in dims]
        )
        self.behaviour = NoiseNet(self.cond_dim, self.n_actions, c.noise_hidden)
        self.critics = TwinJointCritic(
            self.critic_in, self.n_agents * self.n_actions, c.critic_hidden
        )
        self.value = TwinJointCritic(self.critic_in, 0, c.critic_hidden, heads=1)
        self.target_critics = copy.deepcopy(self.critics)
        for p in self.target_critics.parameters():
            p.requires_grad_(False)
        low, high = (torch.from_numpy(b) for b in self.spec.action_bounds())
        self.low, self.span = low, (high - low)
        self.dims = torch.from_numpy(dims)

    def set_input_scales(self, obs_scale: np.ndarray, state_scale: np.ndarray) -> None:
        obs_scale = torch.as_tensor(obs_scale, dtype=torch.float32)
        self.actor.in_scale.copy_(obs_scale)
        joint = (
            torch.as_tensor(state_scale, dtype=torch.float32)
            if self.config.critic_input == "state"
            else obs_scale.repeat(self.n_agents)
        )
        for m in (self.critics, self.target_critics, self.value):
            m.state_scale.copy_(joint)

    def modules(self) -> dict[str, nn.Module]:
        return {
            "actor": self.actor,
            "behaviour": self.behaviour,
            "critics": self.critics,
            "value": self.value,
            "target_critics": self.target_critics,
        }

    def trained_modules(self) -> list[nn.Module]:
        return [self.actor, self.behaviour, self.critics, self.value]

    # -- pieces ---------------------------------------------------------------------------------
    def _conditions(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Rows (R, N, O) of observations and (R, N, A) of normalised actions → (R, N, C): each
        agent's scaled observation, one-hot id, and the actions of the agents before it (the
        later agents' slots zero)."""
        n = self.n_agents
        o = obs * self.actor.in_scale
        ids = torch.eye(n, device=obs.device, dtype=obs.dtype).expand(*obs.shape[:-1], n)
        before = torch.ones(n, n, device=obs.device, dtype=obs.dtype).tril(-1)[:, : n - 1]
        if not self.config.sequential:
            before = torch.zeros_like(before)
        prev = actions[..., None, : n - 1, :] * before[:, :, None]  # (R, N, N-1, A)
        return torch.cat([o, ids, prev.flatten(-2)], -1)

    def _joint_input(self, obs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The critic's input rows: concatenated observations (R, N·O) or the state (R, S)."""
        return state if self.config.critic_input == "state" else obs.flatten(-2)

    def _q(self, critics: nn.Module, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return critics(x, u.flatten(-2))  # (2, R)

    # -- learning -------------------------------------------------------------------------------
    def loss(self, batch, gen):
        c = self.config
        dev = batch["obs"].device
        dims = self.dims.to(dev).to(batch["obs"].dtype)  # (N, A)
        rows, nxt_rows, boot = transition_rows(batch["mask"], batch["terminated"])
        obs = batch["obs"][rows]  # (R, N, O)
        x = self._joint_input(obs, batch["state"][rows])
        data_u = self.normalise(batch["actions"])[rows]  # (R, N, A)
        # critic (IQL): V towards an expectile of the target Q, Q towards r + γ V(o')
        with torch.no_grad():
            v_next = torch.zeros(x.shape[0], device=dev)
            if nxt_rows.any():
                x_next = self._joint_input(batch["obs"][nxt_rows], batch["state"][nxt_rows])
                v_next[boot] = self.value(x_next, x_next[:, :0])[0]
            y = batch["rewards"][rows] + c.gamma * v_next * boot
            q_target = self._q(self.target_critics, x, data_u).min(0).values
        v = self.value(x, x[:, :0])[0]
        diff = q_target - v
        v_loss = (torch.abs(c.expectile - (diff < 0).to(diff.dtype)) * diff**2).mean()
        qs = self._q(self.critics, x, data_u)
        q_loss = ((qs - y) ** 2).mean()
        # behaviour: agent i's action given its observation and its predecessors' actions
        t = torch.rand(x.shape[0], 1, generator=gen, device=dev) * (1 - T_MIN) + T_MIN
        alpha, sigma = vp_schedule(t)
        z = torch.randn(data_u.shape, generator=gen, device=dev) * dims
        noised = alpha[..., None] * data_u + sigma[..., None] * z
        eps = self.behaviour(noised, self._conditions(obs, data_u), t.expand(-1, self.n_agents))
        bc = (((eps - z) * dims) ** 2).sum(-1).mean()
        loss = q_loss + v_loss + bc
        info = {
            "q_loss": float(q_loss.detach()),
            "v_loss": float(v_loss.detach()),
            "bc_loss": float(bc.detach()),
            "q_data": float(qs[0].detach().mean()),
        }
        if self.updates >= c.policy_start:
            actor, more = self._policy_loss(obs, x, dims, gen)
            loss = loss + actor
            info.update(more)
        info["loss"] = float(loss.detach())
        return loss, info

    def _policy_loss(self, obs, x, dims, gen):
        """SRPO's surrogate for every agent at once: its gradient in âⁱ is
        wt·ε_ψ(âⁱ_t | oⁱ, â^{<i}) − β ∇_{aⁱ} Q̄(o, â)."""
        c = self.config
        dev = obs.device
        pi = self.actor(obs)  # (R, N, A)
        joint = pi.detach().requires_grad_(True)
        q_pi = self.target_critics(x, joint.flatten(-2)).mean(0)  # targets hold no grad
        (grad,) = torch.autograd.grad(q_pi.sum(), joint)
        grad = grad * dims
        if c.normalise_guidance:
            grad = grad / (grad**2).sum(-1, keepdim=True).div(
                dims.sum(-1).clamp(min=1)
            ).sqrt().clamp(min=1e-8)
        lo, hi = T_POLICY
        t = torch.rand(pi.shape[:-1], generator=gen, device=dev) * (hi - lo) + lo  # (R, N)
        alpha, sigma = vp_schedule(t)
        with torch.no_grad():
            z = torch.randn(pi.shape, generator=gen, device=dev) * dims
            noised = alpha[..., None] * pi.detach() + sigma[..., None] * z
            eps = self.behaviour(noised, self._conditions(obs, pi.detach()), t) * dims
            wt = {"vds": sigma**2, "stable": torch.ones_like(sigma), "score": alpha / sigma}[
                c.weighting
            ]
        actor = ((wt[..., None] * eps - c.beta * grad) * pi).sum(-1).mean()
        return actor, {
            "actor_loss": float(actor.detach()),
            "q_policy": float(q_pi.detach().mean()),
            "score_norm": float(eps.norm(dim=-1).mean()),
            "guidance_norm": float(grad.norm(dim=-1).mean()),
        }

    def _targets_due(self) -> bool:
        return True

    @torch.no_grad()
    def after_update(self) -> None:
        for p, tp in zip(self.critics.parameters(), self.target_critics.parameters()):
            tp.lerp_(p, self.config.tau)

    # -- acting ---------------------------------------------------------------------------------
    def policy(self) -> FeedForwardPolicy:
        """The decentralised deterministic policy: each agent's action from its observation."""
        low = self.low.numpy()
        return FeedForwardPolicy(
            self.actor,
            low,
            low + self.span.numpy(),
            name=self.name,
            env_id=self.spec.env_id,
            device=str(self.device),
            spec=self.spec,
        )
