"""Model configuration: one frozen dataclass and the four GPT-2 presets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from difflib import get_close_matches

__all__ = ["GPTConfig", "GPT2_PRESETS", "PRESET_ALIASES"]

# The keys of the book's dict config (Raschka, "Build a Large Language Model (From Scratch)", chapter 4)
_BOOK_KEYS = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "drop_rate", "qkv_bias")


@dataclass(frozen=True)
class GPTConfig:
    """Hyper-parameters of a GPT-2 style model, validated on creation."""

    vocab_size: int = 50257
    context_length: int = 1024
    emb_dim: int = 768
    n_heads: int = 12
    n_layers: int = 12
    drop_rate: float = 0.1
    qkv_bias: bool = False
    tie_weights: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
            value = getattr(self, name)
            # bool is a subclass of int, but True is never a meaningful size.
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"GPTConfig.{name} must be an int, got {type(value).__name__} ({value!r})")
            if value <= 0:
                raise ValueError(f"GPTConfig.{name} must be positive, got {value}")
        if self.emb_dim % self.n_heads != 0:
            raise ValueError(
                f"GPTConfig.emb_dim ({self.emb_dim}) must be divisible by n_heads ({self.n_heads}) "
                f"so every head gets emb_dim // n_heads features; pick n_heads among the divisors of {self.emb_dim}"
            )
        if isinstance(self.drop_rate, bool) or not isinstance(self.drop_rate, (int, float)):
            raise TypeError(f"GPTConfig.drop_rate must be a float, got {type(self.drop_rate).__name__}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"GPTConfig.drop_rate must be in [0, 1), got {self.drop_rate}")
        for name in ("qkv_bias", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"GPTConfig.{name} must be True or False, got {getattr(self, name)!r}")

    @property
    def head_dim(self) -> int:
        """Features per attention head."""
        return self.emb_dim // self.n_heads

    def with_(self, **changes) -> GPTConfig:
        """Return a copy with some fields changed (validated again)."""
        _check_field_names(changes, "GPTConfig.with_")
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, config: Mapping[str, object]) -> GPTConfig:
        """Build a GPTConfig from the book's dict config (e.g. its GPT_CONFIG_124M), checking every key."""
        if not isinstance(config, Mapping):
            raise TypeError(f"GPTConfig.from_dict expects a dict, got {type(config).__name__}")
        _check_field_names(config, "GPTConfig.from_dict")
        missing = [key for key in _BOOK_KEYS if key not in config]
        if missing:
            raise ValueError(
                f"GPTConfig.from_dict: missing key(s) {', '.join(map(repr, missing))}; the book's config gives all of "
                f"{', '.join(_BOOK_KEYS)} (tie_weights is optional, default False)"
            )
        return cls(**config)

    @classmethod
    def ensure(cls, cfg: GPTConfig | Mapping[str, object], owner: str) -> GPTConfig:
        """Return cfg as a GPTConfig (the book's dict config is converted); anything else is a TypeError."""
        if isinstance(cfg, Mapping):
            return cls.from_dict(cfg)  # the book's dict config, e.g. GPT_CONFIG_124M
        if not isinstance(cfg, cls):
            raise TypeError(
                f"{owner} expects a GPTConfig (or the book's dict config), got {type(cfg).__name__}; "
                "build one with GPTConfig(...)"
            )
        return cfg

    @classmethod
    def from_preset(cls, name: str, **overrides) -> GPTConfig:
        """Build one of the GPT-2 sizes ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl" or "124M", ...)."""
        known = ", ".join(sorted(set(GPT2_PRESETS) | set(PRESET_ALIASES)))
        if not isinstance(name, str):
            raise TypeError(f"GPT-2 preset name must be a str, got {type(name).__name__}; choose one of: {known}")
        key = PRESET_ALIASES.get(name, name)
        if key not in GPT2_PRESETS:
            raise ValueError(f"unknown GPT-2 preset {name!r}; choose one of: {known}")
        _check_field_names(overrides, "GPTConfig.from_preset")
        return replace(GPT2_PRESETS[key], **overrides)


def _check_field_names(changes: Mapping[str, object], where: str) -> None:
    """Raise a ValueError naming every key that is not a GPTConfig field, with the closest field as a hint."""
    allowed = [f.name for f in fields(GPTConfig)]
    unknown = [key for key in changes if key not in allowed]
    if unknown:
        hints = []
        for key in unknown:
            close = get_close_matches(str(key), allowed, n=1, cutoff=0.7)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"{where}: unknown key(s) {', '.join(hints)}; the accepted keys are {', '.join(allowed)}")


# The four GPT-2 sizes. These presets are untied and without q/k/v biases: 163,009,536 / 406,212,608 /
# 838,220,800 / 1,637,792,000 parameters. OpenAI's released checkpoints tie the output head to the token
# embedding and have q/k/v biases (tie_weights=True, qkv_bias=True): 124,439,808 / 354,823,168 / 774,030,080 /
# 1,557,611,200 parameters, which round to the names 124M/355M/774M/1558M (tied but without the biases the last
# one would be 1,557,380,800, i.e. 1557M). The study note's "1.24亿、3.45亿、7.62亿和15.42亿" are names or rough
# figures: the first is the corrected name, the other three are the GPT-2 paper's earlier 345M/762M/1542M
# (notebook 05, section 6).
GPT2_PRESETS: dict[str, GPTConfig] = {
    "gpt2": GPTConfig(emb_dim=768, n_layers=12, n_heads=12),
    "gpt2-medium": GPTConfig(emb_dim=1024, n_layers=24, n_heads=16),
    "gpt2-large": GPTConfig(emb_dim=1280, n_layers=36, n_heads=20),
    "gpt2-xl": GPTConfig(emb_dim=1600, n_layers=48, n_heads=25),
}

PRESET_ALIASES: dict[str, str] = {
    "124M": "gpt2",
    "355M": "gpt2-medium",
    "774M": "gpt2-large",
    "1558M": "gpt2-xl",
    "gpt2-small": "gpt2",
}
