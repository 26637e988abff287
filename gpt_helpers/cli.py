"""Command line: python -m gpt_helpers generate "Hello, I am" --max-new-tokens 50."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

__all__ = ["main", "build_parser"]


def _int_at_least(low: int):
    """An argparse type: an int >= low, with a one-line message for anything else."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


_positive_int, _non_negative_int = _int_at_least(1), _int_at_least(0)


def _number(text: str) -> float:
    """An argparse type: a finite float (nan and inf are refused here, with the option's name)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _seed(text: str) -> int:
    """An argparse type: an int that torch.manual_seed accepts."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not -(2**63) <= value < 2**64:
        raise argparse.ArgumentTypeError(f"must be in [-2**63, 2**64), got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the gpt_helpers command line."""
    parser = argparse.ArgumentParser(prog="python -m gpt_helpers", description="GPT from scratch: generate text.")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="continue a prompt, streaming tokens as they are produced")
    gen.add_argument("prompt", help="text to continue")
    gen.add_argument("--max-new-tokens", type=_non_negative_int, default=50, help="tokens to generate (default 50)")
    gen.add_argument(
        "--weights",
        help="a Hugging Face checkpoint folder (GPT-2, Llama, Qwen3), a GPT-2 model.safetensors or a save_model() "
        "file; default: untrained 124M model",
    )
    gen.add_argument("--temperature", type=_number, default=0.0, help="0 = greedy (default); > 0 samples")
    gen.add_argument("--top-k", type=_positive_int, default=None, help="sample among the k most likely tokens")
    gen.add_argument("--top-p", type=_number, default=None, help="sample from the smallest set with mass >= p")
    gen.add_argument("--seed", type=_seed, default=123, help="random seed for weights and sampling (default 123)")
    gen.add_argument("--no-cache", action="store_true", help="recompute every step instead of using the KV cache")
    gen.add_argument("--stop-at-eos", action="store_true", help="stop at <|endoftext|>")
    return parser


def _load_model(weights: str | None, seed: int, out):
    from .checkpoints.hf import load_hf_checkpoint
    from .checkpoints.weights import read_safetensors_metadata
    from .gpt2.config import GPTConfig
    from .gpt2.model import GPTModel
    from .speed.fused import optimize_for_inference
    from .training.loop import CONFIG_METADATA_KEY, load_model

    if weights is None:
        print(
            "note: no --weights given, so this is the UNTRAINED 124M model (random weights): expect gibberish.\n"
            "      Pass --weights PATH/TO/model.safetensors for real GPT-2 text.",
            file=out,
        )
        torch.manual_seed(seed)
        return optimize_for_inference(GPTModel(GPTConfig(drop_rate=0.0)))
    # reading the header checks the file: a damaged or wrong one raises a one-line ValueError
    if Path(weights, "config.json").is_file() or Path(weights).name == "model.safetensors.index.json":
        model = load_hf_checkpoint(weights)  # config.json names the model type; the weights may be sharded
    elif CONFIG_METADATA_KEY in read_safetensors_metadata(weights):
        model = load_model(weights)  # written by save_model() (notebook 08): the config is in the file
    else:
        model = load_hf_checkpoint(weights)  # GPT-2 layout; config.json beside the file is used if present
    return optimize_for_inference(model)  # same results, faster decoding


def _generate(args, out, err) -> int:
    from .checkpoints.hf import tokenizer_for_checkpoint
    from .text.generation import stream_generate
    from .text.tokenizer import END_OF_TEXT_ID, text_to_token_ids

    # the tokenizer first: a missing library or tokenizer file fails before GiBs of weights are read
    tokenizer = tokenizer_for_checkpoint(args.weights)  # tokenizer.json beside the weights, else GPT-2's
    model = _load_model(args.weights, args.seed, err)
    idx = text_to_token_ids(args.prompt, tokenizer)
    if idx.shape[1] == 0:
        print("error: the prompt is empty; give some text to continue", file=err)
        return 2
    if model.cfg.vocab_size < tokenizer.n_vocab:
        print(
            f"error: the checkpoint's vocabulary ({model.cfg.vocab_size}) is smaller than the tokenizer's "
            f"({tokenizer.n_vocab})",
            file=err,
        )
        return 2
    out.write(args.prompt)
    out.flush()
    produced, pending = 0, []
    start = time.perf_counter()
    stream = stream_generate(
        model,
        idx,
        args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        eos_id=getattr(tokenizer, "eos_id", END_OF_TEXT_ID) if args.stop_at_eos else None,
        use_cache=not args.no_cache,
    )
    for token in stream:
        produced += 1
        pending.append(int(token[0, 0]))
        # a character may span several byte-level tokens: print once the bytes decode cleanly
        piece = tokenizer.decode_bytes(pending)
        try:
            text = piece.decode("utf-8")
        except UnicodeDecodeError:
            continue
        out.write(text)
        out.flush()
        pending = []
    if pending:
        out.write(tokenizer.decode(pending))
    elapsed = time.perf_counter() - start
    out.write("\n")
    rate = produced / elapsed if elapsed > 0 else float("inf")
    print(f"[{produced} tokens in {elapsed:.2f} s: {rate:.1f} tokens/s]", file=err)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m gpt_helpers`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.temperature < 0:
        parser.error(f"--temperature must be >= 0, got {args.temperature}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        parser.error(f"--top-p must be in (0, 1], got {args.top_p}")
    try:
        return _generate(args, sys.stdout, sys.stderr)
    except (OSError, ValueError) as exc:  # a missing, unreadable or damaged file: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:  # an optional library, e.g. tokenizers for a checkpoint's tokenizer.json
        hint = "" if "pip install" in str(exc) else f"; pip install {exc.name}" if exc.name else ""
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while streaming: end the line, no traceback
        print("\ninterrupted", file=sys.stderr)
        return 130
