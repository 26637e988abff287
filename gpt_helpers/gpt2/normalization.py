"""Layer normalization (notebook 01)."""

import torch
from torch import nn

__all__ = ["LayerNorm"]


class LayerNorm(nn.Module):
    """Normalize each token's vector over its features, then scale and shift."""

    def __init__(self, emb_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps  # keeps the division finite when a row is constant
        self.scale = nn.Parameter(torch.ones(emb_dim))  # gamma, learned
        self.shift = nn.Parameter(torch.zeros(emb_dim))  # beta, learned

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., emb_dim); statistics over the last dim only, one pair per token
        mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
        # biased variance (divide by n, not n - 1), as GPT-2 and torch.nn.LayerNorm do
        var = x.var(dim=-1, keepdim=True, unbiased=False)  # (..., 1)
        norm_x = (x - mean) / torch.sqrt(var + self.eps)
        return self.scale * norm_x + self.shift
