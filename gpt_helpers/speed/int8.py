"""Weight-only int8 quantization for decoding: one byte per weight plus one float scale per output row.

Decoding one token reads every weight once, so its speed is the read bandwidth divided by the weight
bytes. Storing each weight as int8 (with a float32 scale per output row) reads about a quarter of the
float32 bytes. The product runs in torch's int8-weight kernel with bfloat16 activations; autograd and
devices without that kernel use the dequantized float weight instead (same values, slower).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

from ..checkpoints.weights import read_safetensors, read_safetensors_metadata
from ..gpt2.config import GPTConfig
from ..gpt2.model import GPTModel

__all__ = [
    "quantize_per_row",
    "dequantize_per_row",
    "Int8Linear",
    "Int8Embedding",
    "quantize_int8_",
    "int8_weight_bytes",
    "save_int8_model",
    "load_int8_model",
]

INT8_METADATA_KEY = "gpt_helpers.int8"


def quantize_per_row(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric absmax int8 per output row: weight (out, in) ~ q (out, in) int8 * scale (out, 1)."""
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or not weight.is_floating_point():
        got = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"quantize_per_row expects a 2-D float weight (out, in), got {got}")
    if weight.is_meta:  # shapes only (a model built on the meta device): no values to quantize
        return torch.empty(weight.shape, dtype=torch.int8, device="meta"), torch.empty(weight.shape[0], device="meta")
    if not torch.isfinite(weight).all():
        raise ValueError("the weight holds NaN or inf; an int8 scale cannot represent it: check the checkpoint")
    w = weight.detach().float()
    scale = w.abs().amax(dim=1) / 127  # (out,): the largest |w| of each row maps to 127
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row stays zero (q = 0)
    q = torch.round(w / safe[:, None]).clamp_(-127, 127).to(torch.int8)  # (out, in)
    return q, scale


