"""Gemma 3 (text): five local sliding-window layers to one global layer, four norms per block, GeGLU (notebook 12)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from ..gpt2.attention import LayerKVCache
from ..gpt2.model import check_token_ids
from .rms_norm import RMSNorm
from .rope import RoPE
from .sliding_window import RingKVCache, SlidingWindowAttention
from .swiglu import SwiGLUFeedForward

__all__ = [
    "GemmaRMSNorm",
    "GeGLUFeedForward",
    "LinearScaledRoPE",
    "gemma3_layer_types",
    "Gemma3Config",
    "Gemma3Block",
    "Gemma3Cache",
    "Gemma3Model",
    "gemma3_kv_cache_bytes",
    "GEMMA3_1B_CONFIG",
    "config_from_hf",
    "state_dict_from_hf",
    "MODEL_CLASS",
]

LAYER_KINDS = ("local", "global")


class GemmaRMSNorm(RMSNorm):
    """RMSNorm whose learned vector is stored as an offset: the multiplier is 1 + scale (zero at start)."""

    def __init__(self, emb_dim: int, eps: float = 1e-6):
        super().__init__(emb_dim, eps=eps)
        nn.init.zeros_(self.scale)  # 1 + 0 = 1: the same start as RMSNorm's ones

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., emb_dim); unlike Llama, the multiplication also happens in float32, then one cast back
        x32 = x.float()
        norm_x = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (norm_x * (1.0 + self.scale.float())).to(x.dtype)


class GeGLUFeedForward(SwiGLUFeedForward):
    """SwiGLU's layout with GELU (tanh approximation) as the gate: down(gelu(gate(x)) * up(x))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.gate(x), approximate="tanh") * self.up(x))  # (B, T, C)


class LinearScaledRoPE(RoPE):
    """RoPE with every rotation speed divided by `factor` (positions stretched; Gemma 3 4B+ global layers use 8)."""

    def __init__(self, head_dim: int, theta_base: float = 10_000.0, factor: float = 1.0):
        super().__init__(head_dim, theta_base)
        self.factor = factor

    def frequencies(self, device=None) -> torch.Tensor:
        """The head_dim // 2 rotation speeds, divided by the factor."""
        return super().frequencies(device) / self.factor


def gemma3_layer_types(n_layers: int, pattern: int = 6) -> tuple[str, ...]:
    """Gemma 3's layout: every `pattern`-th layer (the 6th, 12th, ...) is global, the others local."""
    if isinstance(pattern, bool) or not isinstance(pattern, int) or pattern < 1:
        raise ValueError(
            f"pattern must be a positive int (6 in Gemma 3: five local layers, one global), got {pattern!r}"
        )
    return tuple("global" if (i + 1) % pattern == 0 else "local" for i in range(n_layers))


@dataclass(frozen=True)
class Gemma3Config:
    """Hyper-parameters of a Gemma 3 text model, validated on creation."""

    vocab_size: int
    context_length: int
    emb_dim: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    n_layers: int
    hidden_dim: int  # width of the GeGLU feed-forward network
    sliding_window: int  # positions a local layer sees: the query itself and the sliding_window - 1 before it
    layer_types: tuple[str, ...]  # "local" or "global" per layer
    rope_local_theta: float = 10_000.0  # RoPE base of the local layers
    rope_theta: float = 1_000_000.0  # RoPE base of the global layers
    rope_scaling_factor: float = 1.0  # linear RoPE scaling of the global layers (1: none)
    query_pre_attn_scalar: float = 256.0  # attention scores are q.k / sqrt(query_pre_attn_scalar)
    final_logit_softcap: float | None = None  # cap * tanh(logits / cap) on the output, when set
    norm_eps: float = 1e-6
    tie_weights: bool = True

    def __post_init__(self) -> None:
        sizes = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_kv_heads", "head_dim", "n_layers")
        for name in (*sizes, "hidden_dim", "sliding_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Gemma3Config.{name} must be an int, got {type(value).__name__} ({value!r})")
            if value <= 0:
                raise ValueError(f"Gemma3Config.{name} must be positive, got {value}")
        if self.n_heads % self.n_kv_heads != 0:
            raise ValueError(
                f"Gemma3Config.n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})"
            )
        if self.head_dim % 2 != 0:
            raise ValueError(f"Gemma3Config.head_dim must be even (RoPE rotates pairs), got {self.head_dim}")
        if not isinstance(self.layer_types, tuple) or len(self.layer_types) != self.n_layers:
            raise ValueError(
                f"Gemma3Config.layer_types must be a tuple of n_layers={self.n_layers} entries, "
                f"got {self.layer_types!r}; "
                "use gemma3_layer_types(n_layers)"
            )
        wrong = sorted({kind for kind in self.layer_types if kind not in LAYER_KINDS}, key=str)
        if wrong:
            raise ValueError(f"Gemma3Config.layer_types may hold only 'local' and 'global', got {wrong}")
        for name in ("rope_local_theta", "rope_theta", "rope_scaling_factor", "query_pre_attn_scalar", "norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"Gemma3Config.{name} must be a positive number, got {value!r}")
        cap = self.final_logit_softcap
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float)) or cap <= 0):
            raise ValueError(f"Gemma3Config.final_logit_softcap must be None or a positive number, got {cap!r}")
        if not isinstance(self.tie_weights, bool):
            raise TypeError(f"Gemma3Config.tie_weights must be True or False, got {self.tie_weights!r}")

    def with_(self, **changes) -> Gemma3Config:
        """Return a copy with some fields changed (validated again)."""
        return replace(self, **changes)


