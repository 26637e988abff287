"""Benchmark: our Gemma3Model (notebook 12) against transformers' Gemma3ForCausalLM on the same random weights.

A small Gemma 3 (five sliding-window layers to one global layer, window 64) is saved by transformers and loaded by
load_hf_checkpoint. The logits are compared first (on a prompt eight times the window), then cached greedy decoding
that runs far past the window (a prompt of 32, 192 new tokens) is timed round-robin against transformers' generate
(do_sample=False), and a prompt's forward pass too. Ratios are medians of per-round ratios (each round runs both
back to back), as in bench_generation.py.

Where the time goes: both caches hold only the window in the local layers. Ours writes each new key/value into a
preallocated ring (local layers) or buffer (global layers) and attends without a mask; transformers 5.24's
DynamicCache concatenates every layer's keys and values into new tensors at every step (torch.cat, then slices the
local ones back to window - 1), and generate prepares the full-attention and sliding-window masks at every step
(create_masks_for_generate). Both read the same weights per token, which dominates at this size, so the gap is the
per-step overhead. Run it on a quiet machine:
    python benchmarks/family_gemma3.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generation import paired_ratio, timed_rounds  # noqa: E402  (the shared round-robin helpers)


def build_pair(seed: int = 0, tiny: bool = False):
    """A random Gemma3ForCausalLM (text only) and our Gemma3Model loaded from its save_pretrained folder."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig
    from transformers.utils import logging

    from gpt_helpers import load_hf_checkpoint

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.manual_seed(seed)
    shapes = dict(hidden_size=512, num_hidden_layers=12, intermediate_size=1536, vocab_size=16384)
    shapes |= dict(num_attention_heads=8, num_key_value_heads=4, head_dim=64, sliding_window=64)  # 2 global layers
    if tiny:
        shapes = dict(hidden_size=64, num_hidden_layers=6, intermediate_size=128, vocab_size=256)
        shapes |= dict(num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=8)
    config = Gemma3TextConfig(
        **shapes,
        query_pre_attn_scalar=shapes["head_dim"],
        max_position_embeddings=2048,
        rope_theta=1_000_000.0,
        rope_local_base_freq=10_000.0,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=0,
    )
    hf = Gemma3ForCausalLM(config).eval()
    hf.generation_config.eos_token_id = None  # time every new token: no early stop
    with torch.no_grad():  # the norms start at 0 (multiplier 1); perturb them so the comparison tests every tensor
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    with tempfile.TemporaryDirectory() as folder:
        hf.save_pretrained(folder)
        ours = load_hf_checkpoint(folder)
    return hf, ours


def run(repeats: int = 5, tiny: bool = False, new_tokens: int = 192, prompt_len: int = 32, seed: int = 0) -> dict:
    """Compare logits, then time cached greedy decoding past the window and a prompt's forward; print and return."""
    from gpt_helpers import generate

    hf, ours = build_pair(seed, tiny=tiny)
    cfg = ours.cfg
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.vocab_size, (1, 8 * cfg.sliding_window), generator=gen)
    prompt = torch.randint(0, cfg.vocab_size, (1, prompt_len), generator=gen)
    n = new_tokens
    n_local = cfg.layer_types.count("local")
    print(
        f"\nGemma 3 family ({cfg.n_layers} layers: {n_local} local with window {cfg.sliding_window}, "
        f"{cfg.n_layers - n_local} global; emb_dim {cfg.emb_dim}, {cfg.n_heads} query / {cfg.n_kv_heads} key-value "
        f"heads, vocab {cfg.vocab_size}): Gemma3Model vs Gemma3ForCausalLM, same random weights"
    )
    with torch.inference_mode():
        reference = hf(ids).logits
        torch.testing.assert_close(ours(ids), reference, atol=1e-4, rtol=1e-4)
    print(f"logits equal within 1e-4 on {tuple(ids.shape)} tokens: True")

    def run_hf():
        with torch.inference_mode():
            mask = torch.ones_like(prompt)
            return hf.generate(
                prompt, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0
            )

    def run_ours():
        return generate(ours, prompt, n)

    hf_out = run_hf()
    same = torch.equal(hf_out, run_ours())
    past_window = prompt_len + n > cfg.sliding_window
    print(f"greedy continuations identical ({n} tokens, {prompt_len + n} positions > window: {past_window}): {same}")
    if not same:
        raise SystemExit("the Gemma 3 models disagree, so their timings are not comparable; fix that first")
    cache = ours.make_cache(1, prompt_len + n)
    print(
        f"our cache for {prompt_len + n} positions: {cache.nbytes / 2**20:.2f} MiB "
        f"(local layers: {cfg.sliding_window} rows each, fixed)"
    )
    rounds = timed_rounds({"hf": run_hf, "ours": run_ours}, repeats)
    with torch.inference_mode():
        fwd_rounds = timed_rounds({"hf": lambda: hf(ids), "ours": lambda: ours(ids)}, repeats)
    med = {name: statistics.median(seconds) for name, seconds in rounds.items()}
    fwd = {name: statistics.median(seconds) for name, seconds in fwd_rounds.items()}
    cached, forward = paired_ratio(rounds["hf"], rounds["ours"]), paired_ratio(fwd_rounds["hf"], fwd_rounds["ours"])
    print(f"generation, {n} new tokens after a prompt of {prompt_len} (tokens/s):")
    print(f"  ours, ring buffers + KV cache (generate):  {n / med['ours']:8.1f}")
    print(f"  transformers generate(use_cache):          {n / med['hf']:8.1f}")
    print(
        f"forward latency {tuple(ids.shape)}, ms: ours {fwd['ours'] * 1000:.1f}   transformers {fwd['hf'] * 1000:.1f}"
    )
    print(f"  Gemma 3 ours cached / transformers tokens/s:  {cached:5.2f}x   (goal: no slower)")
    print(f"  Gemma 3 forward {tuple(ids.shape)}: transformers time / ours: {forward:5.2f}x")
    return {
        "same_tokens": same,
        "tokens_per_s": {"ours": n / med["ours"], "hf": n / med["hf"]},
        "forward_ms": {"ours": fwd["ours"] * 1000, "hf": fwd["hf"] * 1000},
        "cached_ratio": cached,
        "forward_ratio": forward,
        "cache_bytes": cache.nbytes,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="a 6-layer model: checks the script, not the speed")
    parser.add_argument("--new-tokens", type=int, default=192)
    args = parser.parse_args()
    run(args.repeats, tiny=args.tiny, new_tokens=args.new_tokens)
