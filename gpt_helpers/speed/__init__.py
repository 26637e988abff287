"""Speed-ups outside the taught modules: same parameters, same outputs (notebook 07, section 6)."""

from .fused import (
    FusedBlock,
    FusedGELU,
    FusedLayerNorm,
    Int8FusedBlock,
    SplitLinear,
    column_major_,
    optimize_for_inference,
    stack_int8_qkv_,
    stack_qkv_,
    use_fused_kernels,
)
from .int8 import (
    Int8Embedding,
    Int8Linear,
    dequantize_per_row,
    int8_weight_bytes,
    load_int8_model,
    quantize_int8_,
    quantize_per_row,
    save_int8_model,
)

__all__ = [
    "FusedLayerNorm",
    "FusedGELU",
    "SplitLinear",
    "FusedBlock",
    "Int8FusedBlock",
    "column_major_",
    "stack_qkv_",
    "stack_int8_qkv_",
    "use_fused_kernels",
    "optimize_for_inference",
    "quantize_per_row",
    "dequantize_per_row",
    "Int8Linear",
    "Int8Embedding",
    "quantize_int8_",
    "int8_weight_bytes",
    "save_int8_model",
    "load_int8_model",
]
