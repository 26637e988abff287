"""Part 3, notebook 09 onwards: the pieces of today's open models (RMSNorm, RoPE, SwiGLU, GQA, Llama/Qwen3)."""

from .gqa import GroupedQueryAttention
from .llama_qwen import LlamaQwenBlock, LlamaQwenConfig, LlamaQwenModel, llama_qwen_parameter_breakdown
from .rms_norm import RMSNorm
from .rope import Llama3RopeScaling, RoPE, apply_rope, llama3_scaled_frequencies, rope_frequencies, rotate_half
from .swiglu import SwiGLUFeedForward

__all__ = [
    "RMSNorm",
    "Llama3RopeScaling",
    "rope_frequencies",
    "llama3_scaled_frequencies",
    "rotate_half",
    "apply_rope",
    "RoPE",
    "SwiGLUFeedForward",
    "GroupedQueryAttention",
    "LlamaQwenConfig",
    "LlamaQwenBlock",
    "LlamaQwenModel",
    "llama_qwen_parameter_breakdown",
]
