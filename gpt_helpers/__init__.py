"""gpt_helpers: the reusable code of the course GPT from scratch (从零实现 GPT)."""

from .attention import KVCache, LayerKVCache, MultiHeadAttention
from .block import TransformerBlock
from .config import GPT2_PRESETS, GPTConfig
from .demo import ZEN_CONFIG, ZenRun, train_zen_model, zen_of_python
from .feed_forward import GELU, FeedForward
from .fused import optimize_for_inference, use_fused_kernels
from .generation import (
    apply_temperature,
    generate,
    generate_text_simple,
    stream_generate,
    top_k_filter,
    top_p_filter,
)
from .gqa import GroupedQueryAttention
from .hf_checkpoint import load_hf_checkpoint, load_hf_tokenizer, model_from_hf_config
from .interpret import attention_weights, logit_lens, token_labels
from .llama_qwen import LlamaQwenBlock, LlamaQwenConfig, LlamaQwenModel, llama_qwen_parameter_breakdown
from .model import GPTModel, count_parameters, model_size_mib, parameter_breakdown
from .normalization import LayerNorm
from .plotting import setup_plotting
from .rms_norm import RMSNorm
from .rope import Llama3RopeScaling, RoPE, apply_rope, llama3_scaled_frequencies, rope_frequencies, rotate_half
from .shortcut import ExampleDeepNeuralNetwork, layer_gradient_means
from .swiglu import SwiGLUFeedForward
from .tokenizer import END_OF_TEXT_ID, get_gpt2_tokenizer, text_to_token_ids, token_ids_to_text
from .training import (
    CONFIG_METADATA_KEY,
    TokenWindowDataset,
    calc_loss_batch,
    calc_loss_loader,
    create_dataloader,
    load_model,
    save_model,
    train_model,
)

__all__ = [
    "CONFIG_METADATA_KEY",
    "END_OF_TEXT_ID",
    "GELU",
    "GPT2_PRESETS",
    "ZEN_CONFIG",
    "ExampleDeepNeuralNetwork",
    "FeedForward",
    "GPTConfig",
    "GPTModel",
    "GroupedQueryAttention",
    "KVCache",
    "LayerKVCache",
    "LayerNorm",
    "Llama3RopeScaling",
    "LlamaQwenBlock",
    "LlamaQwenConfig",
    "LlamaQwenModel",
    "MultiHeadAttention",
    "RMSNorm",
    "RoPE",
    "SwiGLUFeedForward",
    "TokenWindowDataset",
    "TransformerBlock",
    "ZenRun",
    "apply_rope",
    "apply_temperature",
    "attention_weights",
    "calc_loss_batch",
    "calc_loss_loader",
    "count_parameters",
    "create_dataloader",
    "generate",
    "generate_text_simple",
    "get_gpt2_tokenizer",
    "layer_gradient_means",
    "llama3_scaled_frequencies",
    "llama_qwen_parameter_breakdown",
    "load_hf_checkpoint",
    "load_hf_tokenizer",
    "load_model",
    "logit_lens",
    "model_from_hf_config",
    "model_size_mib",
    "optimize_for_inference",
    "parameter_breakdown",
    "rope_frequencies",
    "rotate_half",
    "save_model",
    "setup_plotting",
    "stream_generate",
    "text_to_token_ids",
    "token_ids_to_text",
    "token_labels",
    "top_k_filter",
    "top_p_filter",
    "train_model",
    "train_zen_model",
    "use_fused_kernels",
    "zen_of_python",
]
