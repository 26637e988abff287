"""Qwen3-Next: three Gated DeltaNet layers, then one gated full-attention layer (notebook 13); MoE MLPs (moe.py, 15).

Loaded from Hugging Face checkpoints with model_type "qwen3_next" by gpt_helpers.checkpoints.hf (config_from_hf,
MODEL_CLASS, state_dict_from_hf). The published model's MLPs are all mixture-of-experts with a gated shared expert.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from ..gpt2.attention import LayerKVCache
from ..gpt2.model import check_token_ids
from .gated_deltanet import DeltaNetState, GatedDeltaNet
from .moe import MoESettings, stack_hf_experts
from .rope import RoPE, apply_rope
from .swiglu import SwiGLUFeedForward

__all__ = [
    "LINEAR_ATTENTION",
    "FULL_ATTENTION",
    "QWEN3_NEXT_80B_A3B",
    "Qwen3NextConfig",
    "hybrid_layer_types",
    "ZeroCenteredRMSNorm",
    "apply_partial_rope",
    "GatedAttention",
    "Qwen3NextBlock",
    "Qwen3NextCache",
    "Qwen3NextModel",
    "qwen3_next_cache_nbytes",
    "config_from_hf",
    "state_dict_from_hf",
    "MODEL_CLASS",
]

LINEAR_ATTENTION, FULL_ATTENTION = "linear_attention", "full_attention"  # the names of config.json's layer_types

# The config.json published with Qwen/Qwen3-Next-80B-A3B-Instruct (facts, kept as data). Its MLP layers are all
# mixture-of-experts (num_experts 512, 10 per token, mlp_only_layers empty) with a gated shared expert.
QWEN3_NEXT_80B_A3B: dict = {
    "architectures": ["Qwen3NextForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "decoder_sparse_step": 1,
    "eos_token_id": 151645,
    "full_attention_interval": 4,
    "head_dim": 256,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 5120,
    "linear_conv_kernel_dim": 4,
    "linear_key_head_dim": 128,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 32,
    "linear_value_head_dim": 128,
    "max_position_embeddings": 262144,
    "mlp_only_layers": [],
    "model_type": "qwen3_next",
    "moe_intermediate_size": 512,
    "norm_topk_prob": True,
    "num_attention_heads": 16,
    "num_experts": 512,
    "num_experts_per_tok": 10,
    "num_hidden_layers": 48,
    "num_key_value_heads": 2,
    "output_router_logits": False,
    "partial_rotary_factor": 0.25,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 10000000,
    "router_aux_loss_coef": 0.001,
    "shared_expert_intermediate_size": 512,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}


def hybrid_layer_types(n_layers: int, full_attention_interval: int = 4) -> tuple[str, ...]:
    """Every full_attention_interval-th layer full attention, the others Gated DeltaNet (Qwen3-Next: 3 + 1)."""
    return tuple(
        FULL_ATTENTION if (i + 1) % full_attention_interval == 0 else LINEAR_ATTENTION for i in range(n_layers)
    )


@dataclass(frozen=True)
class Qwen3NextConfig:
    """Hyper-parameters of a Qwen3-Next model, validated on creation (moe=None: every MLP a dense SwiGLU)."""

    vocab_size: int
    context_length: int
    emb_dim: int
    n_layers: int
    hidden_dim: int  # width of the dense SwiGLU feed-forward network
    layer_types: tuple[str, ...]  # per layer LINEAR_ATTENTION (Gated DeltaNet) or FULL_ATTENTION
    n_heads: int  # full attention: query heads
    n_kv_heads: int  # full attention: key/value heads (GQA)
    head_dim: int  # full attention: features per head
    rotary_dim: int  # full attention: RoPE rotates only the first rotary_dim features of each head
    linear_n_key_heads: int  # Gated DeltaNet: query/key heads
    linear_n_value_heads: int  # Gated DeltaNet: value heads (and states), a multiple of linear_n_key_heads
    linear_key_head_dim: int
    linear_value_head_dim: int
    conv_kernel: int = 4  # taps of the short convolution
    rope_theta: float = 10_000.0
    norm_eps: float = 1e-6
    tie_weights: bool = False
    chunk_size: int = 64  # tokens per chunk of the chunked delta rule (prompts)
    moe: MoESettings | None = None  # the mixture-of-experts MLP layers (notebook 15); None: all dense

    def __post_init__(self) -> None:
        sizes = (
            "vocab_size",
            "context_length",
            "emb_dim",
            "n_layers",
            "hidden_dim",
            "n_heads",
            "n_kv_heads",
            "head_dim",
            "rotary_dim",
            "linear_n_key_heads",
            "linear_n_value_heads",
            "linear_key_head_dim",
            "linear_value_head_dim",
            "conv_kernel",
            "chunk_size",
        )
        for name in sizes:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Qwen3NextConfig.{name} must be an int, got {type(value).__name__} ({value!r})")
            if value <= 0:
                raise ValueError(f"Qwen3NextConfig.{name} must be positive, got {value}")
        if not isinstance(self.layer_types, tuple) or len(self.layer_types) != self.n_layers:
            raise ValueError(
                f"Qwen3NextConfig.layer_types must be a tuple of n_layers={self.n_layers} names, "
                f"got {self.layer_types!r}; build it with hybrid_layer_types(n_layers)"
            )
        wrong = sorted({kind for kind in self.layer_types if kind not in (LINEAR_ATTENTION, FULL_ATTENTION)})
        if wrong:
            raise ValueError(
                f"Qwen3NextConfig.layer_types holds {wrong}; each must be {LINEAR_ATTENTION!r} or {FULL_ATTENTION!r}"
            )
        if self.n_heads % self.n_kv_heads != 0:
            raise ValueError(
                f"Qwen3NextConfig.n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})"
            )
        if self.linear_n_value_heads % self.linear_n_key_heads != 0:
            raise ValueError(
                f"Qwen3NextConfig.linear_n_value_heads ({self.linear_n_value_heads}) must be a multiple of "
                f"linear_n_key_heads ({self.linear_n_key_heads})"
            )
        if self.rotary_dim % 2 != 0 or self.rotary_dim > self.head_dim:
            raise ValueError(
                f"Qwen3NextConfig.rotary_dim must be even and at most head_dim={self.head_dim}, got {self.rotary_dim}"
            )
        for name in ("rope_theta", "norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"Qwen3NextConfig.{name} must be a positive number, got {value!r}")
        if not isinstance(self.tie_weights, bool):
            raise TypeError(f"Qwen3NextConfig.tie_weights must be True or False, got {self.tie_weights!r}")
        if self.moe is not None and not isinstance(self.moe, MoESettings):
            raise TypeError(f"Qwen3NextConfig.moe must be None or a MoESettings, got {type(self.moe).__name__}")
        if self.moe is not None and self.moe.layers and self.moe.layers[-1] >= self.n_layers:
            raise ValueError(f"Qwen3NextConfig.moe.layers must lie in [0, {self.n_layers - 1}], got {self.moe.layers}")

    def with_(self, **changes) -> Qwen3NextConfig:
        """Return a copy with some fields changed (validated again)."""
        return replace(self, **changes)


class ZeroCenteredRMSNorm(nn.Module):
    """RMSNorm whose learned scale is stored as 1 + offset (the offset starts at 0), computed in float32."""

    def __init__(self, emb_dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.offset = nn.Parameter(torch.zeros(emb_dim))  # weight decay pulls it to 0, i.e. the scale to 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()  # (..., emb_dim)
        norm_x = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (norm_x * (1.0 + self.offset.float())).to(x.dtype)  # scaled in float32, then cast back


def apply_partial_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first cos.shape[-1] features of each head of x (B, H, T, head_dim); the rest pass unchanged."""
    rotary_dim = cos.shape[-1]
    return torch.cat((apply_rope(x[..., :rotary_dim], cos, sin), x[..., rotary_dim:]), dim=-1)


