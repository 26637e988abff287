"""Looking inside a GPT: the attention weights of every head and the logit lens (notebook 10)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..gpt2.attention import MultiHeadAttention
from ..gpt2.model import check_token_ids
from ..text.tokenizer import get_gpt2_tokenizer

__all__ = ["attention_weights", "logit_lens", "token_labels"]


def _check_inputs(model: nn.Module, idx: torch.Tensor) -> None:
    """Clear errors for a model that is not a module and for token ids the model cannot take."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module such as a GPTModel, got {type(model).__name__}")
    cfg = getattr(model, "cfg", None)
    vocab_size = getattr(cfg, "vocab_size", None)
    context_length = getattr(cfg, "context_length", None)
    # the model's own check would do, but it runs inside the forward pass, after the hooks are on
    if isinstance(idx, torch.Tensor) and idx.dim() == 2 and idx.shape[0] == 0:
        raise ValueError("idx holds no sequence (batch size 0); give at least one, e.g. shape (1, seq_len)")
    check_token_ids(idx, vocab_size if vocab_size is not None else math.inf)
    if idx.dtype not in (torch.long, torch.int):
        raise TypeError(f"token ids must be torch.long (or torch.int), got dtype {idx.dtype}; use ids.long()")
    if context_length is not None and idx.shape[1] > context_length:
        raise ValueError(
            f"idx has {idx.shape[1]} tokens, more than the model's context_length={context_length}; "
            f"look at the last {context_length} only: idx[:, -{context_length}:]"
        )


@contextmanager
def _temporary_hooks(model: nn.Module, hooks: list[tuple[nn.Module, str, Callable]]) -> Iterator[None]:
    """Put the model in eval mode with the given hooks on; afterwards remove them and restore every mode."""
    modes = [(module, module.training) for module in model.modules()]
    handles = []
    try:
        model.eval()  # no dropout: we look at what the model computes at inference
        for module, kind, hook in hooks:
            if kind == "pre":
                handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
            else:
                handles.append(module.register_forward_hook(hook, with_kwargs=True))
        with torch.no_grad():
            yield
    finally:  # also when the forward pass raises: the model is left exactly as it was
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training


def _first_input(args: tuple, kwargs: dict) -> torch.Tensor:
    """The tensor a block or an attention module was called with: x, by position or by name."""
    return args[0] if args else kwargs["x"]


