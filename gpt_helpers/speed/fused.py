"""Inference speed-ups: fused kernels, thread-split matrix-vector products and a lean one-token decoding step."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..gpt2.attention import LayerKVCache, MultiHeadAttention
from ..gpt2.block import TransformerBlock
from ..gpt2.feed_forward import GELU
from ..gpt2.normalization import LayerNorm
from .int8 import Int8Linear, quantize_int8_

__all__ = [
    "FusedLayerNorm",
    "FusedGELU",
    "SplitLinear",
    "FusedBlock",
    "Int8FusedBlock",
    "stack_int8_qkv_",
    "column_major_",
    "stack_qkv_",
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
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module (e.g. a GPTModel), got {type(model).__name__}")
    _replace_modules(model, _fused_twin)
    return model


def _rows_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, parts: int) -> torch.Tensor:
    """x (M, in) @ weight.T + bias -> (M, out); with M <= 16 rows and a column-major weight, one slab per thread."""
    rows, d_in = x.shape
    d_out = weight.shape[0]
    # column-major: W^T (in, out) is contiguous, so it cuts into `parts` slabs of in/parts whole rows
    if (
        weight.stride() == (1, d_out)
        and 2 <= parts
        and d_in % parts == 0
        and rows <= SplitLinear.max_rows
        and d_in * d_out * weight.element_size() >= SplitLinear.min_bytes
    ):
        if x.device.type == "cpu":  # the slabs are for CPU threads
            k = d_in // parts
            # (P, M, k): slab p of every row; for one row that is just a view
            x_parts = x.reshape(parts, 1, k) if rows == 1 else x.reshape(rows, parts, k).transpose(0, 1)
            w_parts = weight.as_strided((parts, k, d_out), (k * d_out, d_out, 1))  # (P, k, out): slab p of W^T
            y = torch.bmm(x_parts, w_parts).sum(0)  # (P, M, out) -> (M, out)
            return y if bias is None else y.add_(bias)
    return F.linear(x, weight, bias)


class SplitLinear(nn.Linear):
    """nn.Linear that, for a few input rows, splits the product over the input features, one slab per thread.

    Decoding one token multiplies a single row by every weight matrix: the time goes into reading
    the weights from memory, and one matrix-vector product runs on one core. Stored column-major,
    W^T (in, out) cuts into `parts` contiguous slabs of in/parts rows; torch.bmm runs one slab per
    thread and the partial sums are added. More rows (prefill, training) and weights smaller than
    min_bytes go to F.linear as usual.
    """

    max_rows = 16  # above this, a matrix-matrix product keeps every core busy on its own
    min_bytes = 4 * 2**20  # smaller weights: the split's extra ~6 us per product outweighs what it saves

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            return F.linear(x, self.weight, self.bias)  # F.linear reports the shape mismatch
        y = _rows_linear(x.reshape(-1, self.in_features), self.weight, self.bias, torch.get_num_threads())
        return y.view(*x.shape[:-1], self.out_features)


def column_major_(weight: nn.Parameter) -> None:
    """Store a 2-D weight (out, in) column-major in place: same Parameter, values and shape; W^T contiguous."""
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"column_major_ expects a weight tensor (e.g. linear.weight), got {type(weight).__name__}")
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


def stack_qkv_(att: MultiHeadAttention) -> None:
    """Store W_query, W_key, W_value (in place: same Parameters, values, shapes) side by side in one buffer.

    The buffer is [W_q^T | W_k^T | W_v^T], shape (d_in, 3 d_out), row-major; each weight is a view into
    it (column-major, rows of W^T 3 d_out apart), and the biases share one (3 d_out,) buffer the same way.
    Nothing is stored twice: the one buffer *is* the three weights, multiplied in one product.
    """
    if not isinstance(att, MultiHeadAttention):
        raise TypeError(
            f"stack_qkv_ expects a MultiHeadAttention (e.g. model.trf_blocks[0].att), got {type(att).__name__}"
        )
    if _stacked_qkv(att) is not None:
        return  # already stacked
    linears = (att.W_query, att.W_key, att.W_value)
    w = linears[0].weight
    d_out, d_in = w.shape
    buffer = torch.empty(d_in, 3 * d_out, dtype=w.dtype, device=w.device)  # (in, 3 out)
    with torch.no_grad():
        for i, lin in enumerate(linears):
            block = buffer[:, i * d_out : (i + 1) * d_out]  # (in, out), rows 3 out apart
            block.copy_(lin.weight.t())
            lin.weight.data = block.t()  # the same Parameter, now a view (out, in) into the buffer
        if all(lin.bias is not None for lin in linears):
            biases = torch.cat([lin.bias for lin in linears])  # (3 out,): one new buffer
            for i, lin in enumerate(linears):
                lin.bias.data = biases[i * d_out : (i + 1) * d_out]


def _back_to_back(tensors, stride, step: int | None = None) -> bool:
    """True if the tensors have one shape, this stride, and start `step` bytes apart in one storage.

    The default step, shape[0] elements, fits views side by side in a column-major buffer (stack_qkv_).
    """
    first = tensors[0]
    if step is None:
        step = first.shape[0] * first.element_size()  # bytes from one tensor's first element to the next one's
    return all(
        t.shape == first.shape
        and t.stride() == stride
        and t.dtype == first.dtype
        and t.untyped_storage().data_ptr() == first.untyped_storage().data_ptr()
        and t.data_ptr() == first.data_ptr() + i * step
        for i, t in enumerate(tensors)
    )


def _stacked_qkv(att: MultiHeadAttention) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """(weight (3 d_out, d_in), bias (3 d_out,) or None) viewing the buffers of stack_qkv_; None if not stacked."""
    weights = [att.W_query.weight, att.W_key.weight, att.W_value.weight]
    biases = [att.W_query.bias, att.W_key.bias, att.W_value.bias]
    d_out, d_in = weights[0].shape
    if not _back_to_back(weights, (1, 3 * d_out)):  # column-major, rows of W^T 3 d_out apart
        return None
    weight = weights[0].as_strided((3 * d_out, d_in), (1, 3 * d_out))
    if all(b is None for b in biases):
        return weight, None
    if any(b is None for b in biases) or not _back_to_back(biases, (1,)):
        return None
    return weight, biases[0].as_strided((3 * d_out,), (1,))


class FusedBlock(TransformerBlock):
    """TransformerBlock (same submodules and parameters) with a lean path for one new token after a KV cache.

    Generating with a cache feeds one token per step; the taught forward then spends much of each
    step in small operations and Python between them rather than in reading the weights. The lean
    path computes the same: one LayerNorm kernel, one product for Q, K and V together (their weights
    share one buffer, see stack_qkv_), a copy into the cache, one attention kernel, the output
    projection with the shortcut added in place, LayerNorm, the two FFN products and GELU. Anything
    else (prefill, no cache, training, autograd on, a full cache) runs the taught forward.
    """

    def __init__(self, block: TransformerBlock):
        if not isinstance(block, TransformerBlock):
            raise TypeError(f"FusedBlock wraps a TransformerBlock, got {type(block).__name__}")
        nn.Module.__init__(self)  # the submodules come from block (shared), not from a config
        for name, child in block.named_children():
            self.add_module(name, child)
        self.train(block.training)
        self._checked_layout = None  # where the Q/K/V tensors were when their stacking was last checked

    def forward(self, x: torch.Tensor, kv_cache: LayerKVCache | None = None) -> torch.Tensor:
        if (
            kv_cache is not None
            and x.shape[1] == 1
            and not self.training
            and not torch.is_grad_enabled()
            and type(kv_cache) is LayerKVCache
            and kv_cache.length < kv_cache.capacity
            and kv_cache.keys.shape[0] == x.shape[0]
        ):
            y = self._decode_step(x, kv_cache)
            if y is not None:
                return y
        return super().forward(x, kv_cache=kv_cache)  # also raises the cache's own errors

    def _decode_step(self, x: torch.Tensor, cache: LayerKVCache) -> torch.Tensor | None:
        """One new token per sequence, x (B, 1, C), after cache; None if Q/K/V no longer share one buffer."""
        # Parameters straight from nn.Module's dicts: the very objects that self.att.W_query.weight etc.
        # return, minus one Python-level Module.__getattr__ per name (~30 per block, ~1 us each)
        mods = self._modules
        att = mods["att"]
        q_p, k_p, v_p, o_p = (att._modules[n]._parameters for n in ("W_query", "W_key", "W_value", "out_proj"))
        fc1_p, _, fc2_p = (m._parameters for m in mods["ff"]._modules["layers"]._modules.values())
        norm1, norm2 = mods["norm1"], mods["norm2"]
        qkv_tensors = (q_p["weight"], k_p["weight"], v_p["weight"], q_p["bias"], k_p["bias"], v_p["bias"])
        where = tuple((t.data_ptr(), t.stride()) if t is not None else None for t in qkv_tensors)
        if where != self._checked_layout:  # something moved (or first call): check the stacking again
            self._checked_layout = where if _stacked_qkv(att) is not None else None
            if self._checked_layout is None:
                return None  # e.g. after .to(dtype), load_state_dict(assign=True) or a deepcopy
        w_q, b_q = qkv_tensors[0], qkv_tensors[3]
        d_out, d_in = w_q.shape
        w_qkv = w_q.as_strided((3 * d_out, d_in), (1, 3 * d_out))  # [W_q^T | W_k^T | W_v^T], as checked
        b_qkv = None if b_q is None else b_q.as_strided((3 * d_out,), (1,))

        parts = torch.get_num_threads()
        return _lean_step(
            x,
            cache,
            att,
            norm1,
            norm2,
            lambda h: _rows_linear(h, w_qkv, b_qkv, parts),
            lambda h: _rows_linear(h, o_p["weight"], o_p["bias"], parts),
            lambda h: _rows_linear(h, fc1_p["weight"], fc1_p["bias"], parts),
            lambda h: _rows_linear(h, fc2_p["weight"], fc2_p["bias"], parts),
        )


def _lean_step(x, cache: LayerKVCache, att, norm1, norm2, qkv_product, out_product, fc1_product, fc2_product):
    """The one-token cached step of a GPT-2 block, x (B, 1, C) -> (B, 1, C), with the four products given.

    Each product maps rows (M, in) to (M, out) with its bias added: float32 (FusedBlock) or int8 weights
    (Int8FusedBlock); everything between them is the same.
    """
    b, _, c = x.shape  # (B, 1, C)
    x = x.reshape(b, c)  # one row per sequence: (B, C)
    h = F.layer_norm(x, (c,), norm1._parameters["scale"], norm1._parameters["shift"], norm1.eps)
    qkv = qkv_product(h)  # (B, 3 d_out): queries, keys, values side by side
    q, k, v = qkv.view(b, 3, att.num_heads, 1, att.head_dim).unbind(1)  # each (B, H, 1, hd)
    pos = cache.length
    cache.keys.narrow(2, pos, 1).copy_(k)  # into the preallocated buffers, as LayerKVCache.append does
    cache.values.narrow(2, pos, 1).copy_(v)
    cache.length = pos + 1
    # one query, the last position: it may see every cached position, no mask needed
    ctx = F.scaled_dot_product_attention(q, cache.keys.narrow(2, 0, pos + 1), cache.values.narrow(2, 0, pos + 1))
    x = out_product(ctx.reshape(b, att.num_heads * att.head_dim)).add_(x)  # + shortcut
    h = F.layer_norm(x, (c,), norm2._parameters["scale"], norm2._parameters["shift"], norm2.eps)
    h = F.gelu(fc1_product(h), approximate="tanh")  # (B, 4C)
    x = fc2_product(h).add_(x)  # + shortcut
    return x.view(b, 1, c)


def _block_twin(module: nn.Module) -> FusedBlock | None:
    """A FusedBlock sharing a taught TransformerBlock's submodules, once they are the fused ones; None otherwise."""
    if type(module) is not TransformerBlock or type(module.att) is not MultiHeadAttention:
        return None
    kinds = [type(m) for m in module.ff.layers]
    if kinds != [SplitLinear, FusedGELU, SplitLinear] or not type(module.norm1) is type(module.norm2) is FusedLayerNorm:
        return None  # the lean step computes exactly these modules; anything else keeps the taught forward
    return FusedBlock(module)


