"""Benchmark: our DeepSeekV3Model (notebook 11) against transformers' DeepseekV3ForCausalLM, same random weights.

A small dense DeepSeek-V3 (multi-head latent attention with low-rank queries and YaRN) is made at random in
transformers, saved with save_pretrained and loaded by load_hf_checkpoint. The logits of a long prompt are
compared first, then the greedy tokens, then cached greedy decoding is timed round-robin (medians of the
rounds' ratios, as in bench_generation.py) after a short and after a long prompt.

Where and why ours is faster: transformers 5.24's DeepseekV3Attention caches the latent and the RoPE key, but
after reading the cache it calls expand_kv, which multiplies the latents of *every* cached position by
kv_b_proj at *every* step (rank x heads x (nope + v) multiply-adds per position and layer). Ours decodes in
latent space (W_UK folded into the query, W_UV applied after the softmax), so a step costs heads x
(2 rank + rope) per cached position. The gap therefore grows with the number of cached positions; the run
also counts the positions each model's up-projection processes, and times ours with absorb=False (the same
re-expansion as transformers) to show that the absorbed path is what makes the difference.

    OMP_NUM_THREADS=1 python benchmarks/family_deepseek_v3.py [--repeats 3] [--tiny]   # 6 minutes on a busy machine
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generation import paired_ratio, timed_rounds  # noqa: E402 (the shared timing helpers)


def build_pair(seed: int = 0, tiny: bool = False):
    """Random dense DeepseekV3ForCausalLM in transformers and the same weights loaded by load_hf_checkpoint."""
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM
    from transformers.utils import logging

    from gpt_helpers import load_hf_checkpoint

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.manual_seed(seed)
    if tiny:
        shapes = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2)
        shapes |= dict(num_attention_heads=4, q_lora_rank=32, kv_lora_rank=32, qk_nope_head_dim=16)
        shapes |= dict(qk_rope_head_dim=8, v_head_dim=16, max_position_embeddings=256)
    else:  # about 30M parameters; DeepSeek-V3's proportions (rank = 4 x nope, rope = nope / 2), 16 heads
        shapes = dict(vocab_size=16384, hidden_size=512, intermediate_size=1536, num_hidden_layers=8)
        shapes |= dict(num_attention_heads=16, q_lora_rank=256, kv_lora_rank=256, qk_nope_head_dim=64)
        shapes |= dict(qk_rope_head_dim=32, v_head_dim=64, max_position_embeddings=4096)
    rope = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": shapes["max_position_embeddings"] // 4}
    rope |= {"beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0}
    config = DeepseekV3Config(
        **shapes,
        num_key_value_heads=shapes["num_attention_heads"],
        first_k_dense_replace=shapes["num_hidden_layers"],  # every layer dense: MoE layers come with notebook 14
        rope_scaling=rope,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    hf = DeepseekV3ForCausalLM(config).eval()  # sdpa attention
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.1 * torch.randn_like(p))  # so that a norm loaded wrongly would show in the logits
    with tempfile.TemporaryDirectory() as folder:
        hf.save_pretrained(folder)
        ours = load_hf_checkpoint(folder)
    return hf, ours


def _expanded_positions(hf, ours, prompt, n: int) -> tuple[int, int]:
    """Positions run through the key up-projection of layer 0 in one generation: transformers', ours."""
    from gpt_helpers import generate

    counts = {"hf": 0, "ours": 0}

    def counter(key):
        def hook(module, args, out):
            counts[key] += args[0].shape[-2]

        return hook

    handles = [
        hf.model.layers[0].self_attn.kv_b_proj.register_forward_hook(counter("hf")),
        ours.trf_blocks[0].att.W_key_up.register_forward_hook(counter("ours")),
    ]
    try:
        with torch.inference_mode():
            hf.generate(
                prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n, min_new_tokens=n, do_sample=False
            )
        generate(ours, prompt, n)
    finally:
        for handle in handles:
            handle.remove()
    return counts["hf"], counts["ours"]


