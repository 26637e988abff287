"""gpt_helpers: the reusable code of the course GPT from scratch (从零实现 GPT).

The subpackages follow the course: gpt2 (part 1, notebooks 01-05), text and training (part 2,
06-08), families and inside (part 3, 09-10), checkpoints (reading files), speed (optimize_for_inference).
Every public name is importable from gpt_helpers itself.
"""

import sys as _sys

from . import checkpoints, families, gpt2, inside, speed, text, training
from .checkpoints.hf import load_hf_checkpoint, load_hf_tokenizer, model_from_hf_config
from .checkpoints.weights import (
    download_gpt2_safetensors,
    load_book_model,
    load_gpt2_safetensors,
    read_pth_state_dict,
    read_safetensors,
)
from .families.gqa import GroupedQueryAttention
from .families.llama_qwen import LlamaQwenBlock, LlamaQwenConfig, LlamaQwenModel, llama_qwen_parameter_breakdown
from .families.rms_norm import RMSNorm
from .families.rope import Llama3RopeScaling, RoPE, apply_rope, llama3_scaled_frequencies, rope_frequencies, rotate_half
from .families.swiglu import SwiGLUFeedForward
from .gpt2.attention import KVCache, LayerKVCache, MultiHeadAttention
from .gpt2.block import TransformerBlock
from .gpt2.config import GPT2_PRESETS, GPTConfig
from .gpt2.feed_forward import GELU, FeedForward
from .gpt2.model import GPTModel, count_parameters, model_size_mib, parameter_breakdown
from .gpt2.normalization import LayerNorm
from .gpt2.shortcut import ExampleDeepNeuralNetwork, layer_gradient_means
from .inside.interpret import attention_weights, logit_lens, token_labels
from .plotting import setup_plotting
from .speed.fused import optimize_for_inference, use_fused_kernels
from .speed.int8 import Int8Embedding, Int8Linear, load_int8_model, quantize_int8_, save_int8_model
from .text.generation import (
    apply_temperature,
    generate,
    generate_text_simple,
    stream_generate,
    top_k_filter,
    top_p_filter,
)
from .text.tokenizer import END_OF_TEXT_ID, get_gpt2_tokenizer, text_to_token_ids, token_ids_to_text
from .training.loop import (
    CONFIG_METADATA_KEY,
    TokenWindowDataset,
    calc_loss_batch,
    calc_loss_loader,
    create_dataloader,
    load_model,
    save_model,
    train_model,
)
from .training.zen import ZEN_CONFIG, ZenRun, train_zen_model, zen_of_python

# The modules used to sit side by side in gpt_helpers/ (up to 2026-12); old imports such as
# `from gpt_helpers.weights import load_gpt2_safetensors` keep working through these aliases.
_OLD_MODULE_PATHS = {
    "attention": gpt2.attention,
    "block": gpt2.block,
    "config": gpt2.config,
    "demo": training.zen,
    "feed_forward": gpt2.feed_forward,
    "fused": speed.fused,
    "generation": text.generation,
    "gqa": families.gqa,
    "hf_checkpoint": checkpoints.hf,
    "interpret": inside.interpret,
    "llama_qwen": families.llama_qwen,
    "model": gpt2.model,
    "normalization": gpt2.normalization,
    "rms_norm": families.rms_norm,
    "rope": families.rope,
    "shortcut": gpt2.shortcut,
    "swiglu": families.swiglu,
    "tokenizer": text.tokenizer,
    "weights": checkpoints.weights,
}
for _old, _module in _OLD_MODULE_PATHS.items():
    _sys.modules[f"{__name__}.{_old}"] = _module
    globals()[_old] = _module

__all__ = [
    "Int8Embedding",
    "Int8Linear",
    "load_int8_model",
    "quantize_int8_",
    "save_int8_model",
    "CONFIG_METADATA_KEY",
    "END_OF_TEXT_ID",
    "ExampleDeepNeuralNetwork",
    "FeedForward",
    "GELU",
    "GPT2_PRESETS",
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
    "ZEN_CONFIG",
    "ZenRun",
    "apply_rope",
    "apply_temperature",
    "attention_weights",
    "calc_loss_batch",
    "calc_loss_loader",
    "count_parameters",
    "create_dataloader",
    "download_gpt2_safetensors",
    "generate",
    "generate_text_simple",
    "get_gpt2_tokenizer",
    "layer_gradient_means",
    "llama3_scaled_frequencies",
    "llama_qwen_parameter_breakdown",
    "load_book_model",
    "load_gpt2_safetensors",
    "load_hf_checkpoint",
    "load_hf_tokenizer",
    "load_model",
    "logit_lens",
    "model_from_hf_config",
    "model_size_mib",
    "optimize_for_inference",
    "parameter_breakdown",
    "read_pth_state_dict",
    "read_safetensors",
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
