"""GELU activation and the position-wise feed-forward network (notebook 02)."""

import math

import torch
from torch import nn

from .config import GPTConfig

__all__ = ["GELU", "FeedForward"]


class GELU(nn.Module):
    """GELU with the tanh approximation used by GPT-2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) approximates x * Phi(x)
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


class FeedForward(nn.Module):
    """Expand to 4 * emb_dim, apply GELU, project back to emb_dim."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(cfg.emb_dim, 4 * cfg.emb_dim),  # (B, T, C) -> (B, T, 4C)
            GELU(),
            nn.Linear(4 * cfg.emb_dim, cfg.emb_dim),  # (B, T, 4C) -> (B, T, C)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