def _int8_qkv(att: MultiHeadAttention) -> tuple[Int8Linear, Int8Linear, Int8Linear] | None:
    """The three Int8Linear layers of an attention if they can share one int8 buffer, else None."""
    linears = (att.W_query, att.W_key, att.W_value)
    if not all(type(lin) is Int8Linear for lin in linears):
        return None
    shape, has_bias = linears[0].qweight.shape, linears[0].bias is not None
    if any(lin.qweight.shape != shape or (lin.bias is not None) != has_bias for lin in linears):
        return None
    if (shape[0] * shape[1]) % 64:
        return None  # the second and third weights would start at offsets the kernel cannot read aligned
    return linears


def _stacked_int8_qkv(att: MultiHeadAttention) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
    """(qweight (3 d_out, d_in), scale (3 d_out,), bias or None): views of stack_int8_qkv_'s buffers, else None."""
    linears = _int8_qkv(att)
    if linears is None:
        return None
    d_out, d_in = linears[0].qweight.shape
    names = ("qweight", "scale") + (("bias",) if linears[0].bias is not None else ())
    stacked = []
    for name in names:
        parts = [lin._buffers[name] for lin in linears]
        first = parts[0]
        # stacked row-major: each part is whole, the next one starts right after it
        if not first.is_contiguous() or not _back_to_back(parts, first.stride(), first.numel() * first.element_size()):
            return None
        stacked.append(first.as_strided((3 * d_out, d_in) if name == "qweight" else (3 * d_out,), first.stride()))
    return stacked[0], stacked[1], stacked[2] if len(stacked) == 3 else None


