"""gpt_helpers: the reusable code of the course GPT from scratch (从零实现 GPT)."""

from .attention import KVCache, LayerKVCache, MultiHeadAttention
from .block import TransformerBlock
from .config import GPT2_PRESETS, GPTConfig
from .feed_forward import GELU, FeedForward
from .generation import (
    apply_temperature,
    generate,
    generate_text_simple,
    stream_generate,
    top_k_filter,
    top_p_filter,
)
from .model import GPTModel, count_parameters, model_size_mb, parameter_breakdown
from .normalization import LayerNorm
from .plotting import setup_plotting
from .shortcut import ExampleDeepNeuralNetwork, layer_gradient_means
from .tokenizer import END_OF_TEXT_ID, get_gpt2_tokenizer, text_to_token_ids, token_ids_to_text

__all__ = [
    "END_OF_TEXT_ID",
    "GELU",
    "GPT2_PRESETS",
    "ExampleDeepNeuralNetwork",
    "FeedForward",
    "GPTConfig",
    "GPTModel",
    "KVCache",
    "LayerKVCache",
    "LayerNorm",
    "MultiHeadAttention",
    "TransformerBlock",
    "apply_temperature",
    "count_parameters",
    "generate",
    "generate_text_simple",
    "get_gpt2_tokenizer",
    "layer_gradient_means",
    "model_size_mb",
    "parameter_breakdown",
    "setup_plotting",
    "stream_generate",
    "text_to_token_ids",
    "token_ids_to_text",
    "top_k_filter",
    "top_p_filter",
]
