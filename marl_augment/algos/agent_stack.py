"""Several :class:`~marl_augment.algos.common.AgentNet` s over the same training windows in one pass.

An update runs up to three agent networks over the same (B·N, T) rows: the online Q network, its
target copy and, for QMIX+BCQ, the behaviour-cloning network. On a CPU their cost is less the
arithmetic (96×64 matrices) than the hundreds of small operators ``nn.GRU`` and autograd run per
window. :func:`run_agent_stack` therefore

- runs every network of the stack at once: the input layers as batched products over all steps,
  then per step one batched recurrent product and one pass over the gates of all networks (the
  target network's forward comes nearly free with the online one's);
- has a hand-written backward (:class:`_AgentStack`) for the trained networks only: per step one
  pass and one product, the gate derivatives prepared by the forward, the weight gradients as a
  few large products after the loop.

The per-step gate passes are C++ (``_kernels.cpp``, see :mod:`marl_augment.algos.kernels`) for
float32 on the CPU, else :class:`_PythonRecurrence` (the same values in ATen operators).
It computes exactly ``AgentNet.forward`` (PyTorch's GRU: gates r, z, n in that order,
n = tanh(W_in a + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h) from a zero hidden state;
``tests/test_algos.py`` checks values and gradients of both versions against ``nn.GRU`` under
autograd.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .common import AgentNet, agent_inputs, per_agent
from .kernels import cpu_kernels


def _tensors(net: AgentNet) -> list[torch.Tensor]:
    """The tensors of one AgentNet, in the order :class:`_AgentStack` takes them."""
    return [net.in_scale, net.fc.weight, net.fc.bias, net.gru.weight_ih_l0, net.gru.bias_ih_l0,
            net.gru.weight_hh_l0, net.gru.bias_hh_l0, net.out.weight, net.out.bias]


_PER_NET = 9


class _AgentStack(torch.autograd.Function):
    """Forward of S agent networks over (R, T, D) rows; gradients for the first ``n_grad``."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, n_grad: int, *flat: torch.Tensor):  # noqa: D102
        k = _PER_NET
        s, g = len(flat) // k, int(n_grad)
        scale, w_fc, b_fc, w_ih, b_ih, w_hh, b_hh, w_out, b_out = (torch.stack(flat[i::k]) for i in range(k))
        r, t, d = rows.shape
        h_dim = w_hh.shape[-1]
        # time-major rows (t, r): every step's slice is one contiguous block per network
        x = rows.transpose(0, 1).reshape(1, t * r, d) * scale.unsqueeze(1)                # (S, TR, D)
        a1 = torch.baddbmm(b_fc.unsqueeze(1), x, w_fc.transpose(1, 2)).relu_()             # (S, TR, H)
        gi = torch.baddbmm(b_ih.unsqueeze(1), a1, w_ih.transpose(1, 2)).view(s, t, r, 3 * h_dim)
        h_all, m, a, z = _recurrence(gi).forward(gi, w_hh.transpose(1, 2), b_hh, g)
        y = h_all.view(s, t * r, h_dim).relu()
        q = torch.baddbmm(b_out.unsqueeze(1), y, w_out.transpose(1, 2)).view(s, t, r, -1).transpose(1, 2)
        ctx.n_grad, ctx.n_nets = g, s
        if g:
            h_prev = torch.cat([h_all.new_zeros(g, 1, r, h_dim), h_all[:g, :-1]], dim=1)
            ctx.save_for_backward(x[:g], a1[:g], h_prev, m, a, z, y[:g], w_fc[:g], w_ih[:g], w_hh[:g], w_out[:g])
        rest = q[g:]
        ctx.mark_non_differentiable(rest)
        return q[:g], rest

    @staticmethod
    @once_differentiable
    def backward(ctx, dq: torch.Tensor, _drest: torch.Tensor):  # noqa: D102
        x, a1, h_prev, m, a, z, y, w_fc, w_ih, w_hh, w_out = ctx.saved_tensors
        g, (_, t, r, h_dim) = ctx.n_grad, h_prev.shape
        dq = dq.transpose(1, 2).reshape(g, t * r, -1)                                      # time-major
        d_w_out = torch.bmm(dq.transpose(1, 2), y)
        dh_out = torch.bmm(dq, w_out).mul_(y > 0).view(g, t, r, h_dim)   # ∂L/∂h_t from the output layer
        d_gh, d_gi = (v.view(g, t * r, 3 * h_dim) for v in _recurrence(dh_out).backward(dh_out, m, a, z, w_hh))
        d_w_hh = torch.bmm(d_gh.transpose(1, 2), h_prev.view(g, t * r, h_dim))
        d_w_ih = torch.bmm(d_gi.transpose(1, 2), a1)
        d_a1 = torch.bmm(d_gi, w_ih).mul_(a1 > 0)
        d_w_fc = torch.bmm(d_a1.transpose(1, 2), x)
        grads: list[torch.Tensor | None] = [None, None]
        per_net = (None, d_w_fc, d_a1.sum(1), d_w_ih, d_gi.sum(1), d_w_hh, d_gh.sum(1), d_w_out, dq.sum(1))
        for j in range(ctx.n_nets):
            grads.extend(None if j >= g or gr is None else gr[j] for gr in per_net)
        return tuple(grads)


