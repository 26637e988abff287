"""Small models and Hugging Face references shared by the tests."""

from __future__ import annotations

import torch

from gpt_helpers import GPTConfig, GPTModel

TINY = GPTConfig(vocab_size=97, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


def tiny_model(cfg: GPTConfig = TINY, seed: int = 0) -> GPTModel:
    """A small GPTModel in eval mode with seeded random weights."""
    torch.manual_seed(seed)
    return GPTModel(cfg).eval()


def hf_gpt2(vocab_size=211, n_positions=32, n_embd=48, n_layer=3, n_head=4, seed=0):
    """A randomly initialised Hugging Face GPT2LMHeadModel (no download) in eval mode."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging

    logging.set_verbosity_error()
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=vocab_size - 1,
        eos_token_id=vocab_size - 1,
    )
    model = GPT2LMHeadModel(cfg).eval()
    # random init leaves LayerNorms at 1/0; perturb them so the copy is really tested
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name or "ln_f" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model
