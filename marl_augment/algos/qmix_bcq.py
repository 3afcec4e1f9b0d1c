"""QMIX+BCQ (OG-MARL's discrete-action system, in torch).

Besides QMIX's networks, a recurrent behaviour-cloning network (same architecture) learns the
data's actions with cross-entropy. An action is *allowed* when it is legal and its cloned
probability is at least ``threshold`` times the most likely legal action's (Fujimoto et al.'s
discrete BCQ, threshold 0.4): the TD target's greedy next action is taken only among allowed
actions, and so is the trained policy's. Q-learning then never bootstraps from actions the data
hardly ever takes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .agent_stack import run_agent_stack
from .common import AgentNet, cross_entropy, legal_or_all, masked
from .qmix import QmixBase, QmixConfig


@dataclass
class QmixBcqConfig(QmixConfig):
    """QMIX+BCQ hyper-parameters."""

    threshold: float = 0.4
    """An action is allowed when π(a) / max_legal π ≥ threshold (π: the cloned behaviour)."""
    act_allowed_only: bool = True
    """The trained policy acts greedily among allowed actions only (Fujimoto et al.'s discrete
    BCQ); false: greedily among all legal actions, as OG-MARL's implementation acts (there the
    filter shapes only the TD target)."""


def allowed_actions(bc_logits: torch.Tensor, legal: torch.Tensor, threshold: float) -> torch.Tensor:
    """Legal actions whose cloned probability is at least ``threshold`` × the best legal one's."""
    probs = torch.softmax(masked(bc_logits, legal), dim=-1)
    best = probs.max(-1, keepdim=True).values
    return legal & (probs >= threshold * best)


class QmixBcq(QmixBase):
    name = "qmix-bcq"
    Config = QmixBcqConfig

    def check_config(self) -> None:
        super().check_config()
        if not 0 <= self.config.threshold <= 1:
            raise ConfigError(f"threshold must be in [0, 1], got {self.config.threshold}")

    def build(self) -> None:
        super().build()
        self.bc = AgentNet(self.in_dim, self.n_actions, self.config.hidden)

    def num_parameters(self) -> int:
        return super().num_parameters() + AgentNet.size(
            self.in_dim, self.n_actions, self.config.hidden
        )

    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "bc": self.bc}

    def trained_modules(self) -> list[nn.Module]:
        return [self.agent, self.mixer, self.bc]

    def acting_modules(self) -> list[str]:
        return ["agent", "bc"]

    def act_logits(self, outputs, avail):
        if not self.config.act_allowed_only:
            return masked(outputs["agent"], avail)
        allowed = allowed_actions(outputs["bc"], avail, self.config.threshold)
        return masked(outputs["agent"], allowed)

    def loss(self, batch, gen):
        legal = legal_or_all(batch["avail"])
        q, bc_logits, target_q = run_agent_stack(
            [self.agent, self.bc, self.target_agent], batch["obs"]
        )
        agent_steps = batch["mask"][..., None].expand_as(batch["actions"])
        bc_loss = cross_entropy(bc_logits, batch["actions"], legal, agent_steps)
        allowed = allowed_actions(bc_logits.detach(), legal, self.config.threshold)
        q_tot = self.mixer(q.gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1), batch["state"])
        td, info = self.td_loss(batch, q, q_tot, allowed, target_q)
        loss = td + bc_loss
        n_allowed = allowed.sum(-1).float()[agent_steps].mean()
        n_legal = legal.sum(-1).float()[agent_steps].mean()
        info.update(
            bc_loss=float(bc_loss.detach()),
            loss=float(loss.detach()),
            allowed_share=float(n_allowed / n_legal),
        )
        return loss, info