def run(repeats: int, tiny: bool, seed: int = 0, new_tokens: int | None = None, prompts=None) -> dict:
    """Check equal logits and greedy tokens, then time cached greedy decoding; returns the figures printed."""
    import copy

    from gpt_helpers import generate, optimize_for_inference

    hf, taught = build_pair(seed, tiny=tiny)
    fast = optimize_for_inference(copy.deepcopy(taught))
    c = taught.cfg
    n = new_tokens or (5 if tiny else 32)
    prompt_lengths = tuple(prompts or ((8, 32) if tiny else (32, 512)))
    print(
        f"\nDeepSeek-V3 family ({c.n_layers} dense layers, emb_dim {c.emb_dim}, {c.n_heads} heads, kv_lora_rank "
        f"{c.kv_lora_rank}, q_lora_rank {c.q_lora_rank}, nope/rope/v {c.qk_nope_head_dim}/{c.qk_rope_head_dim}/"
        f"{c.v_head_dim}, vocab {c.vocab_size}, YaRN): DeepSeekV3Model vs DeepseekV3ForCausalLM, same random weights"
    )
    gen = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(3, c.vocab_size, (1, max(prompt_lengths)), generator=gen)
    with torch.inference_mode():
        reference = hf(ids).logits
        largest = max(float((m(ids) - reference).abs().max()) for m in (taught, fast))
    print(f"logits of a {ids.shape[1]}-token prompt: largest difference {largest:.1e} (must be < 1e-4)")
    if not largest < 1e-4:
        raise SystemExit("the DeepSeek-V3 models disagree, so their timings are not comparable; fix that first")

    result: dict = {"logits_max_abs_diff": largest, "new_tokens": n, "by_prompt": {}}
    for length in prompt_lengths:
        prompt = ids[:, :length]

        def run_hf(prompt=prompt):
            with torch.inference_mode():
                mask = torch.ones_like(prompt)
                return hf.generate(
                    prompt, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0
                )

        def run_taught(prompt=prompt):
            return generate(taught, prompt, n)

        def run_fast(prompt=prompt):
            return generate(fast, prompt, n)

        def run_expanded(prompt=prompt):
            for block in taught.trf_blocks:
                block.att.absorb = False  # re-expand every cached latent at every step, as transformers does
            try:
                return generate(taught, prompt, n)
            finally:
                for block in taught.trf_blocks:
                    block.att.absorb = True

        hf_out = run_hf()
        same = all(torch.equal(hf_out, f()) for f in (run_taught, run_fast, run_expanded))
        print(f"prompt of {length} tokens: greedy continuations identical ({n} tokens): {same}")
        if not same:
            raise SystemExit("the DeepSeek-V3 models disagree, so their timings are not comparable; fix that first")
        hf_rows, our_rows = _expanded_positions(hf, taught, prompt, n)
        fns = {"hf": run_hf, "taught": run_taught, "fast": run_fast, "expanded": run_expanded}
        rounds = timed_rounds(fns, repeats)
        med = {name: statistics.median(seconds) for name, seconds in rounds.items()}
        figures = {
            "tokens_per_s": {name: n / seconds for name, seconds in med.items()},
            "ours_vs_hf": paired_ratio(rounds["hf"], rounds["taught"]),
            "optimized_vs_hf": paired_ratio(rounds["hf"], rounds["fast"]),
            "expanded_vs_hf": paired_ratio(rounds["hf"], rounds["expanded"]),
            "absorbed_vs_expanded": paired_ratio(rounds["expanded"], rounds["taught"]),
            "positions_expanded_layer0": {"hf": hf_rows, "ours": our_rows},
        }
        result["by_prompt"][length] = figures
        tps = figures["tokens_per_s"]
        print(f"  positions run through the key up-projection (layer 0): transformers {hf_rows:,}, ours {our_rows:,}")
        print(f"  ours (absorbed), taught modules:        {tps['taught']:8.1f} tokens/s")
        print(f"  ours, optimize_for_inference:           {tps['fast']:8.1f} tokens/s")
        print(f"  ours with absorb=False (re-expanding):  {tps['expanded']:8.1f} tokens/s")
        print(f"  transformers generate(use_cache):       {tps['hf']:8.1f} tokens/s")
        print(f"  DeepSeek-V3 ours cached / transformers tokens/s (prompt {length}):  {figures['ours_vs_hf']:5.2f}x")
        print(f"  DeepSeek-V3 optimized / transformers:                    {figures['optimized_vs_hf']:5.2f}x")
        print(f"  DeepSeek-V3 absorbed / re-expanding (ours, same modules): {figures['absorbed_vs_expanded']:5.2f}x")
        print(f"  DeepSeek-V3 re-expanding (ours) / transformers:          {figures['expanded_vs_hf']:5.2f}x")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=None, help="32 by default (5 with --tiny)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompts", default=None, help="prompt lengths, e.g. 32,512 (the default; 8,32 with --tiny)")
    parser.add_argument("--tiny", action="store_true", help="a tiny 2-layer model: checks the script runs, not speed")
    args = parser.parse_args()
    import transformers

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, threads {torch.get_num_threads()}; medians of {args.repeats} rounds"
    )
    prompts = [int(p) for p in args.prompts.split(",")] if args.prompts else None
    run(args.repeats, args.tiny, seed=args.seed, new_tokens=args.new_tokens, prompts=prompts)


if __name__ == "__main__":
    main()
