"""DeepSeek-V3: multi-head latent attention (mla.py), YaRN RoPE (yarn.py) (notebook 11), MoE layers (moe.py, 15).

Also what checkpoints/hf.py needs to load a `deepseek_v3` checkpoint: config_from_hf, MODEL_CLASS and
state_dict_from_hf. The first first_k_dense_replace layers keep a dense SwiGLU network, the others are MoE.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from ..gpt2.model import check_token_ids
from .mla import MLACache, MultiHeadLatentAttention
from .moe import MoESettings, stack_hf_experts
from .rms_norm import RMSNorm
from .rope import RoPE
from .swiglu import SwiGLUFeedForward
from .yarn import YarnRoPE, YarnRopeScaling, yarn_softmax_scale

__all__ = [
    "DEEPSEEK_V3_CONFIG",
    "DeepSeekV3Config",
    "DeepSeekV3Block",
    "DeepSeekV3Model",
    "MODEL_CLASS",
    "config_from_hf",
    "state_dict_from_hf",
]

# config.json of deepseek-ai/DeepSeek-V3 as published with its weights (facts, kept as data; auto_map left out)
DEEPSEEK_V3_CONFIG: dict = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "aux_loss_alpha": 0.001,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "ep_size": 1,
    "first_k_dense_replace": 3,
    "hidden_act": "silu",
    "hidden_size": 7168,
    "initializer_range": 0.02,
    "intermediate_size": 18432,
    "kv_lora_rank": 512,
    "max_position_embeddings": 163840,
    "model_type": "deepseek_v3",
    "moe_intermediate_size": 2048,
    "moe_layer_freq": 1,
    "n_group": 8,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "norm_topk_prob": True,
    "num_attention_heads": 128,
    "num_experts_per_tok": 8,
    "num_hidden_layers": 61,
    "num_key_value_heads": 128,
    "num_nextn_predict_layers": 1,
    "pretraining_tp": 1,
    "q_lora_rank": 1536,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "quantization_config": {
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "quant_method": "fp8",
        "weight_block_size": [128, 128],
    },
    "rms_norm_eps": 1e-06,
    "rope_scaling": {
        "beta_fast": 32,
        "beta_slow": 1,
        "factor": 40,
        "mscale": 1.0,
        "mscale_all_dim": 1.0,
        "original_max_position_embeddings": 4096,
        "type": "yarn",
    },
    "rope_theta": 10000,
    "routed_scaling_factor": 2.5,
    "scoring_func": "sigmoid",
    "seq_aux": True,
    "tie_word_embeddings": False,
    "topk_group": 4,
    "topk_method": "noaux_tc",
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "v_head_dim": 128,
    "vocab_size": 129280,
}


@dataclass(frozen=True)
class DeepSeekV3Config:
    """Hyper-parameters of a DeepSeek-V3 style model, validated on creation (moe=None: every layer dense)."""

    vocab_size: int
    context_length: int
    emb_dim: int
    n_heads: int
    n_layers: int
    hidden_dim: int  # width of the SwiGLU feed-forward network
    kv_lora_rank: int  # size of the latent each position caches (DeepSeek-V3: 512)
    qk_nope_head_dim: int  # per-head key/query features without position (128)
    qk_rope_head_dim: int  # rotated features, one key shared by all heads (64)
    v_head_dim: int  # per-head value features (128)
    q_lora_rank: int | None = None  # None: queries straight from the hidden state; else low-rank (1536)
    rope_theta: float = 10_000.0
    rope_scaling: YarnRopeScaling | None = None
    rope_interleave: bool = True  # the checkpoint pairs adjacent rotated features (2i, 2i + 1)
    attention_bias: bool = False  # biases on the down-projections and the output projection
    norm_eps: float = 1e-6  # the block norms; the latent and query norms keep 1e-6, as DeepSeek-V3 has it
    tie_weights: bool = False
    moe: MoESettings | None = None  # the mixture-of-experts layers (notebook 15); None: all SwiGLU

    def __post_init__(self) -> None:
        sizes = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "hidden_dim", "kv_lora_rank")
        for name in (*sizes, "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "q_lora_rank"):
            value = getattr(self, name)
            if value is None and name == "q_lora_rank":
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"DeepSeekV3Config.{name} must be an int, got {type(value).__name__} ({value!r})")
            if value <= 0:
                raise ValueError(f"DeepSeekV3Config.{name} must be positive, got {value}")
        if self.qk_rope_head_dim % 2 != 0:
            raise ValueError(
                f"DeepSeekV3Config.qk_rope_head_dim must be even (RoPE rotates pairs), got {self.qk_rope_head_dim}"
            )
        for name in ("rope_theta", "norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"DeepSeekV3Config.{name} must be a positive number, got {value!r}")
        if self.rope_scaling is not None and not isinstance(self.rope_scaling, YarnRopeScaling):
            raise TypeError(
                "DeepSeekV3Config.rope_scaling must be None or a YarnRopeScaling, "
                f"got {type(self.rope_scaling).__name__}"
            )
        for name in ("rope_interleave", "attention_bias", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"DeepSeekV3Config.{name} must be True or False, got {getattr(self, name)!r}")
        if self.moe is not None and not isinstance(self.moe, MoESettings):
            raise TypeError(f"DeepSeekV3Config.moe must be None or a MoESettings, got {type(self.moe).__name__}")
        if self.moe is not None and self.moe.layers and self.moe.layers[-1] >= self.n_layers:
            raise ValueError(f"DeepSeekV3Config.moe.layers must lie in [0, {self.n_layers - 1}], got {self.moe.layers}")

    @property
    def qk_head_dim(self) -> int:
        """Features per head that queries and keys are compared on: qk_nope_head_dim + qk_rope_head_dim."""
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def softmax_scale(self) -> float:
        """The factor on q . k before the softmax: 1 / sqrt(qk_head_dim), with YaRN's mscale_all_dim correction."""
        return yarn_softmax_scale(self.qk_head_dim, self.rope_scaling)

    def with_(self, **changes) -> DeepSeekV3Config:
        """Return a copy with some fields changed (validated again)."""
        return replace(self, **changes)


