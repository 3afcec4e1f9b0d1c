"""The noise schedule and samplers, apart from the network (the diffusers way).

EAQ's network predicts tau_0 (not the noise), so both samplers are written for an x0-predictor:
DDPM's ancestral sampler over every step, and DDIM (eta = 0) over an evenly spaced subset.
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
) -> torch.Tensor:
    """Ancestral sampling through every step."""
    x = torch.randn(shape, generator=generator, device=device)
    for k in reversed(range(sched.steps)):
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
) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) over ``n_steps`` evenly spaced diffusion steps."""
    ks = np.unique(np.linspace(0, sched.steps - 1, n_steps).round().astype(int))[::-1]
    x = torch.randn(shape, generator=generator, device=device)
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
