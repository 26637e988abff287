"""Root mean square normalization, RMSNorm (notebook 09)."""

import math

import torch
from torch import nn

__all__ = ["RMSNorm"]


class RMSNorm(nn.Module):
    """Divide each token's vector by its root mean square, then multiply by a learned scale (no mean, no shift)."""

    def __init__(self, emb_dim: int, eps: float = 1e-6):
        super().__init__()
        if isinstance(emb_dim, bool) or not isinstance(emb_dim, int) or emb_dim <= 0:
            raise ValueError(f"RMSNorm: emb_dim must be a positive int, got {emb_dim!r}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"RMSNorm: eps must be a small positive number such as 1e-6, got {eps!r}")
        self.eps = eps  # keeps the division finite for an all-zero vector
        self.scale = nn.Parameter(torch.ones(emb_dim))  # gamma, learned; there is no beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., emb_dim); one statistic per token: the mean of the squares over the features
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"RMSNorm expects a floating-point tensor, got {got}; convert it with x.float()")
        if x.shape[-1:] != self.scale.shape:
            raise ValueError(
                f"RMSNorm({self.scale.shape[0]}) got a tensor of shape {tuple(x.shape)}; the last dim differs"
            )
        x32 = x.float()  # in float32 even for bfloat16 weights, as Llama and Qwen3 do
        mean_square = x32.pow(2).mean(dim=-1, keepdim=True)  # (..., 1)
        norm_x = x32 * torch.rsqrt(mean_square + self.eps)
        return self.scale * norm_x.to(x.dtype)
