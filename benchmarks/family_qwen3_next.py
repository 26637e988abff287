"""Benchmark: our Qwen3NextModel (notebook 13) against transformers' Qwen3NextForCausalLM on the same random weights.

A small dense Qwen3-Next (three Gated DeltaNet layers, then one gated full-attention layer, repeated) is saved by
transformers and loaded by load_hf_checkpoint. The logits are compared first, then cached greedy decoding is
timed round-robin against transformers' generate (do_sample=False), and a prompt's forward pass too. Ratios are
medians of per-round ratios (each round runs both back to back), as in bench_generation.py.

transformers 5.24 without the optional kernels (flash-linear-attention, causal-conv1d) runs its PyTorch reference
path; run() reports whether they are installed. Run it on a quiet machine:
    python benchmarks/family_qwen3_next.py --repeats 5
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generation import paired_ratio, timed_rounds  # noqa: E402  (the shared round-robin helpers)


def build_pair(seed: int = 0, tiny: bool = False):
    """A random dense Qwen3NextForCausalLM and our Qwen3NextModel loaded from its save_pretrained folder."""
    from transformers import Qwen3NextConfig, Qwen3NextForCausalLM
    from transformers.utils import logging

    from gpt_helpers import load_hf_checkpoint

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.manual_seed(seed)
    shapes = dict(hidden_size=512, num_hidden_layers=8, intermediate_size=1536, vocab_size=16384)
    shapes |= dict(num_attention_heads=8, num_key_value_heads=2, head_dim=64)  # the two full-attention layers
    shapes |= dict(linear_num_key_heads=4, linear_num_value_heads=8, linear_key_head_dim=64, linear_value_head_dim=64)
    if tiny:
        shapes = dict(hidden_size=64, num_hidden_layers=4, intermediate_size=128, vocab_size=256)
        shapes |= dict(num_attention_heads=4, num_key_value_heads=2, head_dim=16)
        shapes |= dict(
            linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=16, linear_value_head_dim=16
        )
    config = Qwen3NextConfig(
        **shapes,
        mlp_only_layers=list(range(shapes["num_hidden_layers"])),  # dense MLP in every layer
        max_position_embeddings=2048,
        tie_word_embeddings=False,
    )
    hf = Qwen3NextForCausalLM(config).eval()
    with torch.no_grad():  # perturb the norms (they start at 0 or 1) so the comparison tests every tensor
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    with tempfile.TemporaryDirectory() as folder:
        hf.save_pretrained(folder)
        ours = load_hf_checkpoint(folder)
    return hf, ours


def optional_kernels() -> dict[str, bool]:
    """Whether the packages transformers would use instead of its PyTorch reference path are installed."""
    return {name: importlib.util.find_spec(name) is not None for name in ("fla", "causal_conv1d")}


def conv_step_times(ours, repeats: int, calls: int = 200) -> dict:
    """Microseconds per decoding step of one layer's short convolution: ours, and transformers' fallback function."""
    from transformers.models.qwen3_next.modeling_qwen3_next import causal_conv1d_update

    conv = next(block.att.conv for block in ours.trf_blocks if block.layer_type == "linear_attention")
    channels, kernel = conv.weight.shape[0], conv.kernel_size
    x, past = torch.randn(1, 1, channels), torch.randn(1, channels, kernel - 1)
    hf_state, weight = past.clone(), conv.weight.squeeze(1)
    with torch.inference_mode():
        ours_out, _ = conv(x, past)
        hf_out = causal_conv1d_update(x.transpose(1, 2), hf_state, weight, None, "silu")
        torch.testing.assert_close(ours_out, hf_out.transpose(1, 2))  # the same step, before timing it

        def run_ours():
            for _ in range(calls):
                conv(x, past)

        def run_hf():
            for _ in range(calls):
                causal_conv1d_update(x.transpose(1, 2), hf_state, weight, None, "silu")

        rounds = timed_rounds({"ours": run_ours, "hf": run_hf}, repeats)
    per_call = {name: statistics.median(times) / calls * 1e6 for name, times in rounds.items()}
    return {"channels": channels, "ours_us": per_call["ours"], "hf_us": per_call["hf"]}


def run(repeats: int = 5, tiny: bool = False, new_tokens: int = 64, prompt_len: int = 32, seed: int = 0) -> dict:
    """Compare logits, then time cached greedy decoding and a prompt's forward pass; print and return the figures."""
    from gpt_helpers import generate

    hf, ours = build_pair(seed, tiny=tiny)
    cfg = ours.cfg
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.vocab_size, (1, 512 if not tiny else 100), generator=gen)
    prompt = torch.randint(0, cfg.vocab_size, (1, prompt_len), generator=gen)
    n = new_tokens
    n_linear = cfg.layer_types.count("linear_attention")
    print(
        f"\nQwen3-Next family ({cfg.n_layers} layers: {n_linear} Gated DeltaNet, {cfg.n_layers - n_linear} gated "
        f"attention; emb_dim {cfg.emb_dim}, vocab {cfg.vocab_size}): Qwen3NextModel vs Qwen3NextForCausalLM, "
        "same random weights"
    )
    kernels = optional_kernels()
    print(f"optional kernels installed (else transformers runs its PyTorch reference path): {kernels}")
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

    same = torch.equal(run_hf(), run_ours())
    print(f"greedy continuations identical ({n} tokens): {same}")
    if not same:
        raise SystemExit("the Qwen3-Next models disagree, so their timings are not comparable; fix that first")
    rounds = timed_rounds({"hf": run_hf, "ours": run_ours}, repeats)
    with torch.inference_mode():
        fwd_rounds = timed_rounds({"hf": lambda: hf(ids), "ours": lambda: ours(ids)}, repeats)
    med = {name: statistics.median(seconds) for name, seconds in rounds.items()}
    fwd = {name: statistics.median(seconds) for name, seconds in fwd_rounds.items()}
    cached, forward = paired_ratio(rounds["hf"], rounds["ours"]), paired_ratio(fwd_rounds["hf"], fwd_rounds["ours"])
    print(f"generation, {n} new tokens after a prompt of {prompt_len} (tokens/s):")
    print(f"  ours, fixed-size state + KV cache (generate):  {n / med['ours']:8.1f}")
    print(f"  transformers generate(use_cache):              {n / med['hf']:8.1f}")
    print(
        f"forward latency {tuple(ids.shape)}, ms: ours {fwd['ours'] * 1000:.1f}   transformers {fwd['hf'] * 1000:.1f}"
    )
    conv = conv_step_times(ours, repeats)
    print(
        f"short convolution, one decoding step over {conv['channels']} channels (us): ours (multiply and sum) "
        f"{conv['ours_us']:.1f}   transformers' causal_conv1d_update (F.conv1d) {conv['hf_us']:.1f}"
    )
    print(f"  Qwen3-Next ours cached / transformers tokens/s:  {cached:5.2f}x   (goal: no slower)")
    print(f"  Qwen3-Next forward {tuple(ids.shape)}: transformers time / ours: {forward:5.2f}x")
    return {
        "same_tokens": same,
        "optional_kernels": kernels,
        "tokens_per_s": {"ours": n / med["ours"], "hf": n / med["hf"]},
        "forward_ms": {"ours": fwd["ours"] * 1000, "hf": fwd["hf"] * 1000},
        "conv_step_us": conv,
        "cached_ratio": cached,
        "forward_ratio": forward,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="a 4-layer model: checks the script, not the speed")
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    run(args.repeats, tiny=args.tiny, new_tokens=args.new_tokens)
