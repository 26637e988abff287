"""The Llama 3 / Qwen3 family: GPT-2's decoder with RMSNorm, RoPE, SwiGLU and GQA (notebook 09)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from difflib import get_close_matches

import torch
from torch import nn

from ..gpt2.attention import KVCache, LayerKVCache
from ..gpt2.model import check_token_ids, count_parameters
from .gqa import GroupedQueryAttention
from .rms_norm import RMSNorm
from .rope import Llama3RopeScaling, RoPE
from .swiglu import SwiGLUFeedForward

__all__ = [
    "LlamaQwenConfig",
    "LlamaQwenBlock",
    "LlamaQwenModel",
    "llama_qwen_parameter_breakdown",
    "llama_qwen_config_from_book",
    "rename_book_keys",
]


@dataclass(frozen=True)
class LlamaQwenConfig:
    """Hyper-parameters of a Llama 3 / Qwen3 style model, validated on creation."""

    vocab_size: int
    context_length: int
    emb_dim: int
    n_heads: int
    n_kv_heads: int  # key/value heads; n_heads / n_kv_heads query heads share each one (GQA)
    head_dim: int  # features per head; need not be emb_dim // n_heads (Qwen3-0.6B: 128, not 1024 // 16)
    n_layers: int
    hidden_dim: int  # width of the SwiGLU feed-forward network
    rope_theta: float = 10_000.0
    rope_scaling: Llama3RopeScaling | None = None
    qk_norm: bool = False  # RMSNorm on each head's queries and keys (Qwen3)
    norm_eps: float = 1e-6
    tie_weights: bool = False

    def __post_init__(self) -> None:
        sizes = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_kv_heads", "head_dim", "n_layers")
        for name in (*sizes, "hidden_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"LlamaQwenConfig.{name} must be an int, got {type(value).__name__} ({value!r})")
            if value <= 0:
                raise ValueError(f"LlamaQwenConfig.{name} must be positive, got {value}")
        if self.n_heads % self.n_kv_heads != 0:
            divisors = [d for d in range(1, self.n_heads + 1) if self.n_heads % d == 0]
            raise ValueError(
                f"LlamaQwenConfig.n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads}) "
                f"so every key/value head serves the same number of query heads; pick n_kv_heads from {divisors}"
            )
        if self.head_dim % 2 != 0:
            raise ValueError(f"LlamaQwenConfig.head_dim must be even (RoPE rotates pairs), got {self.head_dim}")
        for name in ("rope_theta", "norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
                raise ValueError(f"LlamaQwenConfig.{name} must be a positive finite number, got {value!r}")
        if self.rope_scaling is not None and not isinstance(self.rope_scaling, Llama3RopeScaling):
            raise TypeError(
                "LlamaQwenConfig.rope_scaling must be None or a Llama3RopeScaling, "
                f"got {type(self.rope_scaling).__name__}"
            )
        for name in ("qk_norm", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"LlamaQwenConfig.{name} must be True or False, got {getattr(self, name)!r}")

    def with_(self, **changes) -> LlamaQwenConfig:
        """Return a copy with some fields changed (validated again)."""
        return replace(self, **changes)


class LlamaQwenBlock(nn.Module):
    """RMSNorm -> grouped-query attention -> shortcut, then RMSNorm -> SwiGLU -> shortcut."""

    def __init__(self, cfg: LlamaQwenConfig):
        super().__init__()
        self.norm1 = RMSNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.att = GroupedQueryAttention(
            emb_dim=cfg.emb_dim,
            n_heads=cfg.n_heads,
            n_kv_heads=cfg.n_kv_heads,
            head_dim=cfg.head_dim,
            qk_norm=cfg.qk_norm,
            norm_eps=cfg.norm_eps,
        )
        self.norm2 = RMSNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.ff = SwiGLUFeedForward(cfg.emb_dim, cfg.hidden_dim)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv_cache: LayerKVCache | None = None
    ) -> torch.Tensor:
        # x: (B, T, C); the same Pre-norm layout as GPT-2's TransformerBlock, without dropout
        shortcut = x
        x = self.att(self.norm1(x), cos, sin, kv_cache=kv_cache) + shortcut
        shortcut = x
        x = self.ff(self.norm2(x)) + shortcut
        return x  # (B, T, C)


class LlamaQwenModel(nn.Module):
    """Token embedding, N blocks (positions enter through RoPE inside attention), final RMSNorm, output head."""

    def __init__(self, cfg: LlamaQwenConfig | Mapping):
        super().__init__()
        dtype = None
        if isinstance(cfg, Mapping):  # the book's dict config (chapter 5 bonus code: Llama 3.2, Qwen3)
            cfg, dtype = llama_qwen_config_from_book(cfg), cfg.get("dtype")
        if not isinstance(cfg, LlamaQwenConfig):
            raise TypeError(
                f"LlamaQwenModel expects a LlamaQwenConfig (or the book's dict config), got {type(cfg).__name__}; "
                "build one with LlamaQwenConfig(...)"
            )
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)  # no position embedding: RoPE replaces it
        self.rope = RoPE(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)  # shared by all blocks
        self.trf_blocks = nn.ModuleList(LlamaQwenBlock(cfg) for _ in range(cfg.n_layers))
        self.final_norm = RMSNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.out_head.weight = self.tok_emb.weight  # weight tying, as in notebook 05
        if dtype is not None:
            self.to(dtype)  # the book builds its weights in its config's "dtype" (torch.bfloat16)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        rename_book_keys(state_dict, prefix)  # the book's names (ff.fc1, norm1.weight, ...) -> ours, before loading
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, in_idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        if isinstance(in_idx, torch.Tensor) and in_idx.dim() == 2 and in_idx.shape[0] == 0:
            raise ValueError("token ids have batch size 0; give at least one sequence, shape (batch >= 1, seq_len)")
        check_token_ids(in_idx, self.cfg.vocab_size)
        if cache is not None and (not isinstance(cache, KVCache) or len(cache.layers) != self.cfg.n_layers):
            raise ValueError("cache must be a KVCache for this model; make one with KVCache.for_model(model)")
        batch_size, seq_len = in_idx.shape  # (B, T)
        start = 0 if cache is None else cache.length  # position of the first new token
        if start + seq_len > self.cfg.context_length:
            raise ValueError(
                f"sequence of {start + seq_len} tokens is longer than context_length={self.cfg.context_length}; "
                f"keep only the last {self.cfg.context_length} tokens (in_idx[:, -context_length:])"
            )
        x = self.tok_emb(in_idx)  # (B, T, C)
        cos, sin = self.rope(torch.arange(start, start + seq_len, device=in_idx.device))  # (T, head_dim) each
        for i, block in enumerate(self.trf_blocks):
            x = block(x, cos, sin, kv_cache=None if cache is None else cache.layers[i])
        x = self.final_norm(x)
        return self.out_head(x)  # logits: (B, T, vocab_size)


def llama_qwen_parameter_breakdown(cfg: LlamaQwenConfig) -> dict[str, int]:
    """Parameters per component, counted on the meta device so no weights are allocated."""
    if not isinstance(cfg, LlamaQwenConfig):
        raise TypeError(f"llama_qwen_parameter_breakdown expects a LlamaQwenConfig, got {type(cfg).__name__}")
    with torch.device("meta"):
        model = LlamaQwenModel(cfg)
    block = model.trf_blocks[0]
    qk_norms = 2 * cfg.head_dim if cfg.qk_norm else 0  # q_norm and k_norm live inside the attention module
    parts = {
        "token_embedding": model.tok_emb.weight.numel(),
        "attention": cfg.n_layers * (count_parameters(block.att) - qk_norms),
        "feed_forward": cfg.n_layers * count_parameters(block.ff),
        "norms": cfg.n_layers * (count_parameters(block.norm1) + count_parameters(block.norm2) + qk_norms)
        + count_parameters(model.final_norm),
        "output_head": 0 if cfg.tie_weights else model.out_head.weight.numel(),
    }
    parts["total"] = count_parameters(model)
    if sum(v for k, v in parts.items() if k != "total") != parts["total"]:
        raise AssertionError("parameter breakdown does not add up to the model's total")
    return parts


# The book's dict configs (Raschka, LLMs-from-scratch, chapter 5 bonus code: standalone Llama 3.2 and Qwen3):
# its name -> LlamaQwenConfig's. "rope_freq" becomes rope_scaling; "dtype" is applied by LlamaQwenModel.
_BOOK_RENAMES = {"n_kv_groups": "n_kv_heads", "rope_base": "rope_theta", "rope_freq": "rope_scaling"}
_BOOK_EXTRAS = ("dtype", "orig_context_length", "window_size")
_BOOK_REQUIRED = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "hidden_dim")
_BOOK_ROPE_FREQ = ("factor", "low_freq_factor", "high_freq_factor", "original_context_length")


def llama_qwen_config_from_book(config: Mapping) -> LlamaQwenConfig:
    """The LlamaQwenConfig of the book's Llama 3.2 / Qwen3 dict config (LlamaQwenConfig's own names work too)."""
    if not isinstance(config, Mapping):
        raise TypeError(f"expected the book's dict config, got {type(config).__name__}")
    allowed = [f.name for f in fields(LlamaQwenConfig)]
    known = [*allowed, *_BOOK_RENAMES, *_BOOK_EXTRAS]
    unknown = [key for key in config if key not in known]
    if unknown:
        close = get_close_matches(str(unknown[0]), known, n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"unknown key {unknown[0]!r}{hint} in the config dict; the accepted keys are {', '.join(known)}"
        )
    values = {key: value for key, value in config.items() if key in allowed}
    for book, ours in _BOOK_RENAMES.items():
        if book in config:
            if ours in config:
                raise ValueError(f"the config dict gives both {book!r} and {ours!r}; keep one of them")
            values[ours] = config[book]
    missing = [key for key in (*_BOOK_REQUIRED, "n_kv_heads") if key not in values]
    if missing:
        raise ValueError(
            f"the config dict has no {missing[0]!r} (the book's configs give {', '.join(_BOOK_REQUIRED)}, n_kv_groups)"
        )
    scaling = values.get("rope_scaling")
    if isinstance(scaling, Mapping):  # the book's "rope_freq" dict
        if sorted(scaling) != sorted(_BOOK_ROPE_FREQ):
            raise ValueError(
                f"rope_freq must have exactly the keys {', '.join(_BOOK_ROPE_FREQ)}, got {sorted(scaling)}"
            )
        values["rope_scaling"] = Llama3RopeScaling(**scaling)
    if values.get("head_dim") is None:  # absent (Llama 3.2) or None (Qwen3): emb_dim // n_heads, as in the book
        emb_dim, n_heads = values["emb_dim"], values["n_heads"]
        if not (isinstance(emb_dim, int) and isinstance(n_heads, int) and n_heads > 0 and emb_dim % n_heads == 0):
            raise ValueError(f"without head_dim, emb_dim ({emb_dim!r}) must be a multiple of n_heads ({n_heads!r})")
        values["head_dim"] = emb_dim // n_heads
    # the book's Llama 3 code normalizes with eps 1e-5 (nn.RMSNorm), its Qwen3 code (which has "qk_norm") with 1e-6
    values.setdefault("norm_eps", 1e-6 if "qk_norm" in config else 1e-5)
    original = config.get("orig_context_length")
    if original is not None and original != values["context_length"]:
        if isinstance(original, bool) or not isinstance(original, int) or original <= 0:
            raise ValueError(f"orig_context_length must be a positive int, got {original!r}")
        # the book's rescale_theta: a shorter context_length than the one trained with scales the base down with it
        values["rope_theta"] = values.get("rope_theta", 10_000.0) * values["context_length"] / original
    window = config.get("window_size")
    if window is not None and window != values["context_length"]:
        raise ValueError(f"window_size={window!r} (a sliding KV-cache window) is not supported; set it to None")
    dtype = config.get("dtype")
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"the config dict's dtype must be a floating torch.dtype such as torch.bfloat16, got {dtype!r}")
    return LlamaQwenConfig(**values)


# The book's parameter names that differ from ours: its SwiGLU is ff.fc1 (gate), ff.fc2 (up), ff.fc3 (down), and
# its Llama 3 uses torch.nn.RMSNorm, whose gamma is called "weight" (its Qwen3 RMSNorm calls it "scale", as we do).
_BOOK_FF = re.compile(r"^(trf_blocks\.\d+\.ff\.)fc([123])\.weight$")
_BOOK_NORM = re.compile(r"^(final_norm|trf_blocks\.\d+\.(?:norm1|norm2|att\.q_norm|att\.k_norm))\.weight$")
_BOOK_FF_NAMES = {"1": "gate", "2": "up", "3": "down"}


def rename_book_keys(state_dict: dict, prefix: str = "") -> list[str]:
    """Rename, in place, the book's tensor names (ff.fc1/fc2/fc3, RMSNorm .weight) to LlamaQwenModel's; return them."""
    if not isinstance(state_dict, dict) or not isinstance(prefix, str):
        raise TypeError("rename_book_keys expects a state_dict (a dict of name -> tensor) and a str prefix")
    renamed = []
    for key in [k for k in state_dict if k.startswith(prefix)]:
        name = key[len(prefix) :]
        new = _BOOK_FF.sub(lambda m: f"{m.group(1)}{_BOOK_FF_NAMES[m.group(2)]}.weight", name)
        new = _BOOK_NORM.sub(r"\1.scale", new)
        if new != name and prefix + new not in state_dict:  # both present: leave it, a strict load reports it
            state_dict[prefix + new] = state_dict.pop(key)
            renamed.append(key)
    return renamed
