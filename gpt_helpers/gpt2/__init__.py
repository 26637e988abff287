"""Part 1, notebooks 01-05: the GPT-2 model, piece by piece (normalization to GPTModel)."""

from .attention import (
    KVCache,
    LayerKVCache,
    MultiHeadAttention,
)
from .block import (
    TransformerBlock,
)
from .config import (
    GPT2_PRESETS,
    PRESET_ALIASES,
    GPTConfig,
)
from .feed_forward import (
    GELU,
    FeedForward,
)
from .model import (
    GPTModel,
    check_token_ids,
    count_parameters,
    model_size_mib,
    parameter_breakdown,
)
from .normalization import (
    LayerNorm,
)
from .shortcut import (
    ExampleDeepNeuralNetwork,
    layer_gradient_means,
)

__all__ = [
    "GPTConfig",
    "GPT2_PRESETS",
    "PRESET_ALIASES",
    "LayerNorm",
    "GELU",
    "FeedForward",
    "ExampleDeepNeuralNetwork",
    "layer_gradient_means",
    "MultiHeadAttention",
    "LayerKVCache",
    "KVCache",
    "TransformerBlock",
    "GPTModel",
    "check_token_ids",
    "count_parameters",
    "parameter_breakdown",
    "model_size_mib",
]
