"""Roofline of this machine, measured: peak matmul throughput, read bandwidth, and prefill and decoding points.

One run measures everything notebook 16 quotes: float32 GEMM GFLOP/s (large square matmul, torch's threads),
read bandwidth (sum() passes over a large tensor, the probe of bench_generation.py), then prefill of several
lengths (batch 1) and one cached decoding step at several batch sizes, for a dense GPT-2 124M-shaped model
and a Qwen3-MoE-shaped model of similar total size (random weights). Each point's FLOPs are counted by
torch.utils.flop_counter on the same call and checked against the formula (gpt_helpers.speed.cost); its
bytes are the minimum the call must read (every weight it touches once, the KV cache it attends to); its
time is the median of --repeats runs. Writes benchmarks/results/roofline.json and .txt. Run it on a quiet
machine (no tests, no notebook kernels):
    python benchmarks/roofline.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench_generation.py's read-bandwidth probe
from bench_generation import read_bandwidth_probe  # noqa: E402

SCHEMA_VERSION = 1


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    """Total RAM in GiB from /proc/meminfo (Linux), else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)  # kB -> GiB
    except OSError:
        pass
    return None


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall-clock seconds of fn() over `repeats` runs, after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_matmul(n: int, repeats: int) -> dict:
    """FLOP/s of an (n, n) @ (n, n) float32 matmul (2 n^3 FLOPs): the best and the median of the runs."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - start)
    flops = 2 * n**3
    return dict(n=n, flops_best=flops / min(times), flops_median=flops / statistics.median(times))


def read_bandwidth(mib: int, passes: int) -> dict:
    """Bytes per second of sum() over a float32 tensor of `mib` MiB: the best and the median pass."""
    probe, seconds, nbytes = read_bandwidth_probe(mib, passes)
    probe()  # warm up (the first pass may fault pages in)
    seconds.clear()
    probe()
    return dict(mib=mib, bytes_best=nbytes / min(seconds), bytes_median=nbytes / statistics.median(seconds))


def dense_config(quick: bool) -> dict:
    """GPT-2 124M's config.json (tied head, q/k/v biases, as OpenAI released it); a tiny one with --quick."""
    from gpt_helpers.checkpoints.hf import HF_CONFIGS

    tiny = dict(n_embd=64, n_layer=2, n_head=4, n_positions=128, n_ctx=128)
    return HF_CONFIGS["openai-community/gpt2"] | (tiny if quick else {})


def moe_config(quick: bool) -> dict:
    """A Qwen3-MoE config.json of about GPT-2's total size: 32 experts, 2 per token (Qwen3-30B-A3B: 8 of 128).

    GPT-2's width, depth, vocabulary and tied head; grouped-query attention with 4 key/value heads; every
    layer's FFN is mixture of experts with 80-wide experts, so the total is close to GPT-2's 124M.
    """
    sizes = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16)
    if not quick:
        sizes = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=4, head_dim=64)
    return dict(
        model_type="qwen3_moe",
        architectures=["Qwen3MoeForCausalLM"],
        vocab_size=50257,
        max_position_embeddings=128 if quick else 1024,
        intermediate_size=4 * sizes["hidden_size"],
        moe_intermediate_size=16 if quick else 80,
        num_experts=32,
        num_experts_per_tok=2,
        norm_topk_prob=True,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        tie_word_embeddings=True,
        rms_norm_eps=1e-6,
        rope_theta=1000000,
        attention_bias=False,
        hidden_act="silu",
        **sizes,
    )


def build(config: dict) -> torch.nn.Module:
    """The course's model for a config.json, random weights (seed 0), in eval mode."""
    from gpt_helpers import model_from_hf_config

    torch.manual_seed(0)
    return model_from_hf_config(config).eval()


def moe_layers(model: torch.nn.Module) -> list:
    """The model's mixture-of-experts layers (they keep the experts chosen in their last call)."""
    from gpt_helpers.families.moe import MoEFeedForward

    return [m for m in model.modules() if isinstance(m, MoEFeedForward)]


