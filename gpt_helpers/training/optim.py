"""The pieces of one optimizer step: learning-rate schedule, weight-decay groups, clipping, accumulation (17)."""

from __future__ import annotations

import math
from contextlib import nullcontext

from torch import nn
from torch.nn import functional as F

__all__ = ["lr_at", "param_groups", "clip_gradients", "accumulate_gradients"]


def lr_at(step: int, max_lr: float, warmup: int, total_steps: int, min_lr: float = 0.0) -> float:
    """Learning rate at step (0-based): linear warmup to max_lr over `warmup` steps, then cosine decay to min_lr."""
    if step < warmup:
        return max_lr * (step + 1) / warmup  # step 0 already gets a small non-zero rate
    progress = (step - warmup) / max(1, total_steps - warmup)  # 0 at the end of warmup, 1 at the last step
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: weight decay on weight matrices; none on biases, norm scales/shifts and embeddings."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for p in model.parameters():  # a tied head is the embedding's own Parameter: listed once, not decayed
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and id(p) not in embeddings else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def clip_gradients(model: nn.Module, max_norm: float) -> float:
    """Scale all gradients together so their global L2 norm is at most max_norm; return the norm before."""
    norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    if hasattr(norm, "full_tensor"):  # FSDP2: a DTensor holding the norm over every rank's shards
        norm = norm.full_tensor()
    return float(norm)


def accumulate_gradients(model: nn.Module, micro_batches, autocast=nullcontext, no_sync=None) -> float:
    """Backward over micro-batches, each loss divided by their number: the gradient of the whole batch's mean loss.

    no_sync(last) may return a context that skips the gradient all-reduce of DDP/FSDP on all but the last.
    Returns the mean loss over the micro-batches.
    """
    n = len(micro_batches)
    total = 0.0
    for i, (x, y) in enumerate(micro_batches):
        sync = nullcontext() if no_sync is None else no_sync(i == n - 1)
        with sync:
            with autocast():
                logits = model(x)  # (b, T, V)
                loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
            (loss / n).backward()  # the gradients add up over micro-batches: divide so they average
        total += loss.item()
    return total / n
