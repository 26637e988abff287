"""What a token costs: parameters it touches, FLOPs it takes, and the roofline of a machine (notebook 16)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

__all__ = [
    "QWEN3_30B_A3B",
    "parameter_counts",
    "parameter_formula",
    "attention_shape",
    "forward_flops",
    "counted_flops",
    "expected_distinct_experts",
    "arithmetic_intensity",
    "attainable_flops",
    "ridge_intensity",
]

# The config.json published with Qwen/Qwen3-30B-A3B (facts, kept as data): 128 experts, 8 per token, every layer MoE.
QWEN3_30B_A3B: dict = {
    "architectures": ["Qwen3MoeForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "decoder_sparse_step": 1,
    "eos_token_id": 151645,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 6144,
    "max_position_embeddings": 40960,
    "max_window_layers": 48,
    "mlp_only_layers": [],
    "model_type": "qwen3_moe",
    "moe_intermediate_size": 768,
    "norm_topk_prob": True,
    "num_attention_heads": 32,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "num_hidden_layers": 48,
    "num_key_value_heads": 4,
    "output_router_logits": False,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000.0,
    "router_aux_loss_coef": 0.001,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}

_HEAD_NAMES = ("out_head", "lm_head")  # the output projection of the course's models and of transformers'
_SUPPORTED = ("gpt2", "llama", "qwen3", "qwen3_moe", "deepseek_v3", "qwen3_next")


def parameter_counts(model: nn.Module, n_experts: int = 0, top_k: int = 0) -> dict[str, int]:
    """Total and per-token active parameters of a model, by module type and name (works on the meta device).

    A table only looked up (an nn.Embedding whose weight no output head reuses) costs one row per token and
    no multiplication, so "active" leaves it out; "active_with_embedding" adds it back, as model cards count.
    "active_matrix" leaves out the vectors too (norms, biases): the weights of matrix products, 2 FLOPs each.
    Parameters under a module named `experts` are the routed experts, stacked or in a list, n_experts per
    layer; a token uses top_k of them, so active counts top_k / n_experts of them. Shared experts (another
    name) are always on.
    """
    if n_experts < 0 or top_k < 0 or top_k > n_experts:
        raise ValueError(f"need 0 <= top_k <= n_experts, got top_k={top_k}, n_experts={n_experts}")
    heads = {id(m.weight) for name, m in model.named_modules() if name.split(".")[-1] in _HEAD_NAMES}
    lookup = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)} - heads
    total = embedding = head = vectors = routed = 0
    for name, p in model.named_parameters():  # a tied Parameter is listed once
        total += p.numel()
        if id(p) in lookup:
            embedding += p.numel()
        elif id(p) in heads:
            head += p.numel()
        elif "experts" in name.split(".")[:-1]:
            routed += p.numel()
        elif p.dim() < 2:  # norms and biases: an add or a multiply per value, no matrix product
            vectors += p.numel()
    if routed and (n_experts == 0 or routed % n_experts):
        raise ValueError(
            f"the model has {routed:,} routed-expert parameters, not a multiple of n_experts={n_experts}: "
            "pass the number of routed experts per MoE layer"
        )
    active_routed = routed // n_experts * top_k if n_experts else 0
    return _counts(total, embedding, head, vectors, routed, active_routed)


def _moe_layer(config: Mapping, i: int) -> bool:
    """Whether layer i of a qwen3_moe / qwen3_next / deepseek_v3 config.json has a mixture-of-experts FFN."""
    if config["model_type"] == "deepseek_v3":
        return i >= config["first_k_dense_replace"] and i % config.get("moe_layer_freq", 1) == 0
    step = config.get("decoder_sparse_step", 1)
    return i not in config.get("mlp_only_layers", []) and config["num_experts"] > 0 and (i + 1) % step == 0


def parameter_formula(config: Mapping) -> dict[str, int]:
    """parameter_counts' figures computed from a config.json dict alone (gpt2, llama, qwen3, qwen3_moe, ...).

    Every weight matrix is in_features * out_features, every norm or bias one vector; nothing is built.
    """
    kind = config.get("model_type")
    if kind not in _SUPPORTED:
        raise ValueError(f"parameter_formula: model_type {kind!r} is not one of {', '.join(_SUPPORTED)}")
    if kind == "gpt2":
        d, v, n = config["n_embd"], config["vocab_size"], config["n_layer"]
        inner = config.get("n_inner") or 4 * d
        mat = n * (d * 3 * d + d * d + 2 * d * inner)  # Q/K/V, output projection, the two FFN layers
        vec = n * (2 * 2 * d + 3 * d + d + inner + d) + 2 * d  # LayerNorm scales/shifts and biases
        embedding = config["n_positions"] * d  # position table; the token table is the (tied) head
        return _counts(embedding + v * d + mat + vec, embedding, v * d, vec, 0, 0)
    d, v, n = config["hidden_size"], config["vocab_size"], config["num_hidden_layers"]
    embedding = 0 if config.get("tie_word_embeddings", False) else v * d  # tied: the token table is the head
    mat, vec = v * d, d  # the head, the final norm
    routed = active_routed = 0
    n_heads, n_kv = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    hd = config.get("head_dim") or d // n_heads
    for i in range(n):
        vec += 2 * d  # the two norms of the block
        if kind == "deepseek_v3":
            nope, rope, vd = config["qk_nope_head_dim"], config["qk_rope_head_dim"], config["v_head_dim"]
            rq, rkv = config["q_lora_rank"], config["kv_lora_rank"]
            mat += d * rq + rq * n_heads * (nope + rope) if rq else d * n_heads * (nope + rope)
            mat += d * (rkv + rope) + rkv * n_heads * (nope + vd) + n_heads * vd * d
            vec += (rq if rq else 0) + rkv  # the norms of the compressed query and key/value
        elif kind == "qwen3_next" and (i + 1) % config["full_attention_interval"]:  # Gated DeltaNet
            nk, dk = config["linear_num_key_heads"], config["linear_key_head_dim"]
            nv, dv = config["linear_num_value_heads"], config["linear_value_head_dim"]
            mixed = 2 * nk * dk + nv * dv  # q, k, v go through the short convolution
            mat += d * (mixed + nv * dv) + d * 2 * nv + mixed * config["linear_conv_kernel_dim"] + nv * dv * d
            vec += 2 * nv + dv  # dt_bias, A_log, the gated norm
        else:
            gated = 2 if kind == "qwen3_next" else 1  # Qwen3-Next's q_proj also gives the output gate
            mat += d * n_heads * hd * gated + 2 * d * n_kv * hd + n_heads * hd * d
            vec += 2 * hd if kind in ("qwen3", "qwen3_moe", "qwen3_next") else 0  # QK-norm
        if kind in ("qwen3_moe", "deepseek_v3", "qwen3_next") and _moe_layer(config, i):
            n_experts = config["n_routed_experts"] if kind == "deepseek_v3" else config["num_experts"]
            expert = 3 * d * config["moe_intermediate_size"]  # gate, up and down projections of one expert
            routed += n_experts * expert
            active_routed += config["num_experts_per_tok"] * expert
            mat += d * n_experts + n_experts * expert  # router, routed experts
            if kind == "deepseek_v3":
                mat += config["n_shared_experts"] * expert
            elif kind == "qwen3_next":
                mat += 3 * d * config["shared_expert_intermediate_size"] + d  # shared expert and its gate
        else:
            mat += 3 * d * config["intermediate_size"]
    return _counts(embedding + mat + vec, embedding, v * d, vec, routed, active_routed)


def _counts(total: int, embedding: int, head: int, vectors: int, routed: int, active_routed: int) -> dict[str, int]:
    """parameter_counts' dict from its parts."""
    active = total - embedding - routed + active_routed
    return dict(
        total=total,
        embedding=embedding,
        head=head,
        vectors=vectors,
        routed_experts=routed,
        active=active,
        active_matrix=active - vectors,
        active_with_embedding=active + embedding,
    )