def bytes_read(model: torch.nn.Module, n_tokens: int, kv_positions: int) -> dict:
    """The fewest bytes one call must read: weights it touches once, one row per looked-up token, the KV cache.

    Call it right after the measured call: a mixture-of-experts layer's routed experts count only for the
    distinct experts its last call chose. kv_positions is the number of cached positions attended to (all
    sequences together). Activations are left out (they are small next to the weights in these points).
    """
    from bench_generation import kv_cache_bytes_per_position

    heads = {id(m.weight) for name, m in model.named_modules() if name.split(".")[-1] in ("out_head", "lm_head")}
    lookup = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)} - heads
    layers = moe_layers(model)
    routed = {id(p) for layer in layers for p in layer.experts.parameters()}
    weights = sum(p.numel() * p.element_size() for p in model.parameters() if id(p) not in lookup | routed)
    rows = sum(
        m.weight.shape[1] * m.weight.element_size() for m in model.modules() if id(getattr(m, "weight", None)) in lookup
    )
    experts = 0
    distinct = []
    for layer in layers:
        per_expert = sum(p.numel() * p.element_size() for p in layer.experts.parameters()) // layer.n_experts
        distinct.append(int(layer.last_experts.unique().numel()))
        experts += distinct[-1] * per_expert
    kv = kv_positions * kv_cache_bytes_per_position(model)
    return dict(
        weights=weights + experts,
        rows=rows * n_tokens,
        kv_cache=kv,
        total=weights + experts + rows * n_tokens + kv,
        distinct_experts=distinct,
    )


def measure_model(name: str, config: dict, prefill_lengths, batches, context: int, repeats: int) -> list:
    """Prefill points (batch 1, each length) and cached decoding points (one step after `context` tokens)."""
    from gpt_helpers import KVCache, attention_shape, counted_flops, forward_flops, parameter_formula

    model = build(config)
    counts = parameter_formula(config)
    attention = attention_shape(config)
    vocab_size = config["vocab_size"]
    generator = torch.Generator().manual_seed(1)
    points = []

    def point(kind, batch, n_tokens, ctx, call, reset):
        reset()
        flops = counted_flops(model, *call())  # one counted call
        reset()
        with torch.inference_mode():
            model(*call())
        nbytes = bytes_read(model, batch * n_tokens, batch * (ctx + n_tokens) if ctx else 0)

        def run():
            reset()
            with torch.inference_mode():
                model(*call())

        seconds = median_seconds(run, repeats)
        formula = batch * forward_flops(counts["active_matrix"], attention, n_tokens, ctx, causal=False)
        row = dict(
            model=name,
            kind=kind,
            batch=batch,
            new_tokens=n_tokens,
            context=ctx,
            flops=flops,
            formula_flops=formula,
            bytes=nbytes["total"],
            weight_bytes=nbytes["weights"],
            kv_bytes=nbytes["kv_cache"],
            distinct_experts=nbytes["distinct_experts"],
            seconds=seconds,
            intensity=flops / nbytes["total"],
            flops_per_second=flops / seconds,
        )
        print(
            f"{name:5} {kind:7} batch {batch:3} tokens {n_tokens:5} context {ctx:4}: {flops / 1e9:8.3f} GFLOP "
            f"(formula {formula / flops:.4f}x), {nbytes['total'] / 2**20:8.1f} MiB, {row['intensity']:7.2f} FLOP/B, "
            f"{seconds * 1e3:8.2f} ms, {row['flops_per_second'] / 1e9:7.1f} GFLOP/s"
        )
        points.append(row)

    for length in prefill_lengths:
        idx = torch.randint(0, vocab_size, (1, length), generator=generator)
        point("prefill", 1, length, 0, lambda idx=idx: (idx,), lambda: None)
    for batch in batches:
        prompt = torch.randint(0, vocab_size, (batch, context), generator=generator)
        step = torch.randint(0, vocab_size, (batch, 1), generator=generator)
        cache = KVCache.for_model(model, batch, max_len=context + 1)
        with torch.inference_mode():
            model(prompt, cache=cache)

        def reset(cache=cache):
            for layer in cache.layers:  # back to the prompt's positions: every timed step sees the same cache
                layer.length = context

        point("decode", batch, 1, context, lambda step=step, cache=cache: (step, cache), reset)
    return points


