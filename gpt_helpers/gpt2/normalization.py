"""Layer normalization (notebook 01)."""

import math

import torch
from torch import nn

__all__ = ["LayerNorm"]


class LayerNorm(nn.Module):
    """Normalize each token's vector over its features, then scale and shift."""

    def __init__(self, emb_dim: int, eps: float = 1e-5):
        super().__init__()
        if isinstance(emb_dim, bool) or not isinstance(emb_dim, int) or emb_dim <= 0:
            raise ValueError(f"LayerNorm: emb_dim must be a positive int (the number of features), got {emb_dim!r}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps < math.inf:
            raise ValueError(f"LayerNorm: eps must be a small non-negative float such as 1e-5, got {eps!r}")
        self.eps = eps  # keeps the division finite when a row is constant
        self.scale = nn.Parameter(torch.ones(emb_dim))  # gamma, learned
        self.shift = nn.Parameter(torch.zeros(emb_dim))  # beta, learned

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.scale.shape[0]
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            got = f"dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"LayerNorm expects a float tensor, got {got}; convert it with torch.as_tensor(x).float()")
        if x.dim() == 0 or x.shape[-1] != n:
            raise ValueError(f"LayerNorm({n}) normalizes the last dim, which must be {n}; got shape {tuple(x.shape)}")
        # x: (..., emb_dim); statistics over the last dim only, one pair per token
        mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
        # biased variance (divide by n, not n - 1), as GPT-2 and torch.nn.LayerNorm do
        var = x.var(dim=-1, keepdim=True, unbiased=False)  # (..., 1)
        norm_x = (x - mean) / torch.sqrt(var + self.eps)
        return self.scale * norm_x + self.shift
