"""A Conv1D temporal U-Net over (B, F, T) episode tensors (Janner et al.'s Diffuser design).

Residual blocks of two Conv1d -> GroupNorm -> Mish layers with the diffusion-step embedding
added in between, down-sampled by strided convolutions and up-sampled by transposed ones, with
skip connections. The horizon must be a multiple of ``2 ** (len(dims) - 1)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def groups_for(channels: int, wanted: int = 8) -> int:
    g = min(wanted, channels)
    while channels % g:
        g -= 1
    return g


class StepEmbedding(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), nn.Mish(), nn.Linear(dim * 4, dim))

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=k.device) / max(1, half - 1))
        args = k.float()[:, None] * freqs[None, :]
        return self.mlp(torch.cat([args.sin(), args.cos()], dim=-1))


class ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__(
            nn.Conv1d(cin, cout, kernel, padding=kernel // 2),
            nn.GroupNorm(groups_for(cout), cout),
            nn.Mish(),
        )


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int, kernel: int = 5) -> None:
        super().__init__()
        self.a = ConvBlock(cin, cout, kernel)
        self.b = ConvBlock(cout, cout, kernel)
        self.emb = nn.Sequential(nn.Mish(), nn.Linear(emb, cout))
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.a(x) + self.emb(e)[:, :, None]
        return self.b(h) + self.skip(x)


class TemporalUnet(nn.Module):
    """Predicts the clean episode tensor tau_0 from a noised one and the diffusion step."""

    def __init__(
        self, features: int, dims: tuple[int, ...] = (64, 128, 256), emb: int = 32, kernel: int = 5
    ) -> None:
        super().__init__()
        self.features = features
        self.levels = len(dims)
        self.embed = StepEmbedding(emb)
        chans = [features, *dims]
        self.down = nn.ModuleList()
        for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])):
            last = i == len(dims) - 1
            self.down.append(
                nn.ModuleList(
                    [
                        ResidualBlock(cin, cout, emb, kernel),
                        ResidualBlock(cout, cout, emb, kernel),
                        nn.Conv1d(cout, cout, 3, stride=2, padding=1)
                        if not last
                        else nn.Identity(),
                    ]
                )
            )
        mid = dims[-1]
        self.mid1 = ResidualBlock(mid, mid, emb, kernel)
        self.mid2 = ResidualBlock(mid, mid, emb, kernel)
        self.up = nn.ModuleList()
        for cin, cout in reversed(list(zip(chans[1:-1], chans[2:]))):
            self.up.append(
                nn.ModuleList(
                    [
                        ResidualBlock(cout * 2, cin, emb, kernel),
                        ResidualBlock(cin, cin, emb, kernel),
                        nn.ConvTranspose1d(cin, cin, 4, stride=2, padding=1),
                    ]
                )
            )
        self.out = nn.Sequential(
            ConvBlock(dims[0], dims[0], kernel), nn.Conv1d(dims[0], features, 1)
        )

    @property
    def multiple(self) -> int:
        return 2 ** (self.levels - 1)

    def forward(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        e = self.embed(k)
        skips = []
        for r1, r2, down in self.down:
            x = r2(r1(x, e), e)
            skips.append(x)
            x = down(x)
        x = self.mid2(self.mid1(x, e), e)
        for r1, r2, up in self.up:
            x = torch.cat([x, skips.pop()], dim=1)
            x = up(r2(r1(x, e), e))
        return self.out(x)