class DeepSeekV3Block(nn.Module):
    """RMSNorm -> multi-head latent attention -> shortcut, then RMSNorm -> SwiGLU (or MoE) -> shortcut."""

    def __init__(self, cfg: DeepSeekV3Config, moe: bool = False):
        super().__init__()
        self.norm1 = RMSNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.att = MultiHeadLatentAttention(
            emb_dim=cfg.emb_dim,
            n_heads=cfg.n_heads,
            kv_lora_rank=cfg.kv_lora_rank,
            qk_nope_head_dim=cfg.qk_nope_head_dim,
            qk_rope_head_dim=cfg.qk_rope_head_dim,
            v_head_dim=cfg.v_head_dim,
            softmax_scale=cfg.softmax_scale,
            q_lora_rank=cfg.q_lora_rank,
            rope_interleave=cfg.rope_interleave,
            bias=cfg.attention_bias,
        )
        self.norm2 = RMSNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.ff = cfg.moe.feed_forward(cfg.emb_dim) if moe else SwiGLUFeedForward(cfg.emb_dim, cfg.hidden_dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv_cache=None) -> torch.Tensor:
        # x: (B, T, C); the pre-norm layout of LlamaQwenBlock, with MLA in place of GQA
        x = self.att(self.norm1(x), cos, sin, kv_cache=kv_cache) + x
        return self.ff(self.norm2(x)) + x  # (B, T, C)


