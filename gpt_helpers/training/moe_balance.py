"""Expert load in a small mixture-of-experts GPT trained on the Zen of Python, with and without balancing (notebook 15).

Notebook 08's model and text, made smaller so that four training runs take seconds: the 112 distinct GPT-2 tokens
of the poem renumbered 0..111, embeddings of 64, and in both blocks a mixture-of-experts feed-forward network
(16 SwiGLU experts, one per token) in place of the dense one. The model runs in float64 on one thread (only the
DeepSeek-style router's logits are float32, as MoEFeedForward.route computes them), so that the routing decisions,
and with them the printed loads, come out the same on every CPU (tools/check_cpu_variants.sh checks notebook 15).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

from ..families.moe import MoEFeedForward, expert_load, load_balancing_loss, update_routing_bias_
from ..gpt2.config import GPTConfig
from ..gpt2.model import GPTModel
from ..text.tokenizer import get_gpt2_tokenizer
from .loop import _check_positive_int, _check_rate, _check_seed
from .zen import zen_of_python

__all__ = ["BALANCE_MODES", "BalanceRun", "zen_token_ids", "moe_zen_model", "train_moe_balance"]

BALANCE_MODES = ("none", "aux_loss", "bias")  # no balancing, the auxiliary loss, DeepSeek-V3's bias update


def zen_token_ids() -> tuple[torch.Tensor, list[int]]:
    """The Zen of Python as GPT-2 tokens renumbered 0..V-1 in id order: (ids (206,), the GPT-2 id of each new id)."""
    ids = get_gpt2_tokenizer().encode(zen_of_python())
    vocab = sorted(set(ids))  # 112 distinct tokens: a vocabulary of 112 keeps the output layer tiny
    new_id = {token: i for i, token in enumerate(vocab)}
    return torch.tensor([new_id[token] for token in ids]), vocab


def moe_zen_model(
    vocab_size: int, *, n_experts: int = 16, top_k: int = 1, routing: str = "softmax", seed: int = 123
) -> GPTModel:
    """Notebook 08's GPT, smaller (C = 64, 2 blocks, 4 heads, 32 positions), with MoE feed-forward layers, float64."""
    _check_seed(seed)
    with torch.random.fork_rng(devices=[]):  # leave the caller's random numbers as they were
        torch.manual_seed(seed)
        cfg = GPTConfig(vocab_size=vocab_size, context_length=32, emb_dim=64, n_heads=4, n_layers=2, drop_rate=0.0)
        model = GPTModel(cfg)
        for block in model.trf_blocks:
            # top-1 without renormalising (Switch Transformer's choice): with k = 1 a renormalised weight is always
            # 1, and the router would get no gradient at all
            block.ff = MoEFeedForward(64, 64, n_experts, top_k, norm_topk_prob=top_k > 1, routing=routing)
    return model.double()  # float64: see the module docstring


class BalanceRun(NamedTuple):
    """What train_moe_balance returns: the model, its losses, and the expert loads during and after training."""

    model: GPTModel  # in eval mode
    losses: list[float]  # the cross-entropy of every step's batch (without the auxiliary loss)
    step_loads: torch.Tensor  # (steps, layers, experts) int64: tokens per expert in every step's batch
    final_load: torch.Tensor  # (layers, experts) int64: tokens per expert over all 174 windows, after training
    final_loss: float  # cross-entropy over all 174 windows, after training


def train_moe_balance(
    balance: str = "none",
    *,
    routing: str = "softmax",
    n_experts: int = 16,
    num_steps: int = 150,
    batch_size: int = 8,
    aux_coef: float = 0.01,
    bias_rate: float = 0.01,
    seed: int = 123,
) -> BalanceRun:
    """Train moe_zen_model on windows of the Zen of Python; balance the experts by `balance` (see BALANCE_MODES).

    "aux_loss" adds aux_coef * load_balancing_loss of both layers to the loss; "bias" needs routing="deepseek" and
    after every step moves each layer's e_score_correction_bias by bias_rate towards the mean load. AdamW with
    lr 3e-3 and weight decay 0.1 (notebook 08's), random windows of 32 tokens, one thread, float64, seeded.
    """
    if balance not in BALANCE_MODES:
        raise ValueError(f"balance must be one of {BALANCE_MODES}, got {balance!r}")
    if balance == "bias" and routing != "deepseek":
        raise ValueError("balance='bias' moves DeepSeek-V3's e_score_correction_bias: use routing='deepseek'")
    _check_positive_int("num_steps", num_steps)
    _check_positive_int("batch_size", batch_size)
    _check_rate("aux_coef", aux_coef, zero_ok=True)
    _check_rate("bias_rate", bias_rate, zero_ok=True)
    ids, vocab = zen_token_ids()
    model = moe_zen_model(len(vocab), n_experts=n_experts, routing=routing, seed=seed)
    moe_layers = [block.ff for block in model.trf_blocks]
    t = model.cfg.context_length
    starts = torch.arange(len(ids) - t)  # 174 windows: inputs ids[s : s + T], targets one token later
    windows = starts[:, None] + torch.arange(t)  # (174, T) positions
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    gen = torch.Generator().manual_seed(seed)  # the batches
    losses, step_loads = [], []
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)  # float sums in the same order on every run
    try:
        model.train()
        for _ in range(num_steps):
            rows = windows[torch.randint(len(windows), (batch_size,), generator=gen)]  # (B, T)
            logits = model(ids[rows])  # (B, T, V)
            loss = F.cross_entropy(logits.flatten(0, 1), ids[rows + 1].flatten())
            total = loss
            if balance == "aux_loss":  # both layers' router logits, as transformers sums them over layers
                total = loss + aux_coef * load_balancing_loss([m.last_router_logits for m in moe_layers], 1)
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
            loads = torch.stack([expert_load(m.last_experts, n_experts) for m in moe_layers])  # (layers, E)
            if balance == "bias":  # after the step, from this batch's load: no gradient involved
                for m, load in zip(moe_layers, loads, strict=True):
                    update_routing_bias_(m.e_score_correction_bias, load, bias_rate)
            losses.append(loss.item())
            step_loads.append(loads)
        model.eval()
        with torch.no_grad():
            final_loss = F.cross_entropy(model(ids[windows]).flatten(0, 1), ids[windows + 1].flatten()).item()
            final_load = torch.stack([expert_load(m.last_experts, n_experts) for m in moe_layers])
    finally:
        torch.set_num_threads(threads_before)
    return BalanceRun(model, losses, torch.stack(step_loads), final_load, final_loss)
