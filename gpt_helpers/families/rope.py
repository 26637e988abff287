"""Rotary position embedding, RoPE, with Llama 3's frequency scaling (notebook 09)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Llama3RopeScaling", "rope_frequencies", "llama3_scaled_frequencies", "rotate_half", "apply_rope", "RoPE"]


@dataclass(frozen=True)
class Llama3RopeScaling:
    """Llama 3's RoPE frequency scaling: slow rotations are slowed down further by `factor` for long context."""

    factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_context_length: int = 8192

    def __post_init__(self) -> None:
        for name in ("factor", "low_freq_factor", "high_freq_factor", "original_context_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
                raise ValueError(f"Llama3RopeScaling.{name} must be a positive finite number, got {value!r}")
        if not self.low_freq_factor < self.high_freq_factor:
            raise ValueError(
                f"Llama3RopeScaling needs low_freq_factor < high_freq_factor, got "
                f"{self.low_freq_factor} and {self.high_freq_factor}"
            )


def rope_frequencies(head_dim: int, theta_base: float = 10_000.0, device=None) -> torch.Tensor:
    """Rotation speeds (radians per position) of the head_dim // 2 feature pairs: theta_base^(-2i / head_dim)."""
    if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim <= 0 or head_dim % 2 != 0:
        raise ValueError(f"RoPE rotates pairs of features, so head_dim must be a positive even int, got {head_dim!r}")
    if isinstance(theta_base, bool) or not isinstance(theta_base, (int, float)) or not (0 < theta_base < math.inf):
        raise ValueError(f"RoPE's theta_base must be a positive finite number such as 10_000.0, got {theta_base!r}")
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim  # 0, 2/d, ... (< 1)
    return 1.0 / (theta_base**exponents)  # (head_dim // 2,), from 1 down to nearly 1 / theta_base


def llama3_scaled_frequencies(inv_freq: torch.Tensor, scaling: Llama3RopeScaling) -> torch.Tensor:
    """Divide the slow frequencies by scaling.factor, keep the fast ones, blend smoothly in between."""
    if not isinstance(scaling, Llama3RopeScaling):
        raise TypeError(f"scaling must be a Llama3RopeScaling, got {type(scaling).__name__}")
    if not isinstance(inv_freq, torch.Tensor) or not inv_freq.is_floating_point() or inv_freq.dim() != 1:
        raise TypeError("inv_freq must be the 1-D float tensor of rope_frequencies(head_dim, theta_base)")
    wavelength = 2 * math.pi / inv_freq  # positions per full turn of each pair
    long_wavelength = scaling.original_context_length / scaling.low_freq_factor  # slower than this: scale
    short_wavelength = scaling.original_context_length / scaling.high_freq_factor  # faster than this: keep
    scaled = torch.where(wavelength > long_wavelength, inv_freq / scaling.factor, inv_freq)
    # in between, blend: weight 0 at long_wavelength (fully scaled) .. 1 at short_wavelength (unchanged)
    smooth = (scaling.original_context_length / wavelength - scaling.low_freq_factor) / (
        scaling.high_freq_factor - scaling.low_freq_factor
    )
    blended = (1 - smooth) * scaled / scaling.factor + smooth * scaled
    in_between = ~(wavelength < short_wavelength) & ~(wavelength > long_wavelength)
    return torch.where(in_between, blended, scaled)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Map each pair (a, b) = (x[i], x[i + d/2]) to (-b, a): a quarter turn of every pair."""
    first, second = x.chunk(2, dim=-1)  # (..., d/2) each
    return torch.cat((-second, first), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate every feature pair of x (B, H, T, head_dim) by its position's angle; cos, sin are (T, head_dim)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"apply_rope rotates a float tensor, got {x.dtype if isinstance(x, torch.Tensor) else x!r}")
    if cos.shape != sin.shape or cos.dim() != 2 or x.shape[-2:] != cos.shape:
        raise ValueError(
            f"apply_rope: x (..., T, head_dim) = {tuple(x.shape)} needs cos and sin of shape (T, head_dim), got "
            f"{tuple(cos.shape)} and {tuple(sin.shape)}; compute them with RoPE(head_dim)(positions of these T tokens)"
        )
    # (a, b) -> (a cos - b sin, b cos + a sin): a 2-D rotation, written for all pairs at once
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)


class RoPE(nn.Module):
    """Cosines and sines of the rotation angles position * frequency, for the positions asked for."""

    def __init__(self, head_dim: int, theta_base: float = 10_000.0, scaling: Llama3RopeScaling | None = None):
        super().__init__()
        rope_frequencies(head_dim, theta_base, device="meta")  # checks head_dim and theta_base, allocates nothing
        if scaling is not None and not isinstance(scaling, Llama3RopeScaling):
            raise TypeError(f"RoPE's scaling must be None or a Llama3RopeScaling, got {type(scaling).__name__}")
        self.head_dim = head_dim
        self.theta_base = theta_base
        self.scaling = scaling
        # no parameters and no buffers: the frequencies follow from the config, so they are computed in float32
        # on each call (a few dozen numbers) and nothing can go stale after .to(dtype) or loading

    def frequencies(self, device=None) -> torch.Tensor:
        """The head_dim // 2 rotation speeds, scaled for long context when scaling is given."""
        inv_freq = rope_frequencies(self.head_dim, self.theta_base, device=device)
        return inv_freq if self.scaling is None else llama3_scaled_frequencies(inv_freq, self.scaling)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # positions: (T,) integers; the angle of pair i at position p is p * inv_freq[i]
        if not isinstance(positions, torch.Tensor) or positions.dim() != 1 or positions.is_floating_point():
            raise TypeError("RoPE expects a 1-D integer tensor of positions, e.g. torch.arange(T)")
        if positions.numel() and not positions.is_meta and int(positions.min()) < 0:
            raise ValueError(f"RoPE: positions must be >= 0, got {int(positions.min())}")
        angles = positions.float()[:, None] * self.frequencies(positions.device)[None, :]  # (T, head_dim / 2)
        angles = torch.cat((angles, angles), dim=-1)  # (T, head_dim): feature i and i + d/2 share an angle
        return angles.cos(), angles.sin()
