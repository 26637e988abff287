"""Benchmark: our GPTModel against Hugging Face GPT2LMHeadModel on the same random 124M weights.

Prints tokens/s of the naive loop (generate_text_simple), of our KV-cache generation (prepared by
optimize_for_inference: fused LayerNorm/GELU kernels, column-major weights, thread-split
matrix-vector products, Q/K/V in one buffer and a lean one-token step; and also with the modules
exactly as taught) and of Hugging Face's
generate(use_cache=True, do_sample=False); forward latency for (1, 1024) and (8, 256); and the
ratios. It also measures this machine's memory read bandwidth in the same run, before and after
every decoder run, and prints the decoding ceiling it sets (weights read per token / bandwidth)
with each decoder's share of it.
Then the same for a small Qwen3-family model (notebook 09's LlamaQwenModel) against
Qwen3ForCausalLM. Each figure is the median of --repeats runs. Run it on a quiet machine:
    python benchmarks/bench_generation.py
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch


def timed_rounds(fns: dict, repeats: int, warmup: int = 1, probe=None) -> dict:
    """Wall-clock seconds of each fn in each of `repeats` round-robin rounds, {name: [seconds per round]}.

    With a probe (a function returning a read bandwidth), it also runs before the first fn of every
    round and after every fn, and the result gains {"bandwidth " + name: [bandwidth around each run]}:
    the mean of the probes just before and just after that run, so each run has the ceiling of its moment.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    around = {f"bandwidth {name}": [] for name in fns} if probe is not None else {}
    for _ in range(repeats):
        before = probe() if probe is not None else None
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
            if probe is not None:
                after = probe()
                around[f"bandwidth {name}"].append((before + after) / 2)
                before = after
    return times | around


def paired_ratio(slow: list, fast: list) -> float:
    """Median over the rounds of slow / fast, from timed_rounds lists (one entry per round, same rounds)."""
    return statistics.median(a / b for a, b in zip(slow, fast, strict=True))