def attention_shape(config: Mapping) -> dict[str, int]:
    """Layers with softmax attention over the whole context, heads, query/key and value head sizes (config.json).

    The naive (not absorbed) form: multi-head latent attention scores 192-wide keys and sums 128-wide values.
    Gated DeltaNet layers keep a fixed state instead, so they do not grow with the context and are not counted.
    """
    kind = config.get("model_type")
    if kind == "gpt2":
        return dict(
            layers=config["n_layer"],
            heads=config["n_head"],
            qk_dim=config["n_embd"] // config["n_head"],
            v_dim=config["n_embd"] // config["n_head"],
        )
    n, heads = config["num_hidden_layers"], config["num_attention_heads"]
    if kind == "deepseek_v3":
        qk = config["qk_nope_head_dim"] + config["qk_rope_head_dim"]
        return dict(layers=n, heads=heads, qk_dim=qk, v_dim=config["v_head_dim"])
    hd = config.get("head_dim") or config["hidden_size"] // heads
    if kind == "qwen3_next":
        n = sum((i + 1) % config["full_attention_interval"] == 0 for i in range(n))
    return dict(layers=n, heads=heads, qk_dim=hd, v_dim=hd)


def forward_flops(matrix_params: int, attention: Mapping, n_tokens: int, context: int, causal: bool = True) -> int:
    """FLOPs of a forward pass of n_tokens new tokens per sequence after `context` cached ones (one sequence).

    2 * matrix_params per token (one multiply and one add per weight of a matrix product that the token
    touches: parameter_counts' "active_matrix"), plus attention: each new token scores its
    keys (q . k, qk_dim) and sums its values (v_dim), 2 FLOPs each, in every head of every attention layer.
    causal=True counts the keys a token may see (context + its position + 1); causal=False the whole square,
    which the math form of scaled_dot_product_attention computes (what counted_flops runs and counts); the
    fused CPU kernel with is_causal=True skips most masked blocks, so its work lies between the two.
    """
    if n_tokens < 1 or context < 0:
        raise ValueError(f"need n_tokens >= 1 and context >= 0, got n_tokens={n_tokens}, context={context}")
    if causal:
        keys = n_tokens * context + n_tokens * (n_tokens + 1) // 2  # token j sees context + j + 1 keys
    else:
        keys = n_tokens * (context + n_tokens)
    per_key = 2 * attention["heads"] * (attention["qk_dim"] + attention["v_dim"])
    return 2 * matrix_params * n_tokens + attention["layers"] * per_key * keys