def report(result: dict) -> str:
    """The results as text: the machine, the two ceilings, and one line per point."""
    m, peak, bw = result["machine"], result["peak_matmul"], result["read_bandwidth"]
    lines = [
        f"# {result['command']}",
        f"# {result['date']}; {m['cpu']}, {m['cores']} cores, {m['threads']} threads, torch {m['torch']}; "
        f"load average before {m['load_average_before'][0]}, after {result['load_average_after'][0]}",
        f"peak float32 matmul ({peak['n']}x{peak['n']}): best {peak['flops_best'] / 1e9:.1f} GFLOP/s, "
        f"median {peak['flops_median'] / 1e9:.1f}",
        f"read bandwidth (sum over {bw['mib']} MiB): best {bw['bytes_best'] / 2**30:.1f} GiB/s, "
        f"median {bw['bytes_median'] / 2**30:.1f}",
        f"ridge point: {peak['flops_best'] / bw['bytes_best']:.1f} FLOP/byte",
        "model kind    batch tokens context     GFLOP  formula/counted    MiB read  FLOP/byte        ms  GFLOP/s",
    ]
    for p in result["points"]:
        lines.append(
            f"{p['model']:5} {p['kind']:7} {p['batch']:5} {p['new_tokens']:6} {p['context']:7} {p['flops'] / 1e9:9.3f} "
            f"{p['formula_flops'] / p['flops']:16.4f} {p['bytes'] / 2**20:11.1f} {p['intensity']:10.2f} "
            f"{p['seconds'] * 1e3:9.2f} {p['flops_per_second'] / 1e9:8.1f}"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Measure, print, and write the JSON and text results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models and sizes: checks the script, not speed")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per point (5; 2 with --quick)")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "roofline.json")
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 5)
    started = datetime.datetime.now(datetime.UTC)
    load_before = os.getloadavg()
    result = dict(
        schema_version=SCHEMA_VERSION,
        date=started.strftime("%Y-%m-%d %H:%M UTC"),
        command="python benchmarks/roofline.py" + "".join(f" {a}" for a in sys.argv[1:]),
        quick=args.quick,
        machine=dict(
            cpu=cpu_model(),
            cores=os.cpu_count(),
            memory_gib=memory_gib(),
            threads=torch.get_num_threads(),
            torch=torch.__version__,
            python=platform.python_version(),
            load_average_before=[round(x, 2) for x in load_before],
        ),
    )
    print(
        f"{result['date']}: {result['machine']['cpu']}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, load average {load_before[0]:.2f}"
    )
    result["peak_matmul"] = peak_matmul(256 if args.quick else 2048, repeats=max(3, repeats))
    result["read_bandwidth"] = read_bandwidth(64 if args.quick else 512, passes=max(3, repeats))
    print(
        f"peak float32 matmul: {result['peak_matmul']['flops_best'] / 1e9:.1f} GFLOP/s (best), "
        f"read bandwidth: {result['read_bandwidth']['bytes_best'] / 2**30:.1f} GiB/s (best)"
    )
    prefill_lengths = [8, 32] if args.quick else [16, 64, 256, 1024]
    batches = [1, 4] if args.quick else [1, 4, 16, 64]
    context = 16 if args.quick else 256
    points = []
    result["configs"] = dict(dense=dense_config(args.quick), moe=moe_config(args.quick))
    for name, config in result["configs"].items():
        points += measure_model(name, config, prefill_lengths, batches, context, repeats)
    result["context"] = context
    result["points"] = points
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    args.output.with_suffix(".txt").write_text(report(result))
    print(report(result), end="")
    print(f"wrote {args.output} and {args.output.with_suffix('.txt')}")


if __name__ == "__main__":
    main()
