"""Qwen3-MoE (Qwen3-30B-A3B, Qwen3-235B-A22B): Qwen3's attention with QK-norm, mixture-of-experts MLPs (notebook 15).

Loaded from Hugging Face checkpoints with model_type "qwen3_moe" by gpt_helpers.checkpoints.hf (config_from_hf,
MODEL_CLASS, state_dict_from_hf). The blocks are notebook 09's LlamaQwenBlock with a MoEFeedForward as `ff`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..gpt2.attention import KVCache, LayerKVCache
from ..gpt2.model import check_token_ids
from .gqa import GroupedQueryAttention
from .llama_qwen import LlamaQwenConfig
from .moe import MoESettings, stack_hf_experts
from .rms_norm import RMSNorm
from .rope import RoPE
from .swiglu import SwiGLUFeedForward

__all__ = [
    "Qwen3MoeConfig",
    "Qwen3MoeBlock",
    "Qwen3MoeModel",
    "MODEL_CLASS",
    "config_from_hf",
    "state_dict_from_hf",
]


@dataclass(frozen=True, kw_only=True)
class Qwen3MoeConfig(LlamaQwenConfig):
    """A LlamaQwenConfig (hidden_dim: the dense layers, if any) plus the MoE layers' settings, validated."""

    moe: MoESettings  # softmax routing, no shared expert (Qwen3-30B-A3B: 128 experts, 8 per token, all 48 layers)
    qk_norm: bool = True  # Qwen3's RMSNorm on each head's queries and keys

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.moe, MoESettings):
            raise TypeError(f"Qwen3MoeConfig.moe must be a MoESettings, got {type(self.moe).__name__}")
        if self.moe.routing != "softmax" or self.moe.shared_hidden_dim:
            raise ValueError("Qwen3-MoE routes with a softmax and has no shared expert; set routing='softmax'")
        if self.moe.layers and self.moe.layers[-1] >= self.n_layers:
            raise ValueError(f"Qwen3MoeConfig.moe.layers must lie in [0, {self.n_layers - 1}], got {self.moe.layers}")


class Qwen3MoeBlock(nn.Module):
    """RMSNorm -> grouped-query attention with QK-norm -> shortcut, then RMSNorm -> MoE or SwiGLU -> shortcut."""

    def __init__(self, cfg: Qwen3MoeConfig, moe: bool):
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
        self.ff = cfg.moe.feed_forward(cfg.emb_dim) if moe else SwiGLUFeedForward(cfg.emb_dim, cfg.hidden_dim)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv_cache: LayerKVCache | None = None
    ) -> torch.Tensor:
        # x: (B, T, C); LlamaQwenBlock's layout, the feed-forward network routed per token
        x = self.att(self.norm1(x), cos, sin, kv_cache=kv_cache) + x
        return self.ff(self.norm2(x)) + x  # (B, T, C)


class Qwen3MoeModel(nn.Module):
    """Token embedding, N blocks (MoE where cfg.moe.layers says), final RMSNorm, output head; a KVCache decodes it."""

    def __init__(self, cfg: Qwen3MoeConfig):
        super().__init__()
        if not isinstance(cfg, Qwen3MoeConfig):
            raise TypeError(
                f"Qwen3MoeModel expects a Qwen3MoeConfig, got {type(cfg).__name__}; "
                "build one with Qwen3MoeConfig(...) or config_from_hf(config_json_dict)"
            )
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.rope = RoPE(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)
        self.trf_blocks = nn.ModuleList(Qwen3MoeBlock(cfg, i in cfg.moe.layers) for i in range(cfg.n_layers))
        self.final_norm = RMSNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.out_head.weight = self.tok_emb.weight

    def forward(self, in_idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        check_token_ids(in_idx, self.cfg.vocab_size)
        if cache is not None and (not isinstance(cache, KVCache) or len(cache.layers) != self.cfg.n_layers):
            raise ValueError("cache must be a KVCache for this model; make one with KVCache.for_model(model)")
        seq_len = in_idx.shape[1]  # in_idx: (B, T)
        start = 0 if cache is None else cache.length
        if start + seq_len > self.cfg.context_length:
            raise ValueError(
                f"sequence of {start + seq_len} tokens is longer than context_length={self.cfg.context_length}; "
                f"keep only the last {self.cfg.context_length} tokens (in_idx[:, -context_length:])"
            )
        x = self.tok_emb(in_idx)  # (B, T, C)
        cos, sin = self.rope(torch.arange(start, start + seq_len, device=in_idx.device))  # (T, head_dim) each
        for i, block in enumerate(self.trf_blocks):
            x = block(x, cos, sin, kv_cache=None if cache is None else cache.layers[i])
        return self.out_head(self.final_norm(x))  # logits: (B, T, vocab_size)


MODEL_CLASS = Qwen3MoeModel


# ---------------------------------------------------------------------------------------------------------------
# Hugging Face checkpoints (model_type "qwen3_moe")


def _get(config: dict, key: str):
    if config.get(key) is None:
        raise ValueError(f"config.json has no {key!r}, which every qwen3_moe config.json has; download it again")
    return config[key]


def moe_layers_from_hf(config: dict) -> tuple[int, ...]:
    """Qwen3-MoE's and Qwen3-Next's rule: layer i is MoE unless listed in mlp_only_layers, if (i + 1) % step == 0."""
    n_layers, step = _get(config, "num_hidden_layers"), config.get("decoder_sparse_step", 1)
    dense = config.get("mlp_only_layers") or []
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"config.json's decoder_sparse_step must be a positive int, got {step!r}")
    if not isinstance(dense, list) or any(isinstance(i, bool) or not isinstance(i, int) for i in dense):
        raise ValueError(f"config.json's mlp_only_layers must be a list of layer indices, got {dense!r}")
    return tuple(i for i in range(n_layers) if i not in dense and (i + 1) % step == 0)


