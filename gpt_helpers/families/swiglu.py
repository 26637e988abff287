"""The SwiGLU feed-forward network of Llama and Qwen3 (notebook 09)."""

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["SwiGLUFeedForward"]


class SwiGLUFeedForward(nn.Module):
    """Two parallel projections to hidden_dim, one gated by SiLU, multiplied, then projected back."""

    def __init__(self, emb_dim: int, hidden_dim: int):
        super().__init__()
        for name, value in (("emb_dim", emb_dim), ("hidden_dim", hidden_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"SwiGLUFeedForward: {name} must be a positive int, got {value!r}")
        self.gate = nn.Linear(emb_dim, hidden_dim, bias=False)  # (B, T, C) -> (B, T, hidden): through SiLU
        self.up = nn.Linear(emb_dim, hidden_dim, bias=False)  # (B, T, C) -> (B, T, hidden): the values
        self.down = nn.Linear(hidden_dim, emb_dim, bias=False)  # (B, T, hidden) -> (B, T, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # SiLU(z) = z * sigmoid(z); the gate decides, feature by feature, how much of `up` passes
        return self.down(F.silu(self.gate(x)) * self.up(x))