def dequantize_per_row(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The float32 weight an int8 tensor and its row scales stand for: q * scale[:, None]."""
    return q.float() * scale[:, None]


def _has_int8_kernel(x: torch.Tensor, in_features: int) -> bool:
    # torch 2.13's CPU kernel crashed (segfault) here for several rows when in_features was not a multiple
    # of 16 (e.g. 24 with 2 rows); multiples of 32 ran for every row count and shape tried
    return x.device.type == "cpu" and in_features % 32 == 0 and hasattr(torch, "_weight_int8pack_mm")


class Int8Linear(nn.Module):
    """nn.Linear for inference with an int8 weight (out, in) and a float32 scale per output row."""

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        self.out_features, self.in_features = qweight.shape
        self.register_buffer("qweight", qweight)  # (out, in) int8
        self.register_buffer("scale", scale.float())  # (out,)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self._scale_bf16, self._scale_key = None, None  # the scales in the kernel's dtype, and what they came from

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        """Quantize an nn.Linear's weight per row; the bias stays float32."""
        q, scale = quantize_per_row(linear.weight)
        return cls(q, scale, linear.bias)

    def dequantized_weight(self) -> torch.Tensor:
        """The float32 weight (out, in) this layer multiplies by."""
        return dequantize_per_row(self.qweight, self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Int8Linear expects inputs with {self.in_features} features, got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"Int8Linear expects float inputs, got {x.dtype}")
        if (torch.is_grad_enabled() and x.requires_grad) or not _has_int8_kernel(x, self.in_features):
            # autograd (e.g. gradients with respect to the input) or no int8 kernel: the dequantized float path
            return F.linear(
                x, self.dequantized_weight().to(x.dtype), None if self.bias is None else self.bias.to(x.dtype)
            )
        if self.qweight.data_ptr() % 64 or not self.qweight.is_contiguous():
            # the kernel reads the weight with aligned vector loads: a tensor read at an odd offset of a
            # file (safetensors stores tensors back to back) crashed the process, so copy it once
            self.qweight = self.qweight.contiguous().clone()
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16)  # (M, in): the kernel's activation dtype
        y = torch._weight_int8pack_mm(rows, self.qweight, self.kernel_scale()).to(x.dtype)  # (M, out)
        if self.bias is not None:
            y = y.add_(self.bias)
        return y.view(*x.shape[:-1], self.out_features)

    def kernel_scale(self) -> torch.Tensor:
        """The row scales in bfloat16, the dtype the int8 kernel takes; converted again whenever the scales change."""
        # keyed by where the scales are and their version (bumped by in-place writes such as load_state_dict),
        # so a cached copy never outlives the float32 scales it was made from
        key = (self.scale.data_ptr(), self.scale._version)
        if key != self._scale_key:
            self._scale_bf16, self._scale_key = self.scale.to(torch.bfloat16), key
        return self._scale_bf16

    def train(self, mode: bool = True) -> Int8Linear:
        """Refuse training mode: the float weights are gone (eval() still works)."""
        if mode:
            raise RuntimeError(
                "this model's weights are int8 (quantize_int8_): it cannot be trained; "
                "load the float32 weights again to train"
            )
        return super().train(False)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Int8Embedding(nn.Module):
    """Embedding lookup from int8 rows and their scales; shares the buffers of a tied Int8Linear head."""

    def __init__(self, head: Int8Linear):
        super().__init__()
        self.head = [head]  # a list, so the head is not registered twice as a submodule
        self.num_embeddings, self.embedding_dim = head.qweight.shape

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized float32 table (vocab, emb_dim); built on each access, for inspection only."""
        return self.head[0].dequantized_weight()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        head = self.head[0]
        return head.qweight[ids].float() * head.scale[ids].unsqueeze(-1)  # (..., emb_dim): only the rows looked up


def _linear_twin(module: nn.Module) -> Int8Linear | None:
    return Int8Linear.from_linear(module) if type(module) is nn.Linear else None


def quantize_int8_(model: nn.Module) -> nn.Module:
    """Replace every nn.Linear of model (in place) by an Int8Linear; a tied token embedding shares the head's int8.

    Works for GPTModel and LlamaQwenModel (any model whose linear layers are plain nn.Linear). The float
    weights are dropped: the model is for inference only afterwards (train() raises a clear error).
    """
    if any(isinstance(m, Int8Linear) for m in model.modules()):
        raise ValueError("the model is already quantized to int8; quantize the float32 model once")
    if any(isinstance(m, nn.Linear) and type(m) is not nn.Linear for m in model.modules()):
        raise ValueError(
            "the model's linear layers were already changed (e.g. by optimize_for_inference); quantize the float "
            "model first, or call optimize_for_inference(model, weights='int8') on it"
        )
    tied = (
        isinstance(getattr(model, "tok_emb", None), nn.Embedding)
        and isinstance(getattr(model, "out_head", None), nn.Linear)
        and model.out_head.weight is model.tok_emb.weight
    )
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            twin = _linear_twin(child)
            if twin is not None:
                setattr(parent, name, twin)
    if tied:
        model.tok_emb = Int8Embedding(model.out_head)  # one int8 copy serves the lookup and the head
    return model.eval()


def int8_weight_bytes(model: nn.Module) -> int:
    """Bytes of every distinct parameter and buffer of model (int8 weights count one byte each)."""
    seen, total = set(), 0
    for t in [*model.parameters(), *model.buffers()]:
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def save_int8_model(model: nn.Module, path: str | Path) -> Path:
    """Write a GPTModel quantized by quantize_int8_ (int8 weights, scales, float rest, config) to .safetensors."""
    path = Path(path)
    if not isinstance(model, GPTModel) or not any(isinstance(m, Int8Linear) for m in model.modules()):
        raise TypeError("save_int8_model expects a GPTModel quantized with quantize_int8_; use save_model otherwise")
    if path.suffix != ".safetensors":
        raise ValueError(f"name the file *.safetensors (e.g. model-int8.safetensors), got {path.name!r}")
    # clone: after optimize_for_inference the Q/K/V tensors are views of one buffer, which safetensors refuses
    tensors = {name: t.detach().cpu().clone() for name, t in model.state_dict().items()}
    metadata = {INT8_METADATA_KEY: json.dumps(dataclasses.asdict(model.cfg), sort_keys=True)}
    save_file(tensors, path, metadata=metadata)
    return path


def load_int8_model(path: str | Path) -> nn.Module:
    """Rebuild a GPTModel written by save_int8_model: no float32 copy is made, the int8 tensors load as they are."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; pass the path of a file written by save_int8_model()")
    metadata = read_safetensors_metadata(path)
    if INT8_METADATA_KEY not in metadata:
        raise ValueError(f"{path.name} was not written by save_int8_model (no {INT8_METADATA_KEY!r} metadata)")
    cfg = GPTConfig(**json.loads(metadata[INT8_METADATA_KEY]))
    tensors = read_safetensors(path)
    with torch.device("meta"):
        model = GPTModel(cfg)
    quantize_int8_(model)
    missing, unexpected = model.load_state_dict(tensors, strict=False, assign=True)
    if missing or unexpected:
        raise ValueError(f"{path.name} does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model