def config_from_hf(config: dict) -> Qwen3MoeConfig:
    """The Qwen3MoeConfig of a Hugging Face config.json dict with model_type qwen3_moe."""
    from ..checkpoints.hf import llama_qwen_config_from_hf  # lazily: checkpoints/hf.py imports this module lazily

    if not isinstance(config, dict):
        raise TypeError(f"config must be the dict of a config.json, got {type(config).__name__}")
    if config.get("model_type") != "qwen3_moe":
        raise ValueError(
            f"config_from_hf reads qwen3_moe config.json files, got model_type {config.get('model_type')!r}"
        )
    # the published files say num_experts; transformers 5 writes num_local_experts
    n_experts = config.get("num_experts", config.get("num_local_experts"))
    if not n_experts:
        raise ValueError(
            "config.json has no experts (num_experts missing or 0): that is a dense Qwen3, give model_type 'qwen3'"
        )
    base = llama_qwen_config_from_hf({**config, "model_type": "qwen3"})  # attention, norms, RoPE: as Qwen3's
    try:
        moe = MoESettings(
            layers=moe_layers_from_hf(config),
            n_experts=n_experts,
            top_k=_get(config, "num_experts_per_tok"),
            hidden_dim=_get(config, "moe_intermediate_size"),
            norm_topk_prob=bool(config.get("norm_topk_prob", False)),  # transformers' default: False
        )
        return Qwen3MoeConfig(**{f: getattr(base, f) for f in base.__dataclass_fields__}, moe=moe)
    except (TypeError, ValueError) as err:
        raise ValueError(f"config.json does not describe a valid qwen3_moe model: {err}") from None


def _listed(keys: list[str]) -> str:
    return str(keys[:3])[:-1] + (f", ... ({len(keys)} in all)]" if len(keys) > 3 else "]")


def state_dict_from_hf(state_dict: dict[str, torch.Tensor], cfg: Qwen3MoeConfig) -> dict[str, torch.Tensor]:
    """Rename Hugging Face Qwen3-MoE tensors to Qwen3MoeModel's, stacking each layer's experts; checks every one."""
    names = {"model.embed_tokens.weight": "tok_emb.weight", "model.norm.weight": "final_norm.scale"}
    if not cfg.tie_weights:
        names["lm_head.weight"] = "out_head.weight"
    attention = {
        "input_layernorm.weight": "norm1.scale",
        "self_attn.q_proj.weight": "att.W_query.weight",
        "self_attn.k_proj.weight": "att.W_key.weight",
        "self_attn.v_proj.weight": "att.W_value.weight",
        "self_attn.o_proj.weight": "att.out_proj.weight",
        "self_attn.q_norm.weight": "att.q_norm.scale",
        "self_attn.k_norm.weight": "att.k_norm.scale",
        "post_attention_layernorm.weight": "norm2.scale",
    }
    dense = {f"mlp.{p}_proj.weight": f"ff.{p}.weight" for p in ("gate", "up", "down")}
    moe_layers = set(cfg.moe.layers)
    for i in range(cfg.n_layers):
        per_layer = attention | ({"mlp.gate.weight": "ff.router.weight"} if i in moe_layers else dense)
        names |= {f"model.layers.{i}.{hf}": f"trf_blocks.{i}.{ours}" for hf, ours in per_layer.items()}
    given = {k: v for k, v in state_dict.items() if not k.endswith("rotary_emb.inv_freq")}  # a copy: popped below
    if cfg.tie_weights and "lm_head.weight" in given:
        head, embedding = given.pop("lm_head.weight"), given.get("model.embed_tokens.weight")
        if embedding is not None and not head.is_meta and not torch.equal(head, embedding):
            raise ValueError(
                "lm_head.weight differs from model.embed_tokens.weight, but config.json says "
                "tie_word_embeddings=true; set it to false in config.json"
            )
    out = {}
    for i in sorted(moe_layers):
        stacked = stack_hf_experts(given, f"model.layers.{i}.mlp.experts", cfg.moe.n_experts)
        out |= {f"trf_blocks.{i}.ff.experts.{ours}": w for ours, w in stacked.items()}
    missing = sorted(set(names) - set(given))
    if missing:
        raise ValueError(
            f"checkpoint is missing {_listed(missing)}; are all shards there, and does config.json "
            "(num_hidden_layers, mlp_only_layers, decoder_sparse_step, tie_word_embeddings) belong to these weights?"
        )
    unexpected = sorted(set(given) - set(names))
    if unexpected:
        raise ValueError(
            f"checkpoint has unexpected tensors {_listed(unexpected)}; does config.json (num_hidden_layers, "
            "num_experts, mlp_only_layers, decoder_sparse_step, tie_word_embeddings) belong to these weights?"
        )
    out |= {ours: given[hf_name] for hf_name, ours in names.items()}
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Qwen3MoeModel(cfg).state_dict().items()}
    for ours, tensor in out.items():
        if not tensor.is_floating_point():
            raise ValueError(
                f"{ours!r} has dtype {tensor.dtype}: quantized or damaged weights are not supported; "
                "use a checkpoint with float32, float16 or bfloat16 weights"
            )
        if tuple(tensor.shape) != shapes[ours]:
            raise ValueError(
                f"shape mismatch for {ours!r} (our name): the checkpoint has {tuple(tensor.shape)}, config.json "
                f"implies {shapes[ours]}; config.json and the weights do not belong together"
            )
    return out
