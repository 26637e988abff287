"""Benchmark: our Qwen3MoeModel (notebook 15) against transformers' Qwen3MoeForCausalLM on the same random weights.

A small Qwen3-MoE (every layer a mixture of experts, 32 experts and 2 per token: Qwen3-30B-A3B's share of 8 in
128) is saved by transformers and loaded by load_hf_checkpoint. The logits are compared first and the greedy
continuations must be identical; then cached greedy decoding (our generate vs transformers' generate,
do_sample=False) and a prompt's forward pass are timed round-robin. Ratios are medians of per-round ratios
(each round runs both back to back), as in bench_generation.py. Run it on a quiet machine:
    python benchmarks/family_qwen3_moe.py --repeats 5
    python benchmarks/family_qwen3_moe.py --tiny --repeats 1     # seconds: checks the script, not the speed
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generation import paired_ratio, timed_rounds  # noqa: E402  (the shared round-robin helpers)


def build_pair(seed: int = 0, tiny: bool = False):
    """A random Qwen3MoeForCausalLM (routers and norms perturbed) and our model loaded from its saved folder."""
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM
    from transformers.utils import logging

    from gpt_helpers import load_hf_checkpoint

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.manual_seed(seed)
    shapes = dict(hidden_size=512, num_hidden_layers=8, intermediate_size=1536, moe_intermediate_size=256)
    shapes |= dict(num_attention_heads=8, num_key_value_heads=2, head_dim=64, num_experts=32, vocab_size=16384)
    if tiny:
        shapes = dict(hidden_size=64, num_hidden_layers=2, intermediate_size=128, moe_intermediate_size=32)
        shapes |= dict(num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=8, vocab_size=256)
    config = Qwen3MoeConfig(
        **shapes, num_experts_per_tok=2, norm_topk_prob=True, max_position_embeddings=2048, tie_word_embeddings=False
    )
    hf = Qwen3MoeForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))  # RMSNorms start at 1
            elif name.endswith("mlp.gate.weight"):
                p.normal_(0, 0.5)  # routers start near 0, where every expert looks alike
    with tempfile.TemporaryDirectory() as folder:
        hf.save_pretrained(folder)
        ours = load_hf_checkpoint(folder)
    return hf, ours


def run(repeats: int = 5, tiny: bool = False, new_tokens: int = 64, prompt_len: int = 32, seed: int = 0) -> dict:
    """Compare logits and greedy tokens, then time cached decoding and a forward pass; print and return the figures."""
    from gpt_helpers import generate

    hf, ours = build_pair(seed, tiny=tiny)
    cfg = ours.cfg
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.vocab_size, (1, 100 if tiny else 512), generator=gen)
    prompt = torch.randint(0, cfg.vocab_size, (1, prompt_len), generator=gen)
    n = new_tokens
    print(f"# python benchmarks/family_qwen3_moe.py --repeats {repeats}{' --tiny' if tiny else ''}")
    print(
        f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}; load average {os.getloadavg()[0]:.2f}"
    )
    moe = cfg.moe
    print(
        f"Qwen3-MoE family ({cfg.n_layers} layers, {moe.n_experts} experts, {moe.top_k} per token, emb_dim "
        f"{cfg.emb_dim}, vocab {cfg.vocab_size}): Qwen3MoeModel vs Qwen3MoeForCausalLM, same random weights"
    )
    with torch.inference_mode():
        diff = (ours(ids) - hf(ids).logits).abs().max().item()
    print(f"largest |logit difference| on {tuple(ids.shape)} tokens: {diff:.1e}")
    if diff > 1e-4:
        raise SystemExit("the Qwen3-MoE models disagree, so their timings are not comparable; fix that first")

    def run_hf():
        with torch.inference_mode():
            mask = torch.ones_like(prompt)
            return hf.generate(
                prompt, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0
            )

    def run_ours():
        return generate(ours, prompt, n)

    same = torch.equal(run_hf(), run_ours())
    print(f"greedy continuations identical ({n} tokens): {same}")
    if not same:
        raise SystemExit("the greedy continuations differ, so their timings are not comparable; fix that first")
    rounds = timed_rounds({"hf": run_hf, "ours": run_ours}, repeats)
    with torch.inference_mode():
        fwd_rounds = timed_rounds({"hf": lambda: hf(ids), "ours": lambda: ours(ids)}, repeats)
    med = {name: statistics.median(seconds) for name, seconds in rounds.items()}
    fwd = {name: statistics.median(seconds) for name, seconds in fwd_rounds.items()}
    cached, forward = paired_ratio(rounds["hf"], rounds["ours"]), paired_ratio(fwd_rounds["hf"], fwd_rounds["ours"])
    print(f"generation, {n} new tokens after a prompt of {prompt_len}, tokens/s (median of {repeats} rounds):")
    print(f"  ours (generate, KV cache):             {n / med['ours']:8.1f}")
    print(f"  transformers generate(use_cache):      {n / med['hf']:8.1f}")
    print(f"forward {tuple(ids.shape)}, ms: ours {fwd['ours'] * 1000:.1f}   transformers {fwd['hf'] * 1000:.1f}")
    print(f"  Qwen3-MoE ours / transformers tokens/s (median of rounds): {cached:5.2f}x   (goal: no slower)")
    print(f"  Qwen3-MoE forward {tuple(ids.shape)}: transformers time / ours: {forward:5.2f}x")
    return {
        "logits_max_abs_diff": diff,
        "same_tokens": same,
        "tokens_per_s": {"ours": n / med["ours"], "hf": n / med["hf"]},
        "forward_ms": {"ours": fwd["ours"] * 1000, "hf": fwd["hf"] * 1000},
        "cached_ratio": cached,
        "forward_ratio": forward,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model: checks the script, not the speed")
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    run(args.repeats, tiny=args.tiny, new_tokens=args.new_tokens)
