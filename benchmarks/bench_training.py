"""Benchmark: one pretraining step of our GPTModel against Hugging Face GPT2LMHeadModel, same weights and batch.

A step is what `python -m gpt_helpers pretrain` does: zero the gradients, forward, cross-entropy, backward
(accumulate_gradients), clip the gradient norm to 1.0, AdamW step. Three contenders:
  ours (pretrain)   the model as pretrain() trains it (use_fused_kernels: fused LayerNorm/GELU, same parameters)
  ours (as taught)  the modules exactly as the notebooks write them
  Hugging Face      GPT2LMHeadModel (sdpa attention) with the same loss, clipping and AdamW
It first checks that the losses and gradients agree, then times the steps round-robin (timed_rounds of
bench_generation.py) and prints tokens/s, the median of the per-round ratios and the ratio of the medians.
Run it on a quiet machine:
    python benchmarks/bench_training.py                 # GPT-2 124M shapes, batch 4 x 256 tokens
    python benchmarks/bench_training.py --tiny          # a 2-layer model in seconds: checks the script only
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generation import paired_ratio, timed_rounds  # noqa: E402


def build_models(seed: int, tiny: bool, context: int):
    """Hugging Face GPT-2 (random init, no dropout) and the same weights in our GPTModel (taught and fused)."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging

    from gpt_helpers import GPTModel, use_fused_kernels
    from gpt_helpers.checkpoints.weights import config_from_hf_state_dict, load_hf_gpt2_weights

    logging.set_verbosity_error()
    torch.manual_seed(seed)
    shapes = {"n_embd": 64, "n_layer": 2, "n_head": 4} if tiny else {}  # default: gpt2 (124M) shapes
    hf_cfg = GPT2Config(n_positions=context, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **shapes)
    hf = GPT2LMHeadModel(hf_cfg).train()
    cfg = config_from_hf_state_dict(hf.state_dict(), n_heads=hf.config.n_head).with_(drop_rate=0.0)
    taught = load_hf_gpt2_weights(GPTModel(cfg), hf.state_dict()).train()
    fused = use_fused_kernels(copy.deepcopy(taught))
    return hf, taught, fused


def make_step(model, x, y, hf: bool):
    """One training step function: forward, loss, backward, clip to 1.0, AdamW (betas 0.9, 0.95, wd 0.1)."""
    from gpt_helpers.training.optim import accumulate_gradients, clip_gradients, param_groups

    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4, betas=(0.9, 0.95))

    class Logits(torch.nn.Module):  # Hugging Face returns an output object; the loss wants the logits
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, idx):
            return self.inner(idx).logits

    net = Logits(model) if hf else model

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = accumulate_gradients(net, [(x, y)])
        clip_gradients(model, 1.0)
        optimizer.step()
        return loss

    return step


def check_same(hf, ours, x, y) -> tuple[float, float]:
    """Loss difference and largest relative gradient difference (token embedding) between the two models."""
    losses, grads = [], []
    for model, is_hf in ((hf, True), (ours, False)):
        model.zero_grad()
        logits = model(x).logits if is_hf else model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        loss.backward()
        losses.append(loss.item())
        grads.append((model.transformer.wte.weight if is_hf else model.tok_emb.weight).grad.clone())
        model.zero_grad()
    rel = float((grads[0] - grads[1]).norm() / grads[0].norm())
    return abs(losses[0] - losses[1]), rel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="a tiny 2-layer model: checks the script runs, not speed")
    args = parser.parse_args()
    if args.tiny:
        args.context = min(args.context, 32)
    from roofline import cpu_model  # the model name from /proc/cpuinfo

    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    hf, taught, fused = build_models(args.seed, args.tiny, args.context)
    gen = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, hf.config.vocab_size, (args.batch_size, args.context + 1), generator=gen)
    x, y = ids[:, :-1], ids[:, 1:]  # (B, T): target t is input t + 1
    for name, model in (("taught", taught), ("pretrain", fused)):
        dloss, dgrad = check_same(hf, model, x, y)
        print(f"same loss and gradients as Hugging Face ({name}): loss diff {dloss:.1e}, grad rel diff {dgrad:.1e}")
        if dloss > 1e-4 or dgrad > 1e-3:
            raise SystemExit(f"ours ({name}) does not compute what Hugging Face computes; not timing")
    steps = {
        "ours (pretrain)": make_step(fused, x, y, hf=False),
        "ours (as taught)": make_step(taught, x, y, hf=False),
        "Hugging Face": make_step(hf, x, y, hf=True),
    }
    times = timed_rounds(steps, args.repeats, warmup=1)
    tokens = args.batch_size * args.context
    print(f"one step = batch {args.batch_size} x {args.context} tokens; median of {args.repeats} rounds")
    for name, t in times.items():
        print(f"{name:18s} {tokens / statistics.median(t):10.1f} tokens/s  ({statistics.median(t) * 1000:.1f} ms)")
    for name in ("ours (pretrain)", "ours (as taught)"):
        per_round = paired_ratio(times["Hugging Face"], times[name])
        of_medians = statistics.median(times["Hugging Face"]) / statistics.median(times[name])
        print(
            f"{name} / Hugging Face tokens/s: {per_round:.2f}x (median of rounds; ratio of medians {of_medians:.2f}x)"
        )


if __name__ == "__main__":
    main()