def stack_int8_qkv_(att: MultiHeadAttention) -> None:
    """Store the int8 W_query, W_key, W_value one after another in one (3 d_out, d_in) buffer, in place.

    Each layer's qweight, scale and bias become views (same values and shapes) into one buffer, so the
    decoding step multiplies by all three in one int8 product. Layers that cannot share (other shapes,
    not int8) are left as they are.
    """
    if not isinstance(att, MultiHeadAttention):
        raise TypeError(
            f"stack_int8_qkv_ expects a MultiHeadAttention (e.g. model.trf_blocks[0].att), got {type(att).__name__}"
        )
    linears = _int8_qkv(att)
    if linears is None or _stacked_int8_qkv(att) is not None:
        return  # nothing to stack, or stacked already
    d_out = linears[0].out_features
    names = ("qweight", "scale") + (("bias",) if linears[0].bias is not None else ())
    for name in names:
        buffer = torch.cat([lin._buffers[name] for lin in linears])  # (3 d_out, ...): one new, aligned buffer
        for i, lin in enumerate(linears):
            setattr(lin, name, buffer[i * d_out : (i + 1) * d_out])  # the same values, now a view


def _int8_rows(x: torch.Tensor, qweight: torch.Tensor, scale_bf16: torch.Tensor, bias: torch.Tensor | None):
    """x (M, in) float32 @ dequantized qweight.T + bias -> (M, out) float32, as Int8Linear computes it."""
    y = torch._weight_int8pack_mm(x.to(torch.bfloat16), qweight, scale_bf16).float()
    return y if bias is None else y.add_(bias)


