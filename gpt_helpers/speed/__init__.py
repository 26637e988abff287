"""Speed-ups outside the taught modules: same parameters, same outputs (notebook 07, section 6)."""

from .fused import (
    FusedBlock,
    FusedGELU,
    FusedLayerNorm,
    SplitLinear,
    column_major_,
    optimize_for_inference,
    stack_qkv_,
    use_fused_kernels,
)

__all__ = [
    "FusedLayerNorm",
    "FusedGELU",
    "SplitLinear",
    "FusedBlock",
    "column_major_",
    "stack_qkv_",
    "use_fused_kernels",
    "optimize_for_inference",
]
