"""A tiny SR network for tests of training and evaluation."""

from __future__ import annotations

import torch
from torch import nn


class TinySR(nn.Module):
    """conv-relu-conv + pixel shuffle: a few hundred parameters, trains in seconds."""

    def __init__(self, scale: int = 2, width: int = 8):
        super().__init__()
        self.scale = scale
        self.in_channels = 3
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 3 * scale * scale, 3, padding=1)
        )
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest")
        return up + self.shuffle(self.body(x))