class _PythonRecurrence:
    """The GRU recurrence in ATen operators: what ``_kernels.cpp`` computes (see its comments
    for the quantities), for any device and dtype, and wherever the C++ version cannot be built."""

    @staticmethod
    def forward(gi: torch.Tensor, w_hh_t: torch.Tensor, b_hh: torch.Tensor, g: int) -> list[torch.Tensor]:
        """``gi`` (S, T, R, 3H) input-side gate pre-activations → h (S, T, R, H) and, for the
        first ``g`` networks, the gate factors m (G, T, R, 3, H), a and z (G, T, R, H)."""
        s, _, r, h3 = gi.shape
        h_dim = h3 // 3
        h = gi.new_zeros(s, r, h_dim)
        hs, ms, as_, zs = [], [], [], []
        for gi_i in gi.unbind(1):
            gh = torch.baddbmm(b_hh.unsqueeze(1), h, w_hh_t)                               # (S, R, 3H)
            rz = torch.add(gi_i[..., : 2 * h_dim], gh[..., : 2 * h_dim]).sigmoid_()
            gate_r, gate_z, gh_n = rz[..., :h_dim], rz[..., h_dim:], gh[..., 2 * h_dim:]
            n = torch.addcmul(gi_i[..., 2 * h_dim:], gate_r, gh_n).tanh_()
            h_new = torch.addcmul(n, gate_z, h - n)
            if g:
                gr, gz, gn = gate_r[:g], gate_z[:g], n[:g]
                a = (1 - gz) * (1 - gn * gn)
                ms.append(torch.stack([a * gh_n[:g] * gr * (1 - gr), (h[:g] - gn) * gz * (1 - gz), a * gr], dim=2))
                as_.append(a), zs.append(gz)
            hs.append(h_new)
            h = h_new
        empty = gi.new_empty(0, *gi.shape[1:3], h_dim)
        m = torch.stack(ms, 1) if g else empty.unsqueeze(3).expand(-1, -1, -1, 3, -1)
        return [torch.stack(hs, 1), m, torch.stack(as_, 1) if g else empty, torch.stack(zs, 1) if g else empty]

    @staticmethod
    def backward(dh_out: torch.Tensor, m: torch.Tensor, a: torch.Tensor, z: torch.Tensor,
                 w_hh: torch.Tensor) -> list[torch.Tensor]:
        """∂L/∂(W_h h_{t−1} + b_h) and ∂L/∂(W_i a_t + b_i), each (G, T, R, 3H), from the output
        layer's ∂L/∂h_t ``dh_out`` (G, T, R, H) and the forward's gate factors."""
        g, t, r, h_dim = dh_out.shape
        dh_all = dh_out.new_empty(g, t, r, h_dim)
        carry = dh_out.new_zeros(g, r, h_dim)
        dh_out_t, dh_all_t, m_t, z_t = dh_out.unbind(1), dh_all.unbind(1), m.unbind(1), z.unbind(1)
        for i in reversed(range(t)):
            dh = torch.add(dh_out_t[i], carry, out=dh_all_t[i])
            dgh = (dh.unsqueeze(2) * m_t[i]).view(g, r, 3 * h_dim)
            carry = torch.baddbmm(dh * z_t[i], dgh, w_hh)
        dh_all = dh_all.unsqueeze(3)
        d_gh = (dh_all * m).view(g, t, r, 3 * h_dim)
        d_gi = (dh_all * torch.stack([m[:, :, :, 0], m[:, :, :, 1], a], dim=3)).view(g, t, r, 3 * h_dim)
        return [d_gh, d_gi]


def _recurrence(like: torch.Tensor) -> Any:
    """The fused C++ recurrence for float32 CPU tensors where it builds, else the Python one."""
    return cpu_kernels(like) or _PythonRecurrence


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
    b, _, n_agents, _ = obs.shape
    flat = [tensor for net in nets for tensor in _tensors(net)]
    trained_q, other_q = _AgentStack.apply(agent_inputs(obs), g, *flat)
    return [per_agent(q, b, n_agents) for q in (*trained_q.unbind(0), *other_q.unbind(0))]