def read_bandwidth_probe(mib: int, passes: int):
    """A function that times `passes` sum() passes over a float32 tensor of `mib` MiB, and the list it fills.

    sum() reads every byte once and computes almost nothing, with torch's threads (the decoders'
    threads), so its speed is the machine's read bandwidth. Each call returns the bandwidth of its
    median pass (bytes/s); the list keeps every pass's seconds. The caller runs it between the
    decoders' runs (timed_rounds), so each run is compared with the bandwidth of its own moment.
    """
    data = torch.ones(mib * 2**20 // 4)  # written once here, so its pages exist before the first pass
    nbytes = data.numel() * data.element_size()
    seconds = []

    def probe() -> float:
        passes_now = []
        for _ in range(passes):
            start = time.perf_counter()
            data.sum()
            passes_now.append(time.perf_counter() - start)
        seconds.extend(passes_now)
        return nbytes / statistics.median(passes_now)

    return probe, seconds, nbytes


def weight_bytes_per_token(model: torch.nn.Module) -> int:
    """Bytes of parameters one decoding step reads for one sequence (batch 1).

    Every Parameter is read once, whole (a tied one once), with one exception: a table that is only
    looked up (an nn.Embedding not shared with a Linear, e.g. position embeddings) gives one row. A
    tied token embedding is read whole by the output head; its looked-up row is counted on top.
    """
    modules = list(model.modules())
    embeddings = [m for m in modules if isinstance(m, torch.nn.Embedding)]
    used_elsewhere = {id(p) for m in modules if not isinstance(m, torch.nn.Embedding) for p in m.parameters(False)}
    lookup_only = {id(m.weight) for m in embeddings} - used_elsewhere
    whole = sum(p.numel() * p.element_size() for p in model.parameters() if id(p) not in lookup_only)
    rows = sum(m.weight.shape[1] * m.weight.element_size() for m in embeddings)  # one row per lookup
    return whole + rows


def kv_cache_bytes_per_position(model: torch.nn.Module) -> int:
    """Bytes of keys and values the cache holds per position (batch 1): what attention reads per earlier token."""
    from gpt_helpers import KVCache

    cache = KVCache.for_model(model, 1, max_len=1)
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


def int8_bytes_per_token(model: torch.nn.Module) -> int:
    """Bytes one decoding step reads from a model quantized by quantize_int8_ (batch 1).

    Every Int8Linear's int8 weight, row scales and bias, whole; the float parameters left (norms) whole; one
    row of the position embedding; and one looked-up row (int8 values and scale) of the tied token embedding.
    """
    from gpt_helpers import Int8Linear

    linears = [m for m in model.modules() if isinstance(m, Int8Linear)]
    whole = sum(b.numel() * b.element_size() for m in linears for b in m.buffers())
    floats = weight_bytes_per_token(model)  # Parameters only: norms whole, the position embedding one row
    head = model.out_head
    return whole + floats + head.in_features * head.qweight.element_size() + head.scale.element_size()


def build_pair(seed: int, tiny: bool = False):
    """Random-init GPT-2 124M (or a tiny 2-layer model) in Hugging Face and the same weights in our GPTModel."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging

    from gpt_helpers import GPTModel
    from gpt_helpers.checkpoints.weights import config_from_hf_state_dict, load_hf_gpt2_weights

    logging.set_verbosity_error()
    torch.manual_seed(seed)
    shapes = {"n_embd": 64, "n_layer": 2, "n_head": 4} if tiny else {}  # default: gpt2 (124M) shapes
    hf = GPT2LMHeadModel(GPT2Config(**shapes)).eval()  # sdpa attention
    cfg = config_from_hf_state_dict(hf.state_dict(), n_heads=hf.config.n_head)
    ours = load_hf_gpt2_weights(GPTModel(cfg), hf.state_dict()).eval()
    return hf, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--naive-repeats", type=int, default=3, help="the naive loop is slow; fewer repeats")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="a tiny 2-layer model: checks the script runs, not speed")
    parser.add_argument("--bandwidth-mib", type=int, default=None, help="size of the read-bandwidth probe (512)")
    parser.add_argument("--bandwidth-passes", type=int, default=3, help="probe passes per round of the decoders")
    parser.add_argument(
        "--gpt2-only", action="store_true", help="only the GPT-2 124M part (no Qwen3 and no family entries)"
    )
    args = parser.parse_args()
    if args.bandwidth_mib is None:
        args.bandwidth_mib = 64 if args.tiny else 512  # larger than the weights and than any cache

    import copy

    from gpt_helpers import generate, generate_text_simple, optimize_for_inference

    hf, taught = build_pair(args.seed, tiny=args.tiny)
    # "ours": the taught model prepared by optimize_for_inference (same weights, same outputs up to
    # float rounding); "taught": the modules exactly as the notebooks write them
    ours = optimize_for_inference(copy.deepcopy(taught))
    # "int8": the same weights stored as int8 per output row (weight-only quantization, inference only)
    ours8 = optimize_for_inference(copy.deepcopy(taught), weights="int8")
    n = args.new_tokens
    prompt = torch.randint(0, taught.cfg.vocab_size, (1, 4), generator=torch.Generator().manual_seed(args.seed))

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    import transformers

    size = "tiny 2-layer" if args.tiny else "GPT-2 124M"
    print(f"transformers {transformers.__version__}; same random {size} weights in both; median of runs")

    def run_hf():
        with torch.inference_mode():
            return hf.generate(
                prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=True, pad_token_id=0
            )

    def run_ours():
        return generate(ours, prompt, n)

    def run_taught():
        return generate(taught, prompt, n)

    def run_int8():
        return generate(ours8, prompt, n)

    # the outputs must agree before timing means anything
    hf_out = run_hf()
    same = torch.equal(hf_out, run_ours()) and torch.equal(hf_out, run_taught())
    print(f"greedy continuations identical ({n} tokens): {same}")
    if not same:
        raise SystemExit("the models disagree, so their timings are not comparable; fix that first")
    # int8 changes the weights by up to half a quantization step, so its greedy tokens may part from
    # float32's at a near tie (random weights have many); the accuracy on a trained model is notebook 14's
    int8_out = run_int8()
    agree = int((int8_out[0, prompt.shape[1] :] == hf_out[0, prompt.shape[1] :]).cumprod(0).sum())
    print(f"int8 greedy continuation equal to float32's for the first {agree} of {n} tokens")

    def run_naive():
        with torch.inference_mode():
            generate_text_simple(ours, prompt, n, context_size=ours.cfg.context_length)

    probe, probe_seconds, probe_bytes = read_bandwidth_probe(args.bandwidth_mib, args.bandwidth_passes)
    decoders = {"hf": run_hf, "ours": run_ours, "taught": run_taught, "int8": run_int8}
    runs = timed_rounds(decoders, args.repeats, probe=probe)
    runs |= timed_rounds({"naive": run_naive}, args.naive_repeats, warmup=0, probe=probe)
    t_hf, t_ours, t_taught, t_naive, t_int8 = (
        statistics.median(runs[k]) for k in ("hf", "ours", "taught", "naive", "int8")
    )
    bandwidth = probe_bytes / statistics.median(probe_seconds)  # bytes/s

    per_token = weight_bytes_per_token(ours)
    if per_token != weight_bytes_per_token(hf):
        raise SystemExit("the two models read different numbers of weight bytes per token; check the count")
    ceiling = bandwidth / per_token  # tokens/s if a step did nothing but read the weights once

    per_token8 = int8_bytes_per_token(ours8)
    ceiling8 = bandwidth / per_token8

    def share(name: str, bytes_per_token: int = per_token) -> float:
        """Median over the runs of tokens/s / the ceiling of that run's moment (probes just before and after)."""
        return statistics.median(
            n / seconds / (bw / bytes_per_token)
            for seconds, bw in zip(runs[name], runs[f"bandwidth {name}"], strict=True)
        )

    shares = {name: share(name) for name in ("naive", "ours", "taught", "hf")}
    shares["int8"] = share("int8", per_token8)  # of the int8 ceiling: the bytes it really reads
    vs_hf = {name: paired_ratio(runs["hf"], runs[name]) for name in ("ours", "taught", "int8")}  # HF time / name's
    int8_vs_ours = paired_ratio(runs["ours"], runs["int8"])

    moment = [bw for name in ("hf", "ours", "taught", "int8") for bw in runs[f"bandwidth {name}"]]
    kv = kv_cache_bytes_per_position(ours) * (prompt.shape[1] + (n + 1) / 2)  # average position in this run
    c = ours.cfg
    print(
        f"\nmemory read bandwidth: {bandwidth / 2**30:.1f} GiB/s = median of {len(probe_seconds)} passes of "
        f"sum() over {args.bandwidth_mib} MiB of float32, {torch.get_num_threads()} threads, "
        f"{args.bandwidth_passes} passes before and after every decoder run; around the runs it ranged "
        f"{min(moment) / 2**30:.1f}-{max(moment) / 2**30:.1f} GiB/s"
    )
    print(
        f"weights read per generated token (batch 1, float32): {per_token / 2**20:.1f} MiB = "
        f"{per_token // 4:,} floats: every parameter of the {c.n_layers} blocks and of the final LayerNorm, "
        f"the output head's whole {c.vocab_size} x {c.emb_dim} matrix "
        f"({'the tied token embedding' if c.tie_weights else 'untied'}), and one row each of the token "
        f"and position embeddings"
    )
    print(
        f"  not counted: the KV cache, read by attention, adds {kv / 2**20:.1f} MiB per token on average "
        f"in this run ({kv / per_token:.1%}), so the ceiling is slightly above what is reachable"
    )
    print(f"ceiling: {bandwidth / 2**30:.1f} GiB/s / {per_token / 2**20:.1f} MiB = {ceiling:.1f} tokens/s")
    print(
        f"int8 weights read per token: {per_token8 / 2**20:.1f} MiB ({per_token8 / per_token:.1%} of float32); "
        f"int8 ceiling: {bandwidth / 2**30:.1f} GiB/s / {per_token8 / 2**20:.1f} MiB = {ceiling8:.1f} tokens/s"
    )

    print(f"\ngeneration, {n} new tokens from a 4-token prompt: tokens/s (median), share of the ceiling")
    print("  (share: median over the runs of each run's tokens/s over the ceiling measured just before and after it;")
    print("   in brackets, the median tokens/s over the ceiling above)")
    rows = [
        ("naive loop (generate_text_simple):", t_naive, "naive"),
        ("ours, KV cache (generate):", t_ours, "ours"),
        ("ours, KV cache, taught modules:", t_taught, "taught"),
        ("Hugging Face generate(use_cache):", t_hf, "hf"),
    ]
    for label, seconds, name in rows:
        print(f"  {label:35s}{n / seconds:8.1f}   {shares[name]:4.0%}   ({n / seconds / ceiling:4.0%})")
    label = "ours, KV cache, int8 weights:"
    print(
        f"  {label:35s}{n / t_int8:8.1f}   {shares['int8']:4.0%}   ({n / t_int8 / ceiling8:4.0%})   of the int8 ceiling"
    )

    print("\nforward latency (ms):")
    ratios = {}
    for shape in [(1, 1024), (8, 256)]:
        ids = torch.randint(0, taught.cfg.vocab_size, shape, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-4, rtol=1e-4)

            def fwd_ours(ids=ids):
                ours(ids)

            def fwd_hf(ids=ids):
                hf(ids)

            def fwd_taught(ids=ids):
                taught(ids)

            fwd = timed_rounds({"ours": fwd_ours, "hf": fwd_hf, "taught": fwd_taught}, args.repeats)
            t_o, t_h, t_t = (statistics.median(fwd[k]) for k in ("ours", "hf", "taught"))
        # as for generation: the median of the rounds' ratios, each round runs the three back to back
        ratios[shape] = (paired_ratio(fwd["hf"], fwd["ours"]), paired_ratio(fwd["hf"], fwd["taught"]))
        print(f"  {shape}: ours {t_o * 1000:8.1f}   Hugging Face {t_h * 1000:8.1f}   taught modules {t_t * 1000:8.1f}")

    print("\nratios (> 1 means ours is faster):")
    if args.tiny:
        print("  (tiny model: the targets are for GPT-2 124M, so these ratios say nothing about them)")
    print(f"  ours cached / ceiling tokens/s:        {shares['ours']:5.2f}    (target >= 0.8, goal 0.9)")
    print(
        f"  ours cached / Hugging Face tokens/s:   {vs_hf['ours']:5.2f}x   (target >= 1.2; median of the "
        f"rounds' ratios, each round runs both back to back; ratio of the medians {t_hf / t_ours:.2f}x)"
    )
    print(f"  ours cached / naive loop tokens/s:     {t_naive / t_ours:5.2f}x   (target >= 5)")
    for shape, (r, _) in ratios.items():
        print(f"  forward {shape}: Hugging Face time / ours: {r:5.2f}x   (target >= 1.0; median of the rounds' ratios)")
    print(f"  Hugging Face cached / ceiling tokens/s: {shares['hf']:5.2f}")
    print("  with the taught modules as they are (no optimize_for_inference):")
    print(f"    cached / ceiling tokens/s:           {shares['taught']:5.2f}")
    print(
        f"    cached / Hugging Face tokens/s:      {vs_hf['taught']:5.2f}x   "
        f"(ratio of the medians {t_hf / t_taught:.2f}x)"
    )
    for shape, (_, r_taught) in ratios.items():
        print(f"    forward {shape}: Hugging Face time / taught: {r_taught:5.2f}x")
    print("  int8 weights (optimize_for_inference(weights='int8')):")
    print(f"    int8 cached / int8 ceiling tokens/s: {shares['int8']:5.2f}")
    print(
        f"    int8 cached / Hugging Face float32:  {vs_hf['int8']:5.2f}x   (target >= 2.0, goal 2.5; "
        f"ratio of the medians {t_hf / t_int8:.2f}x)"
    )
    print(
        f"    int8 cached / ours float32:          {int8_vs_ours:5.2f}x   (target >= 1.7; "
        f"ratio of the medians {t_ours / t_int8:.2f}x)"
    )

    if args.gpt2_only:
        return
    bench_qwen3(args, bandwidth)  # the Llama 3 / Qwen3 family of notebook 09
    bench_families(args)  # notebooks 11-13: DeepSeek-V3 (MLA), Gemma 3 (sliding window), Qwen3-Next (DeltaNet)


def build_qwen3_pair(seed: int, tiny: bool = False):
    """Random-init Qwen3ForCausalLM (small: GQA, QK-norm, tied head), saved and loaded by load_hf_checkpoint."""
    import tempfile

    from transformers import Qwen3Config, Qwen3ForCausalLM
    from transformers.utils import logging

    from gpt_helpers import load_hf_checkpoint

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.manual_seed(seed)
    shapes = dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=4, head_dim=64)
    shapes |= dict(intermediate_size=1536, vocab_size=16384)  # about 34M parameters, 2 query heads per group
    if tiny:
        shapes = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16)
        shapes |= dict(intermediate_size=128, vocab_size=256)
    hf = Qwen3ForCausalLM(Qwen3Config(**shapes, max_position_embeddings=1024, tie_word_embeddings=True)).eval()
    with tempfile.TemporaryDirectory() as folder:
        hf.save_pretrained(folder)
        ours = load_hf_checkpoint(folder)
    return hf, ours


