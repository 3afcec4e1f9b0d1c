"""Several :class:`~marl_augment.algos.common.AgentNet` s over the same windows in one pass.

An update runs up to three agent networks over the same (B·N, T) rows: the online Q network, its
target copy and, for QMIX+BCQ, the behaviour-cloning network. On a CPU their cost is less the
arithmetic (96×64 matrices) than the hundreds of small operators ``nn.GRU`` and autograd run per
window. :func:`run_agent_stack` therefore

- runs every network of the stack at once: the input layers as batched products over all steps,
  then per step one batched recurrent product and one C++ pass over the gates of all networks
  (``_kernels.cpp``; the target network's forward comes nearly free with the online one's);
- has a hand-written backward (:class:`_AgentStack`) for the trained networks only: per step one
  C++ pass and one product, the gate derivatives prepared by the forward, the weight gradients as
  a few large products after the loop.

It computes ``AgentNet.forward`` (PyTorch's GRU: gates r, z, n in that order,
n = tanh(W_in a + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h) from a zero hidden state,
to float rounding; ``tests/test_algos.py`` checks values and gradients against ``nn.GRU`` under
autograd. Where the C++ kernels are not available (:mod:`marl_augment.algos.kernels`: CUDA,
float64, no compiler, ``MARL_AUGMENT_NO_CPP=1``) the networks run one by one through ``nn.GRU``
(cuDNN's on CUDA); docs/performance.md compares the two.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.autograd.function import once_differentiable

from .common import AgentNet, agent_inputs, per_agent, run_agents
from .kernels import cpu_kernels


def _tensors(net: AgentNet) -> list[torch.Tensor]:
    """The tensors of one AgentNet, in the order :class:`_AgentStack` takes them."""
    return [
        net.in_scale,
        net.fc.weight,
        net.fc.bias,
        net.gru.weight_ih_l0,
        net.gru.bias_ih_l0,
        net.gru.weight_hh_l0,
        net.gru.bias_hh_l0,
        net.out.weight,
        net.out.bias,
    ]


_PER_NET = 9


class _AgentStack(torch.autograd.Function):
    """Forward of S agent networks over (R, T, D) float32 CPU rows; gradients for the first
    ``n_grad``. The C++ kernels' ``forward`` and ``backward`` do the per-step work."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, n_grad: int, *flat: torch.Tensor):  # noqa: D102
        k = _PER_NET
        s, g = len(flat) // k, int(n_grad)
        scale, w_fc, b_fc, w_ih, b_ih, w_hh, b_hh, w_out, b_out = (
            torch.stack(flat[i::k]) for i in range(k)
        )
        r, t, d = rows.shape
        h_dim = w_hh.shape[-1]
        # time-major rows (t, r): every step's slice is one contiguous block per network
        x = rows.transpose(0, 1).reshape(1, t * r, d) * scale.unsqueeze(1)  # (S, TR, D)
        a1 = torch.baddbmm(b_fc.unsqueeze(1), x, w_fc.transpose(1, 2)).relu_()  # (S, TR, H)
        gi = torch.baddbmm(b_ih.unsqueeze(1), a1, w_ih.transpose(1, 2)).view(s, t, r, 3 * h_dim)
        h_all, m, a, z = cpu_kernels(gi).forward(gi, w_hh.transpose(1, 2), b_hh, g)
        y = h_all.view(s, t * r, h_dim).relu()
        q = (
            torch.baddbmm(b_out.unsqueeze(1), y, w_out.transpose(1, 2))
            .view(s, t, r, -1)
            .transpose(1, 2)
        )
        ctx.n_grad, ctx.n_nets = g, s
        if g:
            h_prev = torch.cat([h_all.new_zeros(g, 1, r, h_dim), h_all[:g, :-1]], dim=1)
            ctx.save_for_backward(
                x[:g], a1[:g], h_prev, m, a, z, y[:g], w_fc[:g], w_ih[:g], w_hh[:g], w_out[:g]
            )
        rest = q[g:]
        ctx.mark_non_differentiable(rest)
        return q[:g], rest

    @staticmethod
    @once_differentiable
    def backward(ctx, dq: torch.Tensor, _drest: torch.Tensor):  # noqa: D102
        x, a1, h_prev, m, a, z, y, w_fc, w_ih, w_hh, w_out = ctx.saved_tensors
        g, (_, t, r, h_dim) = ctx.n_grad, h_prev.shape
        dq = dq.transpose(1, 2).reshape(g, t * r, -1)  # time-major
        d_w_out = torch.bmm(dq.transpose(1, 2), y)
        dh_out = (
            torch.bmm(dq, w_out).mul_(y > 0).view(g, t, r, h_dim)
        )  # ∂L/∂h_t from the output layer
        d_gh, d_gi = (
            v.view(g, t * r, 3 * h_dim) for v in cpu_kernels(dh_out).backward(dh_out, m, a, z, w_hh)
        )
        d_w_hh = torch.bmm(d_gh.transpose(1, 2), h_prev.view(g, t * r, h_dim))
        d_w_ih = torch.bmm(d_gi.transpose(1, 2), a1)
        d_a1 = torch.bmm(d_gi, w_ih).mul_(a1 > 0)
        d_w_fc = torch.bmm(d_a1.transpose(1, 2), x)
        grads: list[torch.Tensor | None] = [None, None]
        per_net = (
            None,
            d_w_fc,
            d_a1.sum(1),
            d_w_ih,
            d_gi.sum(1),
            d_w_hh,
            d_gh.sum(1),
            d_w_out,
            dq.sum(1),
        )
        for j in range(ctx.n_nets):
            grads.extend(None if j >= g or gr is None else gr[j] for gr in per_net)
        return tuple(grads)


def run_agent_stack(nets: Sequence[AgentNet], obs: torch.Tensor) -> list[torch.Tensor]:
    """Outputs (B, T, N, A) of each of ``nets`` for a (B, T, N, O) window batch, as
    :func:`~marl_augment.algos.common.run_agents` gives them one by one.

    Networks with trainable parameters get gradients (they must come first); the others'
    outputs are constants. Under ``torch.no_grad()`` nothing is kept for a backward.
    """
    nets = list(nets)
    trained = [any(p.requires_grad for p in net.parameters()) for net in nets]
    g = sum(trained) if torch.is_grad_enabled() else 0
    if torch.is_grad_enabled() and trained != [True] * g + [False] * (len(nets) - g):
        raise ValueError("run_agent_stack: networks that train must come before the others")
    if cpu_kernels(obs) is None:  # CUDA (cuDNN's GRU), float64, or no C++ build: net by net
        outputs = []
        for net, train in zip(nets, trained):
            with torch.set_grad_enabled(train and torch.is_grad_enabled()):
                outputs.append(run_agents(net, obs))
        return outputs
    b, _, n_agents, _ = obs.shape
    flat = [tensor for net in nets for tensor in _tensors(net)]
    trained_q, other_q = _AgentStack.apply(agent_inputs(obs), g, *flat)
    return [per_agent(q, b, n_agents) for q in (*trained_q.unbind(0), *other_q.unbind(0))]