class Int8FusedBlock(FusedBlock):
    """FusedBlock for int8 weights (quantize_int8_): a lean one-token step with one int8 product for Q, K and V.

    The step computes what the block's Int8Linear layers compute (bfloat16 activations into the int8
    kernel, float32 out, bias added), without the per-layer checks and module calls; Q, K and V come from
    one product because stack_int8_qkv_ put their weights in one buffer. Anything else runs the taught forward.
    """

    def _decode_step(self, x: torch.Tensor, cache: LayerKVCache) -> torch.Tensor | None:
        """One new token per sequence, x (B, 1, C), after cache; None where the lean step does not apply."""
        if x.device.type != "cpu" or x.dtype != torch.float32:
            return None
        mods = self._modules
        att = mods["att"]
        lin_q, lin_k, lin_v, lin_o = (att._modules[n] for n in ("W_query", "W_key", "W_value", "out_proj"))
        fc1, _, fc2 = mods["ff"]._modules["layers"]._modules.values()
        norm1, norm2 = mods["norm1"], mods["norm2"]
        qkv_buffers = [lin._buffers[n] for lin in (lin_q, lin_k, lin_v) for n in ("qweight", "scale", "bias")]
        where = tuple(None if t is None else (t.data_ptr(), t._version) for t in qkv_buffers)
        if where != self._checked_layout:  # first call, or a Q/K/V tensor moved or changed: check again
            stacked = _stacked_int8_qkv(att)
            if stacked is None:
                self._checked_layout = None
                return None  # e.g. after load_state_dict(assign=True): the taught forward still works
            self._qkv = (stacked[0], stacked[1].to(torch.bfloat16), stacked[2])
            self._checked_layout = where
        w_qkv, s_qkv, b_qkv = self._qkv
        o, f1, f2 = lin_o._buffers, fc1._buffers, fc2._buffers  # qweight, scale, bias of each
        s_o, s_f1, s_f2 = lin_o.kernel_scale(), fc1.kernel_scale(), fc2.kernel_scale()
        return _lean_step(
            x,
            cache,
            att,
            norm1,
            norm2,
            lambda h: _int8_rows(h, w_qkv, s_qkv, b_qkv),
            lambda h: _int8_rows(h, o["qweight"], s_o, o["bias"]),
            lambda h: _int8_rows(h, f1["qweight"], s_f1, f1["bias"]),
            lambda h: _int8_rows(h, f2["qweight"], s_f2, f2["bias"]),
        )


