"""GELU activation and the position-wise feed-forward network (notebook 02)."""

import math

import torch
from torch import nn

from .config import GPTConfig

__all__ = ["GELU", "FeedForward"]


class GELU(nn.Module):
    """GELU with the tanh approximation used by GPT-2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"GELU expects a torch.Tensor, got {type(x).__name__}; convert it with torch.as_tensor(x)")
        # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) approximates x * Phi(x)
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


class FeedForward(nn.Module):
    """Expand to 4 * emb_dim, apply GELU, project back to emb_dim."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        cfg = GPTConfig.ensure(cfg, "FeedForward")  # the book passes its dict config
        self.layers = nn.Sequential(
            nn.Linear(cfg.emb_dim, 4 * cfg.emb_dim),  # (B, T, C) -> (B, T, 4C)
            GELU(),
            nn.Linear(4 * cfg.emb_dim, cfg.emb_dim),  # (B, T, 4C) -> (B, T, C)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        emb_dim = self.layers[0].in_features
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            got = f"dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"FeedForward expects a float tensor, got {got}")
        if x.dim() == 0 or x.shape[-1] != emb_dim:
            raise ValueError(f"FeedForward expects the last dim to be emb_dim={emb_dim}, got shape {tuple(x.shape)}")
        return self.layers(x)