class Gemma3Block(nn.Module):
    """Norm -> attention -> norm -> shortcut, then norm -> GeGLU -> norm -> shortcut (four RMSNorms)."""

    def __init__(self, cfg: Gemma3Config, layer_type: str):
        super().__init__()
        self.layer_type = layer_type
        self.norm1 = GemmaRMSNorm(cfg.emb_dim, eps=cfg.norm_eps)  # before attention
        self.att = SlidingWindowAttention(
            emb_dim=cfg.emb_dim,
            n_heads=cfg.n_heads,
            n_kv_heads=cfg.n_kv_heads,
            head_dim=cfg.head_dim,
            window=cfg.sliding_window if layer_type == "local" else None,
            scale=cfg.query_pre_attn_scalar**-0.5,
            qk_norm=True,
            norm_eps=cfg.norm_eps,
            norm_class=GemmaRMSNorm,
        )
        self.post_att_norm = GemmaRMSNorm(cfg.emb_dim, eps=cfg.norm_eps)  # on the attention output
        self.norm2 = GemmaRMSNorm(cfg.emb_dim, eps=cfg.norm_eps)  # before the feed-forward network
        self.ff = GeGLUFeedForward(cfg.emb_dim, cfg.hidden_dim)
        self.post_ff_norm = GemmaRMSNorm(cfg.emb_dim, eps=cfg.norm_eps)  # on the feed-forward output

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        kv_cache: RingKVCache | LayerKVCache | None = None,
    ) -> torch.Tensor:
        # x: (B, T, C); each branch is normalized on the way in and on the way out, then added
        x = x + self.post_att_norm(self.att(self.norm1(x), cos, sin, kv_cache=kv_cache))
        x = x + self.post_ff_norm(self.ff(self.norm2(x)))
        return x  # (B, T, C)


