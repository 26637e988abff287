"""Turning logits into text: greedy decoding (notebook 06), KV cache and sampling (notebook 07)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

from ..gpt2.attention import KVCache

__all__ = ["generate_text_simple", "apply_temperature", "top_k_filter", "top_p_filter", "generate", "stream_generate"]


def _check_generation_args(idx, max_new_tokens, context_size) -> None:
    """Raise a one-line error unless idx is a non-empty (B, T) integer tensor and the two sizes are ints."""
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2:
        shape = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise ValueError(f"idx must be a 2-D tensor of token ids (batch, seq_len), got {shape}")
    if idx.dtype not in (torch.long, torch.int32):  # what nn.Embedding looks up; a float id would be cast silently
        raise TypeError(f"idx must hold integer token ids (torch.long), got dtype {idx.dtype}; use idx.long()")
    if idx.numel() == 0:
        raise ValueError(f"idx is empty (shape {tuple(idx.shape)}); give at least one token in at least one row")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if isinstance(context_size, bool) or not isinstance(context_size, int) or context_size < 1:
        raise ValueError(f"context_size must be an int >= 1, got {context_size!r}")


def generate_text_simple(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, context_size: int) -> torch.Tensor:
    """Greedy decoding: append the most likely next token max_new_tokens times."""
    _check_generation_args(idx, max_new_tokens, context_size)
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]  # crop: the model only knows context_size positions
        with torch.no_grad():
            logits = model(idx_cond)  # (B, T, vocab_size)
        logits = logits[:, -1, :]  # only the last position predicts the next token: (B, vocab_size)
        probas = torch.softmax(logits, dim=-1)  # monotonic, so argmax is unchanged; shown for clarity
        idx_next = torch.argmax(probas, dim=-1, keepdim=True)  # (B, 1)
        idx = torch.cat((idx, idx_next), dim=1)  # (B, T + 1)
    return idx


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide logits by the temperature: < 1 sharpens the distribution, > 1 flattens it."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    if not 0 < temperature < math.inf:  # also false for nan: logits / nan would be all nan
        raise ValueError(
            f"temperature must be > 0 and finite to rescale logits (use 0 in generate() for greedy), got {temperature}"
        )
    return logits / temperature


def top_k_filter(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep the top_k largest logits of each row; set the rest to -inf."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")
    top_k = min(top_k, logits.shape[-1])
    kth_largest = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probabilities sum to at least top_p."""
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:  # nan too
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=False)  # ascending: (B, V)
    cum_probs = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    # drop the unlikely tail whose total mass is at most 1 - top_p; the most likely token always stays
    remove_sorted = cum_probs <= (1 - top_p)
    remove_sorted[..., -1:] = False
    remove = remove_sorted.scatter(-1, sorted_idx, remove_sorted)  # back to vocabulary order
    return logits.masked_fill(remove, float("-inf"))


def _check_sampling_args(temperature, top_k, top_p) -> None:
    # inf would divide every logit to 0 (uniform sampling, top-k/top-p silently off); nan fails every comparison
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature < math.inf:
        raise ValueError(f"temperature must be a number >= 0 and finite (0 means greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an int >= 1 or None, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p!r}")


def _check_stream_args(model, eos_id, generator, seed, use_cache) -> None:
    cfg = getattr(model, "cfg", None)
    if not isinstance(model, nn.Module) or not hasattr(cfg, "context_length") or not hasattr(cfg, "vocab_size"):
        raise TypeError(
            f"model must be an nn.Module with a cfg giving context_length and vocab_size (e.g. GPTModel), "
            f"got {type(model).__name__}"
        )
    if eos_id is not None and (
        isinstance(eos_id, bool) or not isinstance(eos_id, int) or not 0 <= eos_id < cfg.vocab_size
    ):
        raise ValueError(f"eos_id must be a token id in [0, {cfg.vocab_size}) or None, got {eos_id!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}; or pass seed=...")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**64):
        raise ValueError(f"seed must be an int (what torch.Generator.manual_seed takes), got {seed!r}")
    if generator is not None and seed is not None:
        raise ValueError("pass either generator or seed, not both")
    if not isinstance(use_cache, bool):
        raise TypeError(f"use_cache must be True or False, got {use_cache!r}")