def counted_flops(model: nn.Module, *args, **kwargs) -> int:
    """FLOPs torch.utils.flop_counter counts in one call model(*args, **kwargs): matrix products only.

    The counter has no formula for the CPU's fused attention kernel, so attention runs in its math form
    here (two batched matrix products, which it counts); norms, activations, softmax and routing are not counted.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH), torch.inference_mode():
        model(*args, **kwargs)
    return counter.get_total_flops()


def expected_distinct_experts(n_experts: int, top_k: int, n_tokens: int) -> float:
    """Experts of one layer that n_tokens tokens touch, on average, if each picks top_k of n_experts at random.

    An expert escapes one token with probability 1 - top_k / n_experts, and all n_tokens (independent) tokens
    with that to the power n_tokens: exact for uniform random sets of top_k distinct experts per token.
    """
    if not 0 < top_k <= n_experts or n_tokens < 0:
        raise ValueError(f"need 0 < top_k <= n_experts and n_tokens >= 0, got {top_k}, {n_experts}, {n_tokens}")
    return n_experts * (1 - (1 - top_k / n_experts) ** n_tokens)


def arithmetic_intensity(flops: float, bytes_read: float) -> float:
    """FLOPs per byte read from memory."""
    _check_finite(bytes_read=bytes_read)
    return flops / bytes_read


def attainable_flops(intensity: float, peak_flops: float, bandwidth: float) -> float:
    """The highest FLOP/s a computation of this intensity (FLOP/byte) can reach: min(peak, intensity * bandwidth).

    peak_flops in FLOP/s, bandwidth in bytes/s: the roofline's two ceilings.
    """
    _check_finite(intensity=intensity, peak_flops=peak_flops, bandwidth=bandwidth)
    return min(peak_flops, intensity * bandwidth)


def ridge_intensity(peak_flops: float, bandwidth: float) -> float:
    """The intensity where the two ceilings meet: below it memory bounds the speed, above it compute does."""
    _check_finite(peak_flops=peak_flops, bandwidth=bandwidth)
    return peak_flops / bandwidth


def _check_finite(**values: float) -> None:
    """One-line error for a value that is not a finite positive number."""
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite positive number, got {value!r}")