def _int8_block_twin(module: nn.Module) -> Int8FusedBlock | None:
    """An Int8FusedBlock sharing a quantized TransformerBlock's submodules; None where the lean step cannot run."""
    if type(module) is not TransformerBlock or type(module.att) is not MultiHeadAttention:
        return None
    if not hasattr(torch, "_weight_int8pack_mm"):
        return None  # a torch without the int8 kernel: Int8Linear's dequantized path
    linears = [module.att.W_query, module.att.W_key, module.att.W_value, module.att.out_proj]
    linears += [module.ff.layers[0], module.ff.layers[2]]
    if [type(m) for m in module.ff.layers] != [Int8Linear, FusedGELU, Int8Linear] or not all(
        type(m) is Int8Linear and m.in_features % 32 == 0 for m in linears
    ):
        return None
    if not type(module.norm1) is type(module.norm2) is FusedLayerNorm or _stacked_int8_qkv(module.att) is None:
        return None
    return Int8FusedBlock(module)


def optimize_for_inference(model: nn.Module, weights: str = "float32") -> nn.Module:
    """Make model fast at generation (in place, same parameters and outputs); returns it in eval mode.

    Fused LayerNorm/GELU kernels (use_fused_kernels); every nn.Linear becomes a SplitLinear with its
    weight column-major (a tied output head shares that layout with the token embedding); in every
    attention W_query, W_key and W_value then share one buffer (stack_qkv_); every TransformerBlock
    becomes a FusedBlock, whose one-token decoding step is lean. weights="int8" instead stores every
    linear layer's weight (and a tied embedding, once) as int8 per output row (quantize_int8_): about a
    quarter of the bytes to read per token, outputs within int8 rounding, inference only.
    """
    if weights not in ("float32", "int8"):
        raise ValueError(f"weights must be 'float32' or 'int8', got {weights!r}")
    use_fused_kernels(model)
    if weights == "int8":
        quantize_int8_(model)
        for module in model.modules():
            if type(module) is MultiHeadAttention:
                stack_int8_qkv_(module)
        _replace_modules(model, _int8_block_twin)
        return model.eval()
    _replace_modules(model, _split_twin)
    for module in model.modules():
        if type(module) is MultiHeadAttention:
            stack_qkv_(module)
    _replace_modules(model, _block_twin)
    return model.eval()
