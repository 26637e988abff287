"""A small model that has learned something: notebook 08's GPT, trained on the Zen of Python."""

from __future__ import annotations

import codecs
import contextlib
import io
from typing import NamedTuple

import torch
from torch.utils.data import DataLoader

from ..gpt2.config import GPTConfig
from ..gpt2.model import GPTModel
from .loop import _check_flag, _check_positive_int, _check_seed, create_dataloader, train_model

__all__ = ["ZEN_CONFIG", "ZenRun", "zen_of_python", "train_zen_model"]

# Notebook 08's model: 2 blocks, 4 heads, embeddings of 128, a context of 32 tokens (about three lines
# of the poem) and no dropout, so train and eval mode compute the same thing.
ZEN_CONFIG = GPTConfig(context_length=32, emb_dim=128, n_heads=4, n_layers=2, drop_rate=0.0)


def zen_of_python() -> str:
    """The Zen of Python (856 characters), decoded from the standard library's `this` module, offline."""
    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the poem the first time
        import this
    return codecs.decode(this.s, "rot13")  # the module keeps it ROT13-encoded


class ZenRun(NamedTuple):
    """What train_zen_model returns: the trained model, the loss of every step and the loader it used."""

    model: GPTModel  # in eval mode
    history: list[float]  # the batch loss of every optimizer step
    train_loader: DataLoader  # its shuffling generator has moved on as far as training took it


def train_zen_model(*, seed: int = 123, num_steps: int = 150, num_threads: int = 1, progress: bool = False) -> ZenRun:
    """Train notebook 08's GPT on the Zen of Python; return the model (eval mode), the losses and the loader.

    The recipe is notebook 08's: windows of 32 tokens with stride 1, batches of 4, AdamW with
    lr 3e-3 and weight decay 0.1, everything seeded with `seed`. Training runs on `num_threads`
    threads (one by default, as in notebook 08, so float sums add up in the same order on every
    run); the caller's thread count and random state are restored afterwards.
    """
    _check_positive_int("num_steps", num_steps)
    _check_positive_int("num_threads", num_threads)
    _check_seed(seed)
    _check_flag("progress", progress)
    loader = create_dataloader(zen_of_python(), ZEN_CONFIG.context_length, stride=1, batch_size=4, seed=seed)
    threads_before = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):  # leave the caller's random numbers as they were
        torch.set_num_threads(num_threads)
        try:
            torch.manual_seed(seed)  # the initial weights
            model = GPTModel(ZEN_CONFIG)
            # fused=True: one loop over all parameters instead of one per parameter, same result up to float rounding
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1, fused=True)
            history = train_model(model, loader, num_steps, optimizer=optimizer, seed=seed, progress=progress)
        finally:
            torch.set_num_threads(threads_before)
    return ZenRun(model.eval(), history, loader)