class GatedAttention(nn.Module):
    """Grouped-query attention with QK-norm, partial RoPE and a sigmoid gate on every output feature."""

    def __init__(self, emb_dim: int, n_heads: int, n_kv_heads: int, head_dim: int, norm_eps: float = 1e-6):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, head_dim
        # per head: head_dim query features, then head_dim gate features
        self.W_query = nn.Linear(emb_dim, n_heads * head_dim * 2, bias=False)
        self.W_key = nn.Linear(emb_dim, n_kv_heads * head_dim, bias=False)
        self.W_value = nn.Linear(emb_dim, n_kv_heads * head_dim, bias=False)
        self.out_proj = nn.Linear(n_heads * head_dim, emb_dim, bias=False)
        self.q_norm = ZeroCenteredRMSNorm(head_dim, eps=norm_eps)
        self.k_norm = ZeroCenteredRMSNorm(head_dim, eps=norm_eps)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv_cache: LayerKVCache | None = None
    ) -> torch.Tensor:
        b, t, _ = x.shape  # (B, T, C); cos, sin: (T, rotary_dim)
        q, gate = self.W_query(x).view(b, t, self.n_heads, 2 * self.head_dim).chunk(2, dim=-1)  # (B, T, H, hd) each
        k = self.W_key(x).view(b, t, self.n_kv_heads, self.head_dim)  # (B, T, G, hd)
        v = self.W_value(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, G, T, hd)
        q = apply_partial_rope(self.q_norm(q).transpose(1, 2), cos, sin)  # (B, H, T, hd)
        k = apply_partial_rope(self.k_norm(k).transpose(1, 2), cos, sin)  # (B, G, T, hd)

        past = 0
        if kv_cache is not None:  # only these layers keep keys and values, and they grow by one per token
            past = kv_cache.length
            k, v = kv_cache.append(k, v)  # (B, G, past + T, hd)
        if past == 0:
            ctx = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        elif t == 1:
            ctx = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)  # the newest query sees everything
        else:
            mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(diagonal=past)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        ctx = ctx.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)  # (B, T, H * hd)
        return self.out_proj(ctx * torch.sigmoid(gate.reshape(b, t, -1)))  # each feature let through by its gate