def _next_token(logits: torch.Tensor, temperature, top_k, top_p, generator) -> torch.Tensor:
    """Pick one token per row from last-position logits (B, V); returns (B, 1)."""
    if temperature == 0:
        return torch.argmax(logits, dim=-1, keepdim=True)
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def stream_generate(
    model: nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    context_size: int | None = None,
    use_cache: bool = True,
) -> Iterator[torch.Tensor]:
    """Yield the next token ids (B, 1) one step at a time; see generate() for the arguments."""
    _check_stream_args(model, eos_id, generator, seed, use_cache)
    context_size = model.cfg.context_length if context_size is None else context_size
    _check_generation_args(idx, max_new_tokens, context_size)
    _check_sampling_args(temperature, top_k, top_p)
    if context_size > model.cfg.context_length:
        raise ValueError(
            f"context_size ({context_size}) exceeds the model's context_length ({model.cfg.context_length})"
        )
    if seed is not None:
        generator = torch.Generator(device=idx.device).manual_seed(seed)

    batch_size, prompt_len = idx.shape
    # The model only ever sees the last context_size tokens, so only those are kept: a buffer of at most
    # 2 * context_size positions (or what this call needs, if less). When it is full, the newest
    # context_size - 1 tokens move to its front. Memory stays bounded however large max_new_tokens is.
    kept = min(prompt_len, context_size)
    capacity = min(kept + max_new_tokens, 2 * context_size)
    tokens = torch.empty(batch_size, capacity, dtype=torch.long, device=idx.device)
    tokens[:, :kept] = idx[:, prompt_len - kept :]
    length = kept  # tokens[:, :length] are the latest tokens of the sequence
    finished = torch.zeros(batch_size, dtype=torch.bool, device=idx.device)
    # the cache never holds more than the window or than this call can produce: a model with a long
    # context_length (Qwen3: 40,960) would otherwise allocate GiBs for a short generation
    cache_len = min(context_size, prompt_len + max_new_tokens)
    cache = KVCache.for_model(model, batch_size, max_len=cache_len) if use_cache else None

    for step in range(max_new_tokens):
        # Each step runs in eval mode without autograd; the caller's mode is restored before every yield,
        # so the caller's loop body runs with its own grad mode and train/eval mode (a generator that
        # yielded inside `with torch.inference_mode():` would leak that mode into the caller's code).
        # The mode is switched only when model.training says so: eval() and train() each visit every module
        # (together ~1 ms for GPT-2, 4% of a step), so a model already in eval mode is left as it is.
        was_training = model.training
        if was_training:
            model.eval()
        try:
            with torch.inference_mode():
                if cache is not None and step > 0 and cache.length < context_size:
                    # the cache holds every earlier position: feed only the newest token
                    logits = model(tokens[:, length - 1 : length], cache=cache)
                else:
                    # first step, no cache, or the window is full: positions shift, so recompute
                    # on the last context_size tokens exactly like generate_text_simple
                    if cache is not None:
                        cache.reset()
                    logits = model(tokens[:, max(0, length - context_size) : length], cache=cache)
                next_id = _next_token(logits[:, -1, :], temperature, top_k, top_p, generator)  # (B, 1)
                if eos_id is not None:
                    next_id = next_id.masked_fill(finished.unsqueeze(1), eos_id)  # finished rows repeat eos
                    finished |= next_id.squeeze(1) == eos_id
                if length == capacity:  # full: keep the newest context_size - 1 tokens, at the front
                    keep = context_size - 1
                    tokens[:, :keep] = tokens[:, length - keep : length].clone()
                    length = keep
                tokens[:, length] = next_id.squeeze(1)
        finally:
            if was_training:
                model.train()
        length += 1
        yield next_id.clone()  # cloned outside inference mode: a normal tensor the caller may use freely
        if eos_id is not None and bool(finished.all()):
            return


def generate(
    model: nn.Module, idx: torch.Tensor, max_new_tokens: int, context_size: int | None = None, **kwargs
) -> torch.Tensor:
    """Generate up to max_new_tokens after idx (B, T); return (B, T + new) token ids.

    context_size (the model's context_length by default) may be passed positionally, as the book
    does: generate(model, idx, 20, 1024). Keyword arguments: temperature (0 = greedy), top_k,
    top_p, eos_id (stop once every row has produced it; the eos token is kept in the output),
    generator or seed (reproducible sampling) and use_cache (KV cache on by default).
    """
    new = list(stream_generate(model, idx, max_new_tokens, context_size=context_size, **kwargs))
    return torch.cat([idx, *new], dim=1) if new else idx.clone()