def attention_weights(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
    """Softmax attention probabilities of every head: (n_layers, B, n_heads, T, T), rows sum to 1."""
    _check_inputs(model, idx)
    modules = [m for m in model.modules() if type(m) is MultiHeadAttention]
    if not modules:
        raise TypeError(
            f"{type(model).__name__} has no gpt_helpers.MultiHeadAttention module, so there are no course "
            "attention heads to read; attention_weights works for GPTModel and models built from its attention"
        )
    found = []  # one (B, H, T, T) tensor per attention module, in the order the forward pass runs them

    def record(module: MultiHeadAttention, args: tuple, kwargs: dict, output: torch.Tensor) -> None:
        x = _first_input(args, kwargs)  # (B, T, d_in): what the module attended over
        b, t, _ = x.shape
        # the module's own projections, split into heads like its forward: (B, H, T, head_dim)
        q = module.W_query(x).view(b, t, module.num_heads, module.head_dim).transpose(1, 2)
        k = module.W_key(x).view(b, t, module.num_heads, module.head_dim).transpose(1, 2)
        scores = q.float() @ k.float().transpose(2, 3) / math.sqrt(module.head_dim)  # (B, H, T, T)
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(diagonal=1)
        scores = scores.masked_fill(future, float("-inf"))  # causal mask: exp(-inf) = 0 exactly
        found.append(torch.softmax(scores, dim=-1))

    with _temporary_hooks(model, [(m, "post", record) for m in modules]):
        model(idx)
    if len(found) != len(modules):
        raise RuntimeError(
            f"{len(modules)} attention modules but {len(found)} calls in one forward pass; "
            "attention_weights expects every attention module to run exactly once"
        )
    return torch.stack(found)  # (n_layers, B, H, T, T)


def logit_lens(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
    """Residual stream after the embeddings and after each block, through the final norm and output head.

    Returns (n_layers + 1, B, T, vocab_size); entry 0 reads the embeddings, entry i the output of
    block i, and the last entry equals model(idx).
    """
    _check_inputs(model, idx)
    parts = {name: getattr(model, name, None) for name in ("trf_blocks", "final_norm", "out_head")}
    missing = [name for name, part in parts.items() if part is None]
    if missing or len(parts["trf_blocks"]) == 0:
        raise TypeError(
            "logit_lens needs a GPTModel-like model with trf_blocks (at least one), final_norm and out_head; "
            f"{type(model).__name__} has {'no ' + ', '.join(missing) if missing else 'no blocks'}"
        )
    blocks = parts["trf_blocks"]
    streams = []  # the residual stream (B, T, C) before the first block and after every block

    def record_input(module: nn.Module, args: tuple, kwargs: dict) -> None:
        streams.append(_first_input(args, kwargs))

    def record_output(module: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor) -> None:
        streams.append(output)

    hooks = [(blocks[0], "pre", record_input)] + [(block, "post", record_output) for block in blocks]
    with _temporary_hooks(model, hooks):
        logits = model(idx)  # (B, T, vocab_size)
        # read every stream the way the model reads the last one
        lens = torch.stack([parts["out_head"](parts["final_norm"](x)) for x in streams])
    if len(streams) != len(blocks) + 1 or not torch.allclose(lens[-1], logits, rtol=1e-4, atol=1e-4):
        raise RuntimeError(
            f"{type(model).__name__}'s forward pass is not embeddings -> trf_blocks -> final_norm -> out_head, "
            "so its residual stream cannot be read this way"
        )
    return lens  # (n_layers + 1, B, T, vocab_size)


def token_labels(token_ids, tokenizer=None) -> list[str]:
    """Readable labels for single tokens: a space as '␣', a newline as '⏎', a tab as '\\t', broken UTF-8 as '\\xNN'."""
    tokenizer = get_gpt2_tokenizer() if tokenizer is None else tokenizer
    if not hasattr(tokenizer, "decode_single_token_bytes"):
        raise TypeError(
            f"tokenizer must be a tiktoken Encoding such as get_gpt2_tokenizer(), got {type(tokenizer).__name__}"
        )
    ids = _token_id_list(token_ids)
    n_vocab = getattr(tokenizer, "n_vocab", None)
    for token_id in ids:
        if token_id < 0 or (n_vocab is not None and token_id >= n_vocab):
            raise ValueError(
                f"token id {token_id} is outside the tokenizer's vocabulary [0, {n_vocab}); "
                "check where the ids came from"
            )
    labels = []
    for token_id in ids:
        # a byte-level token can end inside a multi-byte character: show those bytes instead of failing
        text = tokenizer.decode_single_token_bytes(token_id).decode("utf-8", errors="backslashreplace")
        # symbols the course's plot font (Noto Sans CJK) can draw
        labels.append(text.replace(" ", "␣").replace("\n", "⏎").replace("\t", "\\t"))
    return labels


def _token_id_list(token_ids) -> list[int]:
    """The ids of an integer tensor (any shape) or of a flat sequence of ints, as Python ints."""
    if isinstance(token_ids, torch.Tensor):
        if token_ids.dtype.is_floating_point or token_ids.dtype.is_complex or token_ids.dtype == torch.bool:
            raise TypeError(f"token ids must be an integer tensor, got dtype {token_ids.dtype}; use ids.long()")
        return token_ids.flatten().tolist()
    if isinstance(token_ids, (str, bytes)) or not isinstance(token_ids, Iterable):
        raise TypeError(
            f"token_ids must be a tensor or a list of ints, got {type(token_ids).__name__}; "
            "for text use tokenizer.encode(text) first"
        )
    ids = list(token_ids)
    for token_id in ids:
        if isinstance(token_id, bool) or not isinstance(token_id, numbers.Integral):
            raise TypeError(
                f"token ids must be ints, got {type(token_id).__name__} {token_id!r}; "
                "give a flat list of ints or an integer tensor"
            )
    return [int(token_id) for token_id in ids]