class Qwen3NextBlock(nn.Module):
    """Zero-centred RMSNorm -> Gated DeltaNet or gated attention -> shortcut, then RMSNorm -> SwiGLU/MoE -> shortcut."""

    def __init__(self, cfg: Qwen3NextConfig, layer_type: str, moe: bool = False):
        super().__init__()
        self.layer_type = layer_type
        self.norm1 = ZeroCenteredRMSNorm(cfg.emb_dim, eps=cfg.norm_eps)
        if layer_type == LINEAR_ATTENTION:
            self.att = GatedDeltaNet(
                cfg.emb_dim,
                cfg.linear_n_key_heads,
                cfg.linear_n_value_heads,
                cfg.linear_key_head_dim,
                cfg.linear_value_head_dim,
                conv_kernel=cfg.conv_kernel,
                norm_eps=cfg.norm_eps,
                chunk_size=cfg.chunk_size,
            )
        else:
            self.att = GatedAttention(cfg.emb_dim, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, norm_eps=cfg.norm_eps)
        self.norm2 = ZeroCenteredRMSNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.ff = cfg.moe.feed_forward(cfg.emb_dim) if moe else SwiGLUFeedForward(cfg.emb_dim, cfg.hidden_dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, layer_cache=None) -> torch.Tensor:
        # x: (B, T, C); layer_cache: a DeltaNetState (linear layers) or a LayerKVCache (full attention), or None
        h = self.norm1(x)
        if self.layer_type == LINEAR_ATTENTION:
            h = self.att(h, state=layer_cache)  # positions enter through the order of the recurrence
        else:
            h = self.att(h, cos, sin, kv_cache=layer_cache)
        x = x + h
        return x + self.ff(self.norm2(x))  # (B, T, C)