class DeepSeekV3Model(nn.Module):
    """Token embedding, N blocks with multi-head latent attention, final RMSNorm, output head."""

    def __init__(self, cfg: DeepSeekV3Config):
        super().__init__()
        if not isinstance(cfg, DeepSeekV3Config):
            raise TypeError(
                f"DeepSeekV3Model expects a DeepSeekV3Config, got {type(cfg).__name__}; "
                "build one with DeepSeekV3Config(...) or config_from_hf(config_dict)"
            )
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        # RoPE turns only the qk_rope_head_dim shared features; computed on each call, so nothing goes stale
        if cfg.rope_scaling is None:
            self.rope = RoPE(cfg.qk_rope_head_dim, cfg.rope_theta)
        else:
            self.rope = YarnRoPE(cfg.qk_rope_head_dim, cfg.rope_theta, cfg.rope_scaling)
        moe_layers = () if cfg.moe is None else cfg.moe.layers
        self.trf_blocks = nn.ModuleList(DeepSeekV3Block(cfg, moe=i in moe_layers) for i in range(cfg.n_layers))
        self.final_norm = RMSNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.out_head.weight = self.tok_emb.weight

    def make_cache(self, batch_size: int, max_len: int) -> MLACache:
        """An empty MLACache for `batch_size` sequences of up to `max_len` positions, in the model's dtype."""
        limit = self.cfg.context_length
        if isinstance(max_len, bool) or not isinstance(max_len, int) or not 1 <= max_len <= limit:
            raise ValueError(f"max_len must be an int in [1, context_length={limit}], got {max_len!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        param = self.tok_emb.weight
        return MLACache(
            self.cfg.n_layers,
            batch_size,
            max_len,
            self.cfg.kv_lora_rank,
            self.cfg.qk_rope_head_dim,
            dtype=param.dtype,
            device=param.device,
        )

    def forward(self, in_idx: torch.Tensor, cache: MLACache | None = None) -> torch.Tensor:
        check_token_ids(in_idx, self.cfg.vocab_size)
        seq_len = in_idx.shape[1]  # in_idx: (B, T)
        if cache is not None and not isinstance(cache, MLACache):
            raise TypeError(f"DeepSeekV3Model needs an MLACache, got {type(cache).__name__}; use model.make_cache(...)")
        start = 0 if cache is None else cache.length  # position of the first new token
        if start + seq_len > self.cfg.context_length:
            raise ValueError(
                f"sequence of {start + seq_len} tokens is longer than context_length={self.cfg.context_length}; "
                f"keep only the last {self.cfg.context_length} tokens (in_idx[:, -context_length:])"
            )
        x = self.tok_emb(in_idx)  # (B, T, C)
        cos, sin = self.rope(torch.arange(start, start + seq_len, device=in_idx.device))  # (T, rope dim) each
        for i, block in enumerate(self.trf_blocks):
            x = block(x, cos, sin, kv_cache=None if cache is None else cache.layers[i])
        return self.out_head(self.final_norm(x))  # logits: (B, T, vocab_size)


MODEL_CLASS = DeepSeekV3Model


def _required(config: dict, key: str):
    if config.get(key) is None:
        raise ValueError(f"config.json has no {key!r}, which every deepseek_v3 config.json has; download it again")
    return config[key]


def _rope_from_hf(config: dict) -> tuple[float, YarnRopeScaling | None]:
    """(rope_theta, YaRN settings) from transformers 5's rope_parameters or the older rope_scaling + rope_theta."""
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if not isinstance(params, dict):
        raise ValueError(f"config.json's rope settings must be a JSON object, got {params!r}")
    theta = float(params.get("rope_theta", config.get("rope_theta", 10_000.0)))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind == "default":
        return theta, None
    if kind != "yarn":
        raise ValueError(
            f"RoPE scaling type {kind!r} in config.json is not supported for deepseek_v3; "
            "gpt_helpers implements 'default' (no scaling) and 'yarn'"
        )
    original = params.get("original_max_position_embeddings", config.get("max_position_embeddings"))
    factor = params.get("factor")
    if factor is None:  # transformers then stretches to max_position_embeddings
        factor = _required(config, "max_position_embeddings") / original
    scaling = YarnRopeScaling(
        factor=factor,
        original_context_length=original,
        beta_fast=params.get("beta_fast") or 32.0,  # transformers treats 0 and null as the default
        beta_slow=params.get("beta_slow") or 1.0,
        mscale=params.get("mscale"),
        mscale_all_dim=params.get("mscale_all_dim"),
        attention_factor=params.get("attention_factor"),
        truncate=params.get("truncate", True),
    )
    return theta, scaling


def _moe_from_hf(config: dict, n_layers: int) -> MoESettings | None:
    """The MoESettings of a deepseek_v3 config.json (transformers' defaults for absent keys), None if all dense."""
    dense = config.get("first_k_dense_replace", 3)  # transformers' default: 3 dense layers, then experts
    if dense is None:
        dense = 3
    if isinstance(dense, bool) or not isinstance(dense, int) or dense < 0:
        raise ValueError(f"config.json's first_k_dense_replace must be an int >= 0, got {dense!r}")
    if dense >= n_layers:
        return None
    refused = {
        "moe_layer_freq": (1, "transformers makes every layer from first_k_dense_replace on MoE"),
        "scoring_func": ("sigmoid", "DeepSeek-V3 scores experts with a sigmoid"),
        "topk_method": ("noaux_tc", "DeepSeek-V3 chooses by score + e_score_correction_bias within groups"),
    }
    for key, (value, why) in refused.items():
        if config.get(key, value) not in (None, value):
            raise ValueError(f"config.json sets {key}={config[key]!r}; only {value!r} is supported ({why})")
    hidden = config.get("moe_intermediate_size") or 2048
    shared = config.get("n_shared_experts", 1)
    if isinstance(shared, bool) or not isinstance(shared, int) or shared < 1:
        raise ValueError(f"config.json's n_shared_experts must be an int >= 1 (DeepSeek-V3 has 1), got {shared!r}")
    try:
        return MoESettings(
            layers=tuple(range(dense, n_layers)),
            n_experts=config.get("n_routed_experts") or 256,
            top_k=config.get("num_experts_per_tok") or 8,
            hidden_dim=hidden,
            norm_topk_prob=bool(config.get("norm_topk_prob", True)),
            routing="deepseek",
            n_group=config.get("n_group") or 8,
            topk_group=config.get("topk_group") or 4,
            routed_scaling_factor=float(config.get("routed_scaling_factor", 2.5)),
            shared_hidden_dim=shared * hidden,  # n_shared_experts experts of the same width, fused into one
        )
    except (TypeError, ValueError) as err:
        raise ValueError(f"config.json's mixture-of-experts settings are invalid: {err}") from None


def config_from_hf(config: dict) -> DeepSeekV3Config:
    """The DeepSeekV3Config of a Hugging Face deepseek_v3 config.json dict (dense and MoE layers)."""
    n_layers = _required(config, "num_hidden_layers")
    moe = _moe_from_hf(config, n_layers)
    if config.get("quantization_config"):
        method = config["quantization_config"].get("quant_method", "?")
        raise ValueError(f"config.json describes {method}-quantized weights; convert them to bfloat16 first")
    if config.get("hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act {config['hidden_act']!r} is not supported; DeepSeek-V3's SwiGLU uses 'silu'")
    n_heads = _required(config, "num_attention_heads")
    kv_heads = config.get("num_key_value_heads") or n_heads
    if kv_heads != n_heads:
        raise ValueError(
            f"num_key_value_heads ({kv_heads}) must equal num_attention_heads ({n_heads}): in MLA every head "
            "reads the one shared latent, so there are no key/value groups"
        )
    theta, scaling = _rope_from_hf(config)
    return DeepSeekV3Config(
        vocab_size=_required(config, "vocab_size"),
        context_length=_required(config, "max_position_embeddings"),
        emb_dim=_required(config, "hidden_size"),
        n_heads=n_heads,
        n_layers=n_layers,
        hidden_dim=_required(config, "intermediate_size"),
        kv_lora_rank=_required(config, "kv_lora_rank"),
        qk_nope_head_dim=_required(config, "qk_nope_head_dim"),
        qk_rope_head_dim=_required(config, "qk_rope_head_dim"),
        v_head_dim=_required(config, "v_head_dim"),
        q_lora_rank=config.get("q_lora_rank", 1536),  # a missing key means transformers' default; null means none
        rope_theta=theta,
        rope_scaling=scaling,
        rope_interleave=bool(config.get("rope_interleave", True)),
        attention_bias=bool(config.get("attention_bias", False)),
        norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        tie_weights=bool(config.get("tie_word_embeddings", False)),
        moe=moe,
    )


def _listed(keys: list[str]) -> str:
    return str(keys[:3])[:-1] + (f", ... ({len(keys)} in all)]" if len(keys) > 3 else "]")


def _hf_names(cfg: DeepSeekV3Config) -> dict[str, str]:
    """Hugging Face tensor name -> ours, for every tensor but kv_b_proj (split in two, see state_dict_from_hf)."""
    names = {"model.embed_tokens.weight": "tok_emb.weight", "model.norm.weight": "final_norm.scale"}
    if not cfg.tie_weights:
        names["lm_head.weight"] = "out_head.weight"
    per_layer = {
        "input_layernorm.weight": "norm1.scale",
        "post_attention_layernorm.weight": "norm2.scale",
        "self_attn.kv_a_proj_with_mqa.weight": "att.W_kv_down.weight",
        "self_attn.kv_a_layernorm.weight": "att.latent_norm.scale",
        "self_attn.o_proj.weight": "att.out_proj.weight",
    }
    if cfg.q_lora_rank is None:
        per_layer["self_attn.q_proj.weight"] = "att.W_query.weight"
    else:
        per_layer["self_attn.q_a_proj.weight"] = "att.W_query_down.weight"
        per_layer["self_attn.q_a_layernorm.weight"] = "att.query_norm.scale"
        per_layer["self_attn.q_b_proj.weight"] = "att.W_query_up.weight"
    if cfg.attention_bias:
        per_layer["self_attn.kv_a_proj_with_mqa.bias"] = "att.W_kv_down.bias"
        per_layer["self_attn.o_proj.bias"] = "att.out_proj.bias"
        if cfg.q_lora_rank is not None:
            per_layer["self_attn.q_a_proj.bias"] = "att.W_query_down.bias"
    dense = {f"mlp.{p}_proj.weight": f"ff.{p}.weight" for p in ("gate", "up", "down")}
    moe = {  # the experts themselves are stacked by stack_hf_experts
        "mlp.gate.weight": "ff.router.weight",
        "mlp.gate.e_score_correction_bias": "ff.e_score_correction_bias",
        **{f"mlp.shared_experts.{p}_proj.weight": f"ff.shared_expert.{p}.weight" for p in ("gate", "up", "down")},
    }
    moe_layers = () if cfg.moe is None else cfg.moe.layers
    for i in range(cfg.n_layers):
        layer = per_layer | (moe if i in moe_layers else dense)
        names |= {f"model.layers.{i}.{hf}": f"trf_blocks.{i}.{ours}" for hf, ours in layer.items()}
    return names


def state_dict_from_hf(state_dict: dict[str, torch.Tensor], cfg: DeepSeekV3Config) -> dict[str, torch.Tensor]:
    """Rename Hugging Face DeepSeek-V3 tensors to DeepSeekV3Model's, splitting kv_b_proj, stacking the experts."""
    names = _hf_names(cfg)
    fused = {f"model.layers.{i}.self_attn.kv_b_proj.weight": i for i in range(cfg.n_layers)}
    given = {k: v for k, v in state_dict.items() if not k.endswith("rotary_emb.inv_freq")}  # old files: a buffer
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
    expected = set(names) | set(fused)
    missing = sorted(expected - set(given))
    if missing:
        raise ValueError(
            f"checkpoint is missing {_listed(missing)}; are all shards there, and does config.json "
            "(num_hidden_layers, first_k_dense_replace, q_lora_rank, attention_bias, tie_word_embeddings) "
            "belong to these weights?"
        )
    unexpected = sorted(set(given) - expected)
    if unexpected:
        raise ValueError(
            f"checkpoint has unexpected tensors {_listed(unexpected)}; does config.json (num_hidden_layers, "
            "q_lora_rank, attention_bias, first_k_dense_replace, tie_word_embeddings) belong to these weights?"
        )
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in DeepSeekV3Model(cfg).state_dict().items()}
    per_head = cfg.qk_nope_head_dim + cfg.v_head_dim
    for ours, tensor in stacked.items():
        if tuple(tensor.shape) != shapes[ours]:
            raise ValueError(
                f"shape mismatch for the experts of {ours!r}: the checkpoint has {tuple(tensor.shape)} stacked, "
                f"config.json implies {shapes[ours]}; config.json and the weights do not belong together"
            )
    for hf_name, ours in [*names.items(), *((k, (cfg.n_heads * per_head, cfg.kv_lora_rank)) for k in fused)]:
        want = shapes[ours] if isinstance(ours, str) else ours
        if tuple(given[hf_name].shape) != want:
            raise ValueError(
                f"shape mismatch for {hf_name!r}: the checkpoint has {tuple(given[hf_name].shape)}, "
                f"config.json implies {want}; config.json and the weights do not belong together"
            )
    out = stacked | {ours: given[hf_name] for hf_name, ours in names.items()}
    for hf_name, i in fused.items():
        # kv_b_proj stacks, head by head, qk_nope_head_dim key rows then v_head_dim value rows
        w = given[hf_name].view(cfg.n_heads, per_head, cfg.kv_lora_rank)
        w_uk, w_uv = w.split([cfg.qk_nope_head_dim, cfg.v_head_dim], dim=1)
        out[f"trf_blocks.{i}.att.W_key_up.weight"] = w_uk.reshape(-1, cfg.kv_lora_rank)
        out[f"trf_blocks.{i}.att.W_value_up.weight"] = w_uv.reshape(-1, cfg.kv_lora_rank)
    return out