def bench_qwen3(args, bandwidth: float) -> None:
    """The Qwen3 family: LlamaQwenModel against Hugging Face Qwen3ForCausalLM on the same random weights."""
    import copy

    from gpt_helpers import generate, optimize_for_inference

    hf, taught = build_qwen3_pair(args.seed, tiny=args.tiny)
    ours = optimize_for_inference(copy.deepcopy(taught))
    n = args.new_tokens
    prompt = torch.randint(0, taught.cfg.vocab_size, (1, 4), generator=torch.Generator().manual_seed(args.seed))
    c = taught.cfg
    print(
        f"\nQwen3 family ({c.n_layers} layers, emb_dim {c.emb_dim}, {c.n_heads} query / {c.n_kv_heads} key-value "
        f"heads, vocab {c.vocab_size}): LlamaQwenModel vs Qwen3ForCausalLM, same random weights"
    )

    def run_hf():
        with torch.inference_mode():
            mask = torch.ones_like(prompt)
            return hf.generate(
                prompt, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0
            )

    def run_ours():
        return generate(ours, prompt, n)

    def run_taught():
        return generate(taught, prompt, n)

    hf_out = run_hf()
    same = torch.equal(hf_out, run_ours()) and torch.equal(hf_out, run_taught())
    print(f"greedy continuations identical ({n} tokens): {same}")
    if not same:
        raise SystemExit("the Qwen3 models disagree, so their timings are not comparable; fix that first")
    rounds = timed_rounds({"hf": run_hf, "ours": run_ours, "taught": run_taught}, args.repeats)
    med = {name: statistics.median(seconds) for name, seconds in rounds.items()}
    per_token = weight_bytes_per_token(ours)
    ceiling = bandwidth / per_token  # the GPT-2 run's bandwidth; see weight_bytes_per_token for what counts
    print(
        f"ceiling: {bandwidth / 2**30:.1f} GiB/s (measured above) / {per_token / 2**20:.1f} MiB of weights per token "
        f"= {ceiling:.1f} tokens/s"
    )
    print(f"generation, {n} new tokens (tokens/s, share of the ceiling):")
    print(f"  ours, KV cache (generate):         {n / med['ours']:8.1f}   {n / med['ours'] / ceiling:4.0%}")
    print(f"  ours, KV cache, taught modules:    {n / med['taught']:8.1f}   {n / med['taught'] / ceiling:4.0%}")
    print(f"  Hugging Face generate(use_cache):  {n / med['hf']:8.1f}   {n / med['hf'] / ceiling:4.0%}")
    ids = torch.randint(0, c.vocab_size, (1, 512), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        reference = hf(ids).logits
        torch.testing.assert_close(ours(ids), reference, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(taught(ids), reference, atol=1e-4, rtol=1e-4)
        fwd_rounds = timed_rounds(
            {"ours": lambda: ours(ids), "hf": lambda: hf(ids), "taught": lambda: taught(ids)}, args.repeats
        )
    fwd = {name: statistics.median(seconds) for name, seconds in fwd_rounds.items()}
    print(
        f"forward latency (1, 512), ms: ours {fwd['ours'] * 1000:.1f}   Hugging Face {fwd['hf'] * 1000:.1f}   "
        f"taught modules {fwd['taught'] * 1000:.1f}"
    )
    # ratios: medians of the rounds' ratios, as for GPT-2
    cached, forward = paired_ratio(rounds["hf"], rounds["ours"]), paired_ratio(fwd_rounds["hf"], fwd_rounds["ours"])
    print(f"  Qwen3 ours cached / Hugging Face tokens/s:  {cached:5.2f}x   (goal: no slower)")
    print(f"  Qwen3 forward (1, 512): Hugging Face time / ours: {forward:5.2f}x")
    cached, forward = (paired_ratio(r["hf"], r["taught"]) for r in (rounds, fwd_rounds))
    print(f"  Qwen3 taught modules: cached {cached:5.2f}x, forward {forward:5.2f}x")


def bench_families(args) -> None:
    """The entries of benchmarks/family_*.py, each against its transformers model (same random weights)."""
    import importlib.util
    from pathlib import Path

    for name in ("deepseek_v3", "gemma3", "qwen3_next"):
        path = Path(__file__).with_name(f"family_{name}.py")
        spec = importlib.util.spec_from_file_location(f"family_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        kwargs = {"new_tokens": 5} if args.tiny else {}  # the tiny run checks the script, not the speed
        module.run(repeats=args.repeats, tiny=args.tiny, **kwargs)


if __name__ == "__main__":
    main()
