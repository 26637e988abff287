"""YaRN, the RoPE scaling DeepSeek-V3 uses for its 128k context, and its softmax-scale correction (notebook 11).

What is where: `YarnRopeScaling` holds the settings of config.json's rope_scaling; `yarn_mscale` is YaRN's
attention-temperature formula 0.1 * mscale * ln(factor) + 1; `yarn_frequencies` blends each pair's original and
interpolated rotation speed; `yarn_attention_factor` is the multiplier on cos and sin; `yarn_softmax_scale` is
the softmax scale of multi-head latent attention with DeepSeek-V3's correction; `YarnRoPE` is the course's
`RoPE` with these frequencies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .rope import RoPE

__all__ = [
    "YarnRopeScaling",
    "yarn_mscale",
    "yarn_frequencies",
    "yarn_attention_factor",
    "yarn_softmax_scale",
    "YarnRoPE",
]


@dataclass(frozen=True)
class YarnRopeScaling:
    """YaRN's RoPE scaling: fast rotations kept, slow ones slowed by `factor`, a linear ramp in between."""

    factor: float = 40.0
    original_context_length: int = 4096  # config.json: original_max_position_embeddings
    beta_fast: float = 32.0  # pairs turning more often than this within the original context: kept
    beta_slow: float = 1.0  # pairs turning less often than this: divided by factor
    mscale: float | None = None  # attention temperature of the rotated features (cos and sin)
    mscale_all_dim: float | None = None  # the same for the whole softmax scale (DeepSeek-V3)
    attention_factor: float | None = None  # an explicit multiplier on cos and sin, overrides mscale
    truncate: bool = True  # round the ramp's ends outward to whole pair indices, as DeepSeek-V3 does

    def __post_init__(self) -> None:
        for name in ("factor", "original_context_length", "beta_fast", "beta_slow"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"YarnRopeScaling.{name} must be a positive number, got {value!r}")
        for name in ("mscale", "mscale_all_dim", "attention_factor"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"YarnRopeScaling.{name} must be None or a number >= 0, got {value!r}")
        if not self.beta_slow < self.beta_fast:
            raise ValueError(f"YarnRopeScaling needs beta_slow < beta_fast, got {self.beta_slow} and {self.beta_fast}")
        if not isinstance(self.truncate, bool):
            raise TypeError(f"YarnRopeScaling.truncate must be True or False, got {self.truncate!r}")


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN's attention temperature for a context stretched `factor` times: 0.1 * mscale * ln(factor) + 1."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def yarn_frequencies(head_dim: int, theta_base: float, scaling: YarnRopeScaling) -> torch.Tensor:
    """The head_dim // 2 rotation speeds: original for fast pairs, divided by factor for slow ones, ramped between."""
    if head_dim % 2 != 0:
        raise ValueError(f"RoPE rotates pairs of features, so head_dim must be even, got {head_dim}")
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim  # (head_dim // 2,)
    periods = theta_base**exponents  # positions per radian of each pair
    original = 1.0 / periods  # extrapolation: the frequencies as trained
    interpolated = 1.0 / (scaling.factor * periods)  # interpolation: every pair slowed down `factor` times

    def pair_turning(turns: float) -> float:
        # the (fractional) pair index whose rotation makes `turns` full turns within the original context:
        # original_context_length * theta_base^(-2i / head_dim) = 2 pi turns, solved for i
        return head_dim * math.log(scaling.original_context_length / (turns * 2 * math.pi)) / (2 * math.log(theta_base))

    low, high = pair_turning(scaling.beta_fast), pair_turning(scaling.beta_slow)
    if scaling.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, head_dim - 1)
    if low == high:
        high += 0.001  # a ramp of zero width would divide by zero
    # 0 for pairs up to `low` (fast), 1 from `high` on (slow), linear in the pair index between
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    keep = 1 - ramp  # the weight of the original frequency: 1 for fast pairs, 0 for slow ones
    return interpolated * (1 - keep) + original * keep


def yarn_attention_factor(scaling: YarnRopeScaling) -> float:
    """The multiplier YaRN puts on cos and sin (so on every rotated query and key feature)."""
    if scaling.attention_factor is not None:
        return float(scaling.attention_factor)
    if scaling.mscale and scaling.mscale_all_dim:  # DeepSeek-V3: both 1.0, so the ratio is exactly 1
        return yarn_mscale(scaling.factor, scaling.mscale) / yarn_mscale(scaling.factor, scaling.mscale_all_dim)
    return yarn_mscale(scaling.factor)


def yarn_softmax_scale(qk_head_dim: int, scaling: YarnRopeScaling | None) -> float:
    """1 / sqrt(qk_head_dim), times yarn_mscale(factor, mscale_all_dim) squared when mscale_all_dim is set."""
    scale = qk_head_dim**-0.5
    if scaling is not None and scaling.mscale_all_dim:
        # the temperature multiplies queries and keys alike, so the product q . k gets it twice
        scale = scale * yarn_mscale(scaling.factor, scaling.mscale_all_dim) ** 2
    return scale


class YarnRoPE(RoPE):
    """RoPE with YaRN's frequencies; cos and sin carry yarn_attention_factor (1 for DeepSeek-V3)."""

    def __init__(self, head_dim: int, theta_base: float, scaling: YarnRopeScaling):
        super().__init__(head_dim, theta_base)
        self.yarn = scaling

    def frequencies(self, device=None) -> torch.Tensor:
        """The YaRN-blended rotation speeds of the head_dim // 2 pairs."""
        return yarn_frequencies(self.head_dim, self.theta_base, self.yarn).to(device)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = super().forward(positions)  # (T, head_dim) each, from self.frequencies()
        factor = yarn_attention_factor(self.yarn)
        return cos * factor, sin * factor
