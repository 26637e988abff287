"""Inference speed-ups: fused LayerNorm/GELU kernels and a matrix-vector product split across threads."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .feed_forward import GELU
from .normalization import LayerNorm

__all__ = [
    "FusedLayerNorm",
    "FusedGELU",
    "SplitLinear",
    "column_major_",
    "use_fused_kernels",
    "optimize_for_inference",
]


class FusedLayerNorm(LayerNorm):
    """LayerNorm computed by torch's single fused kernel; same parameters, same result."""

    def forward(self, x):
        # one pass over x instead of the ~6 elementwise passes of the written-out formula
        return F.layer_norm(x, self.scale.shape, self.scale, self.shift, self.eps)


class FusedGELU(GELU):
    """The same tanh-approximated GELU, as one fused kernel."""

    def forward(self, x):
        return F.gelu(x, approximate="tanh")


def _replace_modules(model: nn.Module, replace) -> None:
    """Swap every submodule m for replace(m) where that returns a module (None keeps m)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            new = replace(child)
            if new is not None:
                setattr(parent, name, new)


def _fused_twin(module: nn.Module) -> nn.Module | None:
    """The fused version of a taught LayerNorm or GELU, sharing its parameters; None for anything else."""
    if type(module) is LayerNorm:
        fused = FusedLayerNorm(module.scale.shape[0], eps=module.eps)
        fused.scale, fused.shift = module.scale, module.shift  # share, don't copy
        return fused
    if type(module) is GELU:
        return FusedGELU()
    return None


def use_fused_kernels(model: nn.Module) -> nn.Module:
    """Replace every LayerNorm and GELU inside model (in place) by its fused twin; returns model.

    The parameters are shared, not copied, so loading or training afterwards still works.
    Notebooks 01 and 02 check that the formulas and the fused kernels agree.
    """
    _replace_modules(model, _fused_twin)
    return model


class SplitLinear(nn.Linear):
    """nn.Linear that, for a few input rows, splits the product over the input features, one slab per thread.

    Decoding one token multiplies a single row by every weight matrix: the time goes into reading
    the weights from memory, and one matrix-vector product runs on one core. Stored column-major,
    W^T (in, out) cuts into `parts` contiguous slabs of in/parts rows; torch.bmm runs one slab per
    thread and the partial sums are added. More rows (prefill, training) go to F.linear as usual.
    """

    max_rows = 16  # above this, a matrix-matrix product keeps every core busy on its own

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // self.in_features
        parts = torch.get_num_threads()
        w_t = self.weight.t()  # (in, out); contiguous once column_major_() has run
        can_split = (
            x.device.type == "cpu"  # the slabs are for CPU threads
            and x.shape[-1] == self.in_features  # otherwise F.linear reports the shape mismatch
            and 2 <= parts
            and self.in_features % parts == 0
            and rows <= self.max_rows
            and w_t.is_contiguous()
        )
        if not can_split:
            return F.linear(x, self.weight, self.bias)
        k = self.in_features // parts
        x_parts = x.reshape(rows, parts, k).transpose(0, 1)  # (P, M, k): slab p of every row
        y = torch.bmm(x_parts, w_t.view(parts, k, self.out_features)).sum(0)  # (P, M, out) -> (M, out)
        if self.bias is not None:
            y += self.bias
        return y.view(*x.shape[:-1], self.out_features)


def column_major_(weight: nn.Parameter) -> None:
    """Store a 2-D weight (out, in) column-major in place: same Parameter, values and shape; W^T contiguous."""
    if weight.dim() != 2:
        raise ValueError(f"column_major_ expects a 2-D weight, got shape {tuple(weight.shape)}")
    if not weight.t().is_contiguous():
        weight.data = weight.data.t().contiguous().t()  # x @ W^T then streams W^T row by row


def _split_twin(module: nn.Module) -> SplitLinear | None:
    """A SplitLinear sharing a plain nn.Linear's parameters, its weight made column-major; None otherwise."""
    if type(module) is not nn.Linear:
        return None
    fast = SplitLinear(module.in_features, module.out_features, bias=module.bias is not None, device="meta")
    fast.weight, fast.bias = module.weight, module.bias  # share, don't copy
    column_major_(fast.weight)
    return fast


def optimize_for_inference(model: nn.Module) -> nn.Module:
    """Make model fast at generation (in place, same parameters and outputs); returns it in eval mode.

    Fused LayerNorm/GELU kernels (use_fused_kernels), every nn.Linear as a SplitLinear, and
    its weight stored column-major (a tied output head shares that layout with the token embedding).
    """
    use_fused_kernels(model)
    _replace_modules(model, _split_twin)
    return model.eval()