class Qwen3NextCache:
    """Per layer what decoding carries: a DeltaNetState (fixed size) or, for full attention, a LayerKVCache."""

    def __init__(
        self,
        cfg: Qwen3NextConfig,
        batch_size: int,
        max_len: int,
        *,
        dtype: torch.dtype = torch.float32,
        state_dtype: torch.dtype = torch.float32,
        device=None,
    ):
        for name, value in (("batch_size", batch_size), ("max_len", max_len)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        conv_channels = 2 * cfg.linear_n_key_heads * cfg.linear_key_head_dim
        conv_channels += cfg.linear_n_value_heads * cfg.linear_value_head_dim
        state_shape = (batch_size, cfg.linear_n_value_heads, cfg.linear_value_head_dim, cfg.linear_key_head_dim)
        kv_shape = (batch_size, cfg.n_kv_heads, max_len, cfg.head_dim)
        self.layers: list[DeltaNetState | LayerKVCache] = []
        for kind in cfg.layer_types:
            if kind == LINEAR_ATTENTION:
                # the recurrent state stays float32 (state_dtype): it sums over every token of the text
                conv = torch.zeros(batch_size, conv_channels, cfg.conv_kernel - 1, dtype=dtype, device=device)
                self.layers.append(DeltaNetState(conv, torch.zeros(state_shape, dtype=state_dtype, device=device)))
            else:
                keys = torch.empty(kv_shape, dtype=dtype, device=device)
                self.layers.append(LayerKVCache(keys, torch.empty(kv_shape, dtype=dtype, device=device)))

    @property
    def length(self) -> int:
        """Number of positions seen so far (every layer has seen the same)."""
        return self.layers[0].length

    @property
    def state_nbytes(self) -> int:
        """Bytes of the Gated DeltaNet layers' states: fixed, whatever the length."""
        return sum(layer.nbytes for layer in self.layers if isinstance(layer, DeltaNetState))

    @property
    def kv_nbytes(self) -> int:
        """Bytes of the full-attention layers' keys and values: max_len positions."""
        return sum(layer.nbytes for layer in self.layers if isinstance(layer, LayerKVCache))

    @property
    def nbytes(self) -> int:
        """Bytes all the cache's tensors hold."""
        return self.state_nbytes + self.kv_nbytes

    def reset(self) -> None:
        """Forget all positions: zero the states, empty the key/value caches (their tensors are reused)."""
        for layer in self.layers:
            if isinstance(layer, DeltaNetState):
                layer.reset()
            else:
                layer.length = 0


class Qwen3NextModel(nn.Module):
    """Token embedding, the hybrid stack of blocks, final zero-centred RMSNorm, output head."""

    def __init__(self, cfg: Qwen3NextConfig):
        super().__init__()
        if not isinstance(cfg, Qwen3NextConfig):
            raise TypeError(
                f"Qwen3NextModel expects a Qwen3NextConfig, got {type(cfg).__name__}; build one with "
                "Qwen3NextConfig(...) or config_from_hf(config_json_dict)"
            )
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.rope = RoPE(cfg.rotary_dim, cfg.rope_theta)  # angles for the rotated part of the full-attention heads
        moe_layers = () if cfg.moe is None else cfg.moe.layers
        self.trf_blocks = nn.ModuleList(
            Qwen3NextBlock(cfg, kind, moe=i in moe_layers) for i, kind in enumerate(cfg.layer_types)
        )
        self.final_norm = ZeroCenteredRMSNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.out_head.weight = self.tok_emb.weight

    def make_cache(self, batch_size: int, max_len: int, state_dtype: torch.dtype = torch.float32) -> Qwen3NextCache:
        """An empty Qwen3NextCache for this model (its dtype and device); max_len bounds the full-attention layers."""
        param = self.tok_emb.weight
        if isinstance(max_len, int) and not isinstance(max_len, bool) and max_len > self.cfg.context_length:
            raise ValueError(f"max_len must be at most context_length={self.cfg.context_length}, got {max_len}")
        return Qwen3NextCache(
            self.cfg, batch_size, max_len, dtype=param.dtype, state_dtype=state_dtype, device=param.device
        )

    def forward(self, in_idx: torch.Tensor, cache: Qwen3NextCache | None = None) -> torch.Tensor:
        check_token_ids(in_idx, self.cfg.vocab_size)
        if cache is not None and not isinstance(cache, Qwen3NextCache):
            raise TypeError(f"cache must be a Qwen3NextCache (model.make_cache(...)), got {type(cache).__name__}")
        seq_len = in_idx.shape[1]  # (B, T)
        start = 0 if cache is None else cache.length
        if start + seq_len > self.cfg.context_length:
            raise ValueError(
                f"sequence of {start + seq_len} tokens is longer than context_length={self.cfg.context_length}; "
                f"keep only the last {self.cfg.context_length} tokens (in_idx[:, -context_length:])"
            )
        x = self.tok_emb(in_idx)  # (B, T, C)
        cos, sin = self.rope(torch.arange(start, start + seq_len, device=in_idx.device))  # (T, rotary_dim) each
        for i, block in enumerate(self.trf_blocks):
            x = block(x, cos, sin, layer_cache=None if cache is None else cache.layers[i])
        return self.out_head(self.final_norm(x))  # logits: (B, T, vocab_size)


MODEL_CLASS = Qwen3NextModel


def qwen3_next_cache_nbytes(
    cfg: Qwen3NextConfig,
    n_positions: int,
    batch_size: int = 1,
    dtype: torch.dtype = torch.bfloat16,
    state_dtype: torch.dtype = torch.float32,
) -> dict[str, int]:
    """The cache's bytes by formula: fixed DeltaNet states plus 2 * n_kv_heads * head_dim values per position."""
    size, state_size = torch.finfo(dtype).bits // 8, torch.finfo(state_dtype).bits // 8
    n_linear = sum(kind == LINEAR_ATTENTION for kind in cfg.layer_types)
    n_full = cfg.n_layers - n_linear
    conv_channels = 2 * cfg.linear_n_key_heads * cfg.linear_key_head_dim
    conv_channels += cfg.linear_n_value_heads * cfg.linear_value_head_dim
    per_linear_layer = (
        conv_channels * (cfg.conv_kernel - 1) * size
        + cfg.linear_n_value_heads * cfg.linear_value_head_dim * cfg.linear_key_head_dim * state_size
    )
    per_position = n_full * 2 * cfg.n_kv_heads * cfg.head_dim * size
    state = batch_size * n_linear * per_linear_layer
    kv = batch_size * n_positions * per_position
    return {"state": state, "kv": kv, "total": state + kv, "kv_per_position": batch_size * per_position}


# ---------------------------------------------------------------------------------------------------------------
# Hugging Face checkpoints (model_type "qwen3_next")


def _get(config: dict, key: str):
    if config.get(key) is None:
        raise ValueError(f"config.json has no {key!r}, which every qwen3_next config.json has; download it again")
    return config[key]


def config_from_hf(config: dict) -> Qwen3NextConfig:
    """The Qwen3NextConfig of a Hugging Face config.json dict with model_type qwen3_next (dense and MoE MLPs)."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be the dict of a config.json, got {type(config).__name__}")
    if config.get("model_type") != "qwen3_next":
        raise ValueError(
            f"config_from_hf reads qwen3_next config.json files, got model_type {config.get('model_type')!r}"
        )
    from .qwen3_moe import moe_layers_from_hf  # the same rule as Qwen3-MoE's

    n_layers = _get(config, "num_hidden_layers")
    # transformers builds a mixture-of-experts MLP in layer i unless i is in mlp_only_layers, when num_experts > 0
    # and (i + 1) is a multiple of decoder_sparse_step; absent keys take transformers' defaults
    n_experts = config.get("num_experts", 512)
    if isinstance(n_experts, bool) or not isinstance(n_experts, int) or n_experts < 0:
        raise ValueError(f"config.json's num_experts must be an int >= 0, got {n_experts!r}")
    layers = moe_layers_from_hf(config) if n_experts else ()
    moe = None
    if layers:
        try:
            moe = MoESettings(
                layers=layers,
                n_experts=n_experts,
                top_k=config.get("num_experts_per_tok", 10),
                hidden_dim=config.get("moe_intermediate_size", 512),
                norm_topk_prob=bool(config.get("norm_topk_prob", True)),
                shared_hidden_dim=config.get("shared_expert_intermediate_size", 512),
                shared_expert_gate=True,  # Qwen3-Next scales its shared expert by a per-token sigmoid
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"config.json's mixture-of-experts settings are invalid: {err}") from None
    for key, what in (("attention_bias", "biases on the attention projections"), ("use_sliding_window", "a window")):
        if config.get(key):
            raise ValueError(f"config.json sets {key}=true ({what}); gpt_helpers' qwen3_next model has none")
    if config.get("hidden_act", "silu") != "silu":
        raise ValueError(f"config.json uses hidden_act={config['hidden_act']!r}; Qwen3-Next here uses 'silu'")
    rope = config.get("rope_parameters") or {}
    if config.get("rope_scaling") or rope.get("rope_type", "default") != "default":
        raise ValueError("config.json asks for RoPE scaling; gpt_helpers' qwen3_next model implements plain RoPE")
    theta = rope.get("rope_theta", config.get("rope_theta", 10_000.0))
    partial = rope.get("partial_rotary_factor", config.get("partial_rotary_factor", 0.25))
    emb_dim = _get(config, "hidden_size")
    head_dim = config.get("head_dim") or emb_dim // _get(config, "num_attention_heads")
    layer_types = config.get("layer_types") or hybrid_layer_types(n_layers, config.get("full_attention_interval", 4))
    return Qwen3NextConfig(
        vocab_size=_get(config, "vocab_size"),
        context_length=_get(config, "max_position_embeddings"),
        emb_dim=emb_dim,
        n_layers=n_layers,
        hidden_dim=_get(config, "intermediate_size"),
        layer_types=tuple(layer_types),
        n_heads=_get(config, "num_attention_heads"),
        n_kv_heads=_get(config, "num_key_value_heads"),
        head_dim=head_dim,
        rotary_dim=int(head_dim * partial),  # as transformers computes it
        # transformers' defaults where a config.json leaves them out
        linear_n_key_heads=config.get("linear_num_key_heads", 16),
        linear_n_value_heads=config.get("linear_num_value_heads", 32),
        linear_key_head_dim=config.get("linear_key_head_dim", 128),
        linear_value_head_dim=config.get("linear_value_head_dim", 128),
        conv_kernel=config.get("linear_conv_kernel_dim", 4),
        rope_theta=float(theta),
        norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        tie_weights=bool(config.get("tie_word_embeddings", False)),
        moe=moe,
    )


def _plain_in_proj(qkvz: torch.Tensor, ba: torch.Tensor, cfg: Qwen3NextConfig) -> torch.Tensor:
    """Reorder the rows of in_proj_qkvz and in_proj_ba into our single in_proj: q | k | v | z | b | a, heads in order.

    The checkpoint groups rows per key head h: [q_h, k_h, v and z of the value heads h*r .. h*r + r - 1] in
    in_proj_qkvz and [b, a of those r value heads] in in_proj_ba, with r = value heads per key head.
    """
    h_k, r = cfg.linear_n_key_heads, cfg.linear_n_value_heads // cfg.linear_n_key_heads
    d_k, d_v, emb = cfg.linear_key_head_dim, cfg.linear_value_head_dim, qkvz.shape[-1]
    q, k, v, z = qkvz.reshape(h_k, -1, emb).split([d_k, d_k, r * d_v, r * d_v], dim=1)  # (H_k, rows, C) each
    b, a = ba.reshape(h_k, 2 * r, emb).split([r, r], dim=1)
    return torch.cat([part.reshape(-1, emb) for part in (q, k, v, z, b, a)])  # head h's rows come after h - 1's


def _key_map(cfg: Qwen3NextConfig) -> dict[str, str]:
    """Hugging Face tensor name -> our state_dict name, for every tensor except the two fused into in_proj."""
    names = {"model.embed_tokens.weight": "tok_emb.weight", "model.norm.weight": "final_norm.offset"}
    if not cfg.tie_weights:
        names["lm_head.weight"] = "out_head.weight"
    common = {"input_layernorm.weight": "norm1.offset", "post_attention_layernorm.weight": "norm2.offset"}
    dense = {f"mlp.{p}_proj.weight": f"ff.{p}.weight" for p in ("gate", "up", "down")}
    moe = {  # the experts themselves are stacked by stack_hf_experts
        "mlp.gate.weight": "ff.router.weight",
        "mlp.shared_expert_gate.weight": "ff.shared_expert_gate.weight",
        **{f"mlp.shared_expert.{p}_proj.weight": f"ff.shared_expert.{p}.weight" for p in ("gate", "up", "down")},
    }
    moe_layers = () if cfg.moe is None else cfg.moe.layers
    linear = {
        "linear_attn.conv1d.weight": "att.conv.weight",
        "linear_attn.A_log": "att.A_log",
        "linear_attn.dt_bias": "att.dt_bias",
        "linear_attn.norm.weight": "att.norm.scale",
        "linear_attn.out_proj.weight": "att.out_proj.weight",
    }
    full = {
        "self_attn.q_proj.weight": "att.W_query.weight",
        "self_attn.k_proj.weight": "att.W_key.weight",
        "self_attn.v_proj.weight": "att.W_value.weight",
        "self_attn.o_proj.weight": "att.out_proj.weight",
        "self_attn.q_norm.weight": "att.q_norm.offset",
        "self_attn.k_norm.weight": "att.k_norm.offset",
    }
    for i, kind in enumerate(cfg.layer_types):
        per_layer = common | (linear if kind == LINEAR_ATTENTION else full) | (moe if i in moe_layers else dense)
        names |= {f"model.layers.{i}.{hf}": f"trf_blocks.{i}.{ours}" for hf, ours in per_layer.items()}
    return names


def _listed(keys: list[str]) -> str:
    return str(keys[:3])[:-1] + (f", ... ({len(keys)} in all)]" if len(keys) > 3 else "]")


def state_dict_from_hf(state_dict: dict[str, torch.Tensor], cfg: Qwen3NextConfig) -> dict[str, torch.Tensor]:
    """Rename (and for in_proj, reorder) Hugging Face Qwen3-Next tensors to Qwen3NextModel's, checking every one."""
    names = _key_map(cfg)
    fused = {}
    for i, kind in enumerate(cfg.layer_types):
        if kind == LINEAR_ATTENTION:
            prefix = f"model.layers.{i}.linear_attn."
            fused[f"trf_blocks.{i}.att.in_proj.weight"] = (prefix + "in_proj_qkvz.weight", prefix + "in_proj_ba.weight")
    expected = set(names) | {hf for pair in fused.values() for hf in pair}
    # mtp.*: the published checkpoint's multi-token-prediction layer, which transformers does not load either
    given = {k: v for k, v in state_dict.items() if not k.startswith("mtp.")}
    stacked = {}  # popped from `given` (a copy), so what is left is checked below like every other tensor
    for i in () if cfg.moe is None else cfg.moe.layers:
        experts = stack_hf_experts(given, f"model.layers.{i}.mlp.experts", cfg.moe.n_experts)
        stacked |= {f"trf_blocks.{i}.ff.experts.{ours}": w for ours, w in experts.items()}
    if cfg.tie_weights and "lm_head.weight" in given:
        head, embedding = given.pop("lm_head.weight"), given.get("model.embed_tokens.weight")
        if embedding is not None and not head.is_meta and not torch.equal(head, embedding):
            raise ValueError(
                "lm_head.weight differs from model.embed_tokens.weight, but config.json says "
                "tie_word_embeddings=true; set it to false in config.json"
            )
    missing = sorted(expected - set(given))
    if missing:
        raise ValueError(
            f"checkpoint is missing {_listed(missing)}; are all shards there, and does config.json "
            "(num_hidden_layers, layer_types, tie_word_embeddings) belong to these weights?"
        )
    unexpected = sorted(set(given) - expected)
    if unexpected:
        raise ValueError(
            f"checkpoint has unexpected tensors {_listed(unexpected)}; does config.json (num_hidden_layers, "
            "layer_types, num_experts, mlp_only_layers, decoder_sparse_step) belong to these weights?"
        )
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Qwen3NextModel(cfg).state_dict().items()}
    out = {}
    for ours, tensor in stacked.items():
        if tuple(tensor.shape) != shapes[ours]:
            raise ValueError(
                f"shape mismatch for the experts of {ours!r}: the checkpoint has {tuple(tensor.shape)} stacked, "
                f"config.json implies {shapes[ours]}; config.json and the weights do not belong together"
            )
        out[ours] = tensor
    for ours, (qkvz_name, ba_name) in fused.items():
        layer = ours.split(".")[1]
        hidden = cfg.emb_dim
        key_dim, value_dim = (
            cfg.linear_n_key_heads * cfg.linear_key_head_dim,
            cfg.linear_n_value_heads * cfg.linear_value_head_dim,
        )
        for name, rows in ((qkvz_name, 2 * key_dim + 2 * value_dim), (ba_name, 2 * cfg.linear_n_value_heads)):
            if tuple(given[name].shape) != (rows, hidden):
                raise ValueError(
                    f"shape mismatch for {name!r}: the checkpoint has {tuple(given[name].shape)}, config.json implies "
                    f"{(rows, hidden)} (layer {layer}); config.json and the weights do not belong together"
                )
        out[ours] = _plain_in_proj(given[qkvz_name], given[ba_name], cfg)
    for hf_name, ours in names.items():
        if tuple(given[hf_name].shape) != shapes[ours]:
            raise ValueError(
                f"shape mismatch for {hf_name!r}: the checkpoint has {tuple(given[hf_name].shape)}, "
                f"config.json implies {shapes[ours]}; config.json and the weights do not belong together"
            )
        out[ours] = given[hf_name]
    return out
