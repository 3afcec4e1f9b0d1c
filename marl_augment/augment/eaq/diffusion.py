"""The noise schedule and samplers, apart from the network (the diffusers way).

EAQ's network predicts tau_0 (not the noise), so both samplers are written for an x0-predictor:
DDPM's ancestral sampler over every step, and DDIM (eta = 0) over an evenly spaced subset. Both
can start part-way down the chain from given episodes noised to that step (SDEdit, Meng et al.
2022; GTA's partial noising): ``start`` holds the clean episodes and ``from_step`` the step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


class Schedule:
    """Cosine beta schedule (Nichol & Dhariwal 2021) over ``steps`` diffusion steps."""

    def __init__(self, steps: int = 100) -> None:
        self.steps = int(steps)
        s = 0.008
        t = np.linspace(0, steps, steps + 1, dtype=np.float64) / steps
        abar = np.cos((t + s) / (1 + s) * np.pi / 2) ** 2
        abar = abar / abar[0]
        betas = np.clip(1 - abar[1:] / abar[:-1], 0, 0.999)
        self.betas = torch.tensor(betas, dtype=torch.float32)
        self.alphas = 1.0 - self.betas
        self.abar = torch.cumprod(self.alphas, 0)
        self.abar_prev = torch.cat([torch.ones(1), self.abar[:-1]])
        self.post_var = self.betas * (1 - self.abar_prev) / (1 - self.abar)
        self.post_c0 = self.betas * self.abar_prev.sqrt() / (1 - self.abar)
        self.post_ct = (1 - self.abar_prev) * self.alphas.sqrt() / (1 - self.abar)

    def to(self, device) -> Schedule:
        for k, v in list(vars(self).items()):
            if isinstance(v, torch.Tensor):
                setattr(self, k, v.to(device))
        return self

    def q_sample(self, x0: torch.Tensor, k: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """tau_k = sqrt(abar_k) tau_0 + sqrt(1 - abar_k) eps  (k is 0-based)."""
        a = self.abar[k][:, None, None]
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def start_from(
        self,
        shape,
        generator: torch.Generator,
        device,
        start: torch.Tensor | None,
        from_step: int | None,
    ) -> tuple[torch.Tensor, int]:
        """The sampler's first tau and step: pure noise at the last step, or ``start`` (clean
        episodes) noised to ``from_step`` (SDEdit)."""
        noise = torch.randn(shape, generator=generator, device=device)
        if start is None:
            return noise, self.steps - 1
        k = self.steps - 1 if from_step is None else int(from_step)
        if not 0 <= k < self.steps:
            raise ValueError(f"from_step must be in 0..{self.steps - 1}, got {k}")
        kk = torch.full((shape[0],), k, device=device, dtype=torch.long)
        return self.q_sample(start.to(device), kk, noise), k


Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def ddpm_sample(
    model: Denoise,
    sched: Schedule,
    shape,
    generator: torch.Generator,
    device,
    clip: float | None = None,
    progress=None,
    start: torch.Tensor | None = None,
    from_step: int | None = None,
) -> torch.Tensor:
    """Ancestral sampling through every step (from ``from_step`` down, with ``start``)."""
    x, top = sched.start_from(shape, generator, device, start, from_step)
    for k in reversed(range(top + 1)):
        kk = torch.full((shape[0],), k, device=device, dtype=torch.long)
        x0 = model(x, kk)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        mean = sched.post_c0[k] * x0 + sched.post_ct[k] * x
        if k > 0:
            noise = torch.randn(shape, generator=generator, device=device)
            x = mean + sched.post_var[k].clamp(min=1e-20).sqrt() * noise
        else:
            x = mean
        if progress is not None:
            progress(1)
    return x


@torch.no_grad()
def ddim_sample(
    model: Denoise,
    sched: Schedule,
    shape,
    generator: torch.Generator,
    device,
    n_steps: int = 10,
    clip: float | None = None,
    progress=None,
    start: torch.Tensor | None = None,
    from_step: int | None = None,
) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) over ``n_steps`` evenly spaced diffusion steps (from
    ``from_step`` down, with ``start``: the steps of the full chain that lie below it, at least
    one)."""
    x, top = sched.start_from(shape, generator, device, start, from_step)
    ks = np.unique(np.linspace(0, sched.steps - 1, n_steps).round().astype(int))
    ks = np.unique(np.concatenate([[top], ks[ks < top]]))[::-1]
    for i, k in enumerate(ks):
        kk = torch.full((shape[0],), int(k), device=device, dtype=torch.long)
        x0 = model(x, kk)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        a = sched.abar[k]
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        a_prev = sched.abar[ks[i + 1]] if i + 1 < len(ks) else torch.tensor(1.0, device=device)
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        if progress is not None:
            progress(1)
    return x
