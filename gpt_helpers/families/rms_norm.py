"""Root mean square normalization, RMSNorm (notebook 09)."""

import torch
from torch import nn

__all__ = ["RMSNorm"]


class RMSNorm(nn.Module):
    """Divide each token's vector by its root mean square, then multiply by a learned scale (no mean, no shift)."""

    def __init__(self, emb_dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps  # keeps the division finite for an all-zero vector
        self.scale = nn.Parameter(torch.ones(emb_dim))  # gamma, learned; there is no beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., emb_dim); one statistic per token: the mean of the squares over the features
        x32 = x.float()  # in float32 even for bfloat16 weights, as Llama and Qwen3 do
        mean_square = x32.pow(2).mean(dim=-1, keepdim=True)  # (..., 1)
        norm_x = x32 * torch.rsqrt(mean_square + self.eps)
        return self.scale * norm_x.to(x.dtype)