class Gemma3Cache:
    """Per layer: a ring of sliding_window rows for local layers, a growing LayerKVCache for global ones."""

    def __init__(self, cfg: Gemma3Config, batch_size: int, max_len: int, *, dtype=torch.float32, device=None):
        for name, value in (("batch_size", batch_size), ("max_len", max_len)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        slots = min(cfg.sliding_window, max_len)  # a ring never needs more rows than positions it will see

        def tensor(length: int) -> torch.Tensor:
            return torch.empty(batch_size, cfg.n_kv_heads, length, cfg.head_dim, dtype=dtype, device=device)

        self.max_len = max_len
        self.layers = [
            RingKVCache(tensor(slots), tensor(slots))
            if kind == "local"
            else LayerKVCache(tensor(max_len), tensor(max_len))
            for kind in cfg.layer_types
        ]

    @property
    def length(self) -> int:
        """Number of positions seen so far."""
        return self.layers[0].length

    @property
    def capacity(self) -> int:
        """Number of positions the cache can take (the global layers' length)."""
        return self.max_len

    @property
    def nbytes(self) -> int:
        """Bytes the key and value tensors of all layers hold."""
        return sum(t.numel() * t.element_size() for layer in self.layers for t in (layer.keys, layer.values))

    def reset(self) -> None:
        """Forget all cached positions (the tensors are kept and reused)."""
        for layer in self.layers:
            layer.length = 0


class Gemma3Model(nn.Module):
    """Scaled token embedding, N Gemma 3 blocks (local and global), final RMSNorm, tied output head."""

    def __init__(self, cfg: Gemma3Config):
        super().__init__()
        if not isinstance(cfg, Gemma3Config):
            raise TypeError(
                f"Gemma3Model expects a Gemma3Config, got {type(cfg).__name__}; build one with Gemma3Config(...)"
            )
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        # two RoPE tables: slow rotations for the global layers, a smaller base for the local ones
        self.rope_local = RoPE(cfg.head_dim, cfg.rope_local_theta)
        self.rope_global = LinearScaledRoPE(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling_factor)
        self.trf_blocks = nn.ModuleList(Gemma3Block(cfg, kind) for kind in cfg.layer_types)
        self.final_norm = GemmaRMSNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.out_head.weight = self.tok_emb.weight

    def make_cache(self, batch_size: int, max_len: int) -> Gemma3Cache:
        """An empty Gemma3Cache in the model's dtype and device."""
        if isinstance(max_len, int) and not isinstance(max_len, bool) and max_len > self.cfg.context_length:
            raise ValueError(f"max_len must be at most context_length={self.cfg.context_length}, got {max_len}")
        param = self.tok_emb.weight
        return Gemma3Cache(self.cfg, batch_size, max_len, dtype=param.dtype, device=param.device)

    def forward(self, in_idx: torch.Tensor, cache: Gemma3Cache | None = None) -> torch.Tensor:
        check_token_ids(in_idx, self.cfg.vocab_size)
        if cache is not None and not isinstance(cache, Gemma3Cache):
            raise TypeError(
                f"Gemma3Model needs its own cache (ring buffers for the local layers), got {type(cache).__name__}; "
                "make one with model.make_cache(batch_size, max_len)"
            )
        seq_len = in_idx.shape[1]  # in_idx: (B, T)
        start = 0 if cache is None else cache.length
        if start + seq_len > self.cfg.context_length:
            raise ValueError(
                f"sequence of {start + seq_len} tokens is longer than context_length={self.cfg.context_length}; "
                f"keep only the last {self.cfg.context_length} tokens (in_idx[:, -context_length:])"
            )
        if cache is not None and start + seq_len > cache.capacity:
            raise ValueError(  # checked here, not by each layer: a ring would wrap and overwrite silently
                f"cache is full: it holds {cache.capacity} positions, {start} are used and {seq_len} more were given; "
                "reset() it or make a larger cache"
            )
        x = self.tok_emb(in_idx)  # (B, T, C)
        x = x * torch.tensor(self.cfg.emb_dim**0.5, dtype=x.dtype)  # sqrt(C), rounded to the model's dtype
        positions = torch.arange(start, start + seq_len, device=in_idx.device)
        local, global_ = self.rope_local(positions), self.rope_global(positions)  # (cos, sin), each (T, head_dim)
        for i, block in enumerate(self.trf_blocks):
            cos, sin = local if block.layer_type == "local" else global_
            x = block(x, cos, sin, kv_cache=None if cache is None else cache.layers[i])
        logits = self.out_head(self.final_norm(x))  # (B, T, vocab_size)
        if self.cfg.final_logit_softcap is not None:
            cap = self.cfg.final_logit_softcap
            logits = cap * torch.tanh(logits / cap)  # smoothly bounded to (-cap, cap)
        return logits


def gemma3_kv_cache_bytes(cfg: Gemma3Config, n_positions: int, batch_size: int = 1, bytes_per_value: int = 2) -> int:
    """Cache bytes after n_positions: keys + values per layer, local layers capped at the window (bf16 default)."""
    per_position = 2 * batch_size * cfg.n_kv_heads * cfg.head_dim * bytes_per_value  # one key + one value
    held = [min(n_positions, cfg.sliding_window) if kind == "local" else n_positions for kind in cfg.layer_types]
    return per_position * sum(held)


# google/gemma-3-1b-pt, config.json as published with the weights (a fact, kept as data). Every structural value
# (sizes, heads, head_dim, window 512, pattern 6, both RoPE bases, rope_scaling null, query_pre_attn_scalar 256,
# both softcaps null, vocab, activation) was checked against a public copy of Gemma 3 1B's config.json; the
# token ids were not (the -it model's file lists eos_token_id [1, 106]) and nothing here reads them.
GEMMA3_1B_CONFIG: dict = {
    "architectures": ["Gemma3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "attn_logit_softcapping": None,
    "bos_token_id": 2,
    "cache_implementation": "hybrid",
    "eos_token_id": 1,
    "final_logit_softcapping": None,
    "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh",
    "hidden_size": 1152,
    "initializer_range": 0.02,
    "intermediate_size": 6912,
    "max_position_embeddings": 32768,
    "model_type": "gemma3_text",
    "num_attention_heads": 4,
    "num_hidden_layers": 26,
    "num_key_value_heads": 1,
    "pad_token_id": 0,
    "query_pre_attn_scalar": 256,
    "rms_norm_eps": 1e-06,
    "rope_local_base_freq": 10000,
    "rope_scaling": None,
    "rope_theta": 1000000,
    "sliding_window": 512,
    "sliding_window_pattern": 6,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 262144,
}


def _required(config: dict, key: str):
    if config.get(key) is None:
        raise ValueError(f"config.json has no {key!r}, which every gemma3_text config.json has; download it again")
    return config[key]


def _layer_types(config: dict, n_layers: int) -> tuple[str, ...]:
    """'local'/'global' per layer from layer_types (transformers 5) or sliding_window_pattern (older files)."""
    names = config.get("layer_types")
    if names is None:
        pattern = config.get("sliding_window_pattern")
        pattern = config.get("_sliding_window_pattern", 6) if pattern is None else pattern  # transformers' default
        return gemma3_layer_types(n_layers, pattern)
    kinds = {"sliding_attention": "local", "full_attention": "global"}
    unknown = sorted({name for name in names if name not in kinds}, key=str)
    if unknown:
        raise ValueError(
            f"config.json's layer_types holds {unknown}; Gemma 3 layers are sliding_attention or full_attention"
        )
    if len(names) != n_layers:
        raise ValueError(
            f"config.json lists {len(names)} layer_types for num_hidden_layers={n_layers}; download config.json again"
        )
    return tuple(kinds[name] for name in names)


def _rope(config: dict) -> tuple[float, float, float]:
    """(local theta, global theta, global linear factor) from rope_parameters (transformers 5) or the older keys."""
    params = config.get("rope_parameters")
    if isinstance(params, dict) and ("full_attention" in params or "sliding_attention" in params):
        local, global_ = params.get("sliding_attention") or {}, params.get("full_attention") or {}
    else:
        local = {"rope_theta": config.get("rope_local_base_freq", 10_000.0)}
        global_ = dict(config.get("rope_scaling") or {}, rope_theta=config.get("rope_theta", 1_000_000.0))
    if local.get("rope_type", "default") != "default":
        raise ValueError(f"config.json scales the local layers' RoPE ({local['rope_type']!r}); Gemma 3 does not")
    kind = global_.get("rope_type", global_.get("type", "default"))
    if kind not in ("default", "linear"):
        raise ValueError(
            f"RoPE scaling type {kind!r} in config.json is not supported for Gemma 3; "
            "gpt_helpers implements 'default' (no scaling) and 'linear'"
        )
    factor = float(global_.get("factor", 1.0)) if kind == "linear" else 1.0
    return float(local.get("rope_theta", 10_000.0)), float(global_.get("rope_theta", 1_000_000.0)), factor


def config_from_hf(config: dict) -> Gemma3Config:
    """The Gemma3Config of a Hugging Face config.json dict with model_type gemma3_text."""
    model_type = config.get("model_type")
    if model_type == "gemma3":
        raise ValueError(
            "this is the config.json of multimodal Gemma 3 (model_type gemma3); gpt_helpers loads the text-only "
            "model (model_type gemma3_text), e.g. google/gemma-3-1b-pt"
        )
    if model_type != "gemma3_text":
        raise ValueError(f"config_from_hf of gemma3 reads model_type 'gemma3_text', got {model_type!r}")
    unsupported = {
        "attention_bias": "biases on the attention projections",
        "use_bidirectional_attention": "bidirectional attention (EmbeddingGemma)",
    }
    for key, what in unsupported.items():
        if config.get(key):
            raise ValueError(f"config.json sets {key}=true ({what}); gpt_helpers' Gemma 3 model has none")
    if config.get("attn_logit_softcapping") is not None:
        raise ValueError(
            "config.json sets attn_logit_softcapping, which Gemma 3 does not use (transformers' Gemma 3 ignores it); "
            "set it to null"
        )
    activation = config.get("hidden_activation", config.get("hidden_act", "gelu_pytorch_tanh"))
    if activation != "gelu_pytorch_tanh":
        raise ValueError(f"config.json uses hidden_activation={activation!r}; Gemma 3's GeGLU uses 'gelu_pytorch_tanh'")
    n_layers = _required(config, "num_hidden_layers")
    local_theta, global_theta, factor = _rope(config)
    return Gemma3Config(
        vocab_size=_required(config, "vocab_size"),
        context_length=config.get("max_position_embeddings", 131_072),
        emb_dim=_required(config, "hidden_size"),
        n_heads=_required(config, "num_attention_heads"),
        n_kv_heads=_required(config, "num_key_value_heads"),
        head_dim=config.get("head_dim", 256),
        n_layers=n_layers,
        hidden_dim=_required(config, "intermediate_size"),
        sliding_window=config.get("sliding_window") or 4096,  # transformers' default when absent
        layer_types=_layer_types(config, n_layers),
        rope_local_theta=local_theta,
        rope_theta=global_theta,
        rope_scaling_factor=factor,
        query_pre_attn_scalar=float(config.get("query_pre_attn_scalar", 256)),
        final_logit_softcap=config.get("final_logit_softcapping"),
        norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        tie_weights=bool(config.get("tie_word_embeddings", True)),
    )


def _key_map(cfg: Gemma3Config) -> dict[str, str]:
    """Hugging Face tensor name -> Gemma3Model state_dict name, for every tensor a checkpoint must hold."""
    names = {"model.embed_tokens.weight": "tok_emb.weight", "model.norm.weight": "final_norm.scale"}
    if not cfg.tie_weights:
        names["lm_head.weight"] = "out_head.weight"
    per_layer = {
        "input_layernorm.weight": "norm1.scale",
        "self_attn.q_proj.weight": "att.W_query.weight",
        "self_attn.k_proj.weight": "att.W_key.weight",
        "self_attn.v_proj.weight": "att.W_value.weight",
        "self_attn.o_proj.weight": "att.out_proj.weight",
        "self_attn.q_norm.weight": "att.q_norm.scale",
        "self_attn.k_norm.weight": "att.k_norm.scale",
        "post_attention_layernorm.weight": "post_att_norm.scale",
        "pre_feedforward_layernorm.weight": "norm2.scale",
        "mlp.gate_proj.weight": "ff.gate.weight",
        "mlp.up_proj.weight": "ff.up.weight",
        "mlp.down_proj.weight": "ff.down.weight",
        "post_feedforward_layernorm.weight": "post_ff_norm.scale",
    }
    for i in range(cfg.n_layers):
        names |= {f"model.layers.{i}.{hf}": f"trf_blocks.{i}.{ours}" for hf, ours in per_layer.items()}
    return names


def _listed(keys: list[str]) -> str:
    return str(keys[:3])[:-1] + (f", ... ({len(keys)} in all)]" if len(keys) > 3 else "]")


def state_dict_from_hf(state_dict: dict[str, torch.Tensor], cfg: Gemma3Config) -> dict[str, torch.Tensor]:
    """Rename Hugging Face Gemma 3 tensors to Gemma3Model's names, checking names and shapes."""
    names = _key_map(cfg)
    given = dict(state_dict)
    if cfg.tie_weights and "lm_head.weight" in given:
        head = given.pop("lm_head.weight")
        embedding = given.get("model.embed_tokens.weight")
        if embedding is not None and not head.is_meta and not torch.equal(head, embedding):
            raise ValueError(
                "lm_head.weight differs from model.embed_tokens.weight, but config.json says "
                "tie_word_embeddings=true; set it to false in config.json"
            )
    missing = sorted(set(names) - set(given))
    if missing:
        raise ValueError(
            f"checkpoint is missing {_listed(missing)}; are all shards there, and does config.json "
            "(num_hidden_layers, tie_word_embeddings) belong to these weights?"
        )
    unexpected = sorted(set(given) - set(names))
    if unexpected:
        raise ValueError(
            f"checkpoint has unexpected tensors {_listed(unexpected)}; does config.json "
            "(num_hidden_layers, tie_word_embeddings) belong to these weights? (multimodal Gemma 3 is not supported)"
        )
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Gemma3Model(cfg).state_dict().items()}
    for hf_name, ours in names.items():
        if tuple(given[hf_name].shape) != shapes[ours]:
            raise ValueError(
                f"shape mismatch for {hf_name!r}: the checkpoint has {tuple(given[hf_name].shape)}, "
                f"config.json implies {shapes[ours]}; config.json and the weights do not belong together"
            )
    return {ours: given[hf_name] for hf_name, ours in names.items()}


MODEL_CLASS = Gemma3Model
