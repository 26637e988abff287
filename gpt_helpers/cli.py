"""Command line: generate text, prepare a corpus, pretrain (alone or under torchrun).

python -m gpt_helpers generate "Hello, I am" --max-new-tokens 50
python -m gpt_helpers prepare-data --stdlib --max-mb 3 --out data/stdlib
python -m gpt_helpers pretrain --data data/stdlib --out runs/small --config small.json --steps 200
torchrun --nproc_per_node=2 -m gpt_helpers pretrain ... --strategy fsdp
"""

from __future__ import annotations

import argparse
import math
import os
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


def _fraction(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text!r}")
    return value


def _non_negative_number(text: str) -> float:
    """An argparse type: a finite float >= 0."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _positive_number(text: str) -> float:
    """An argparse type: a finite float > 0."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _add_prepare_parser(sub) -> None:
    prep = sub.add_parser(
        "prepare-data",
        help="text files or folders -> GPT-2 token ids (uint16) in DATA_DIR/train.bin and val.bin, split by document",
    )
    prep.add_argument("inputs", nargs="*", metavar="INPUT", help="text files or folders (*.py, *.txt, *.md, *.rst)")
    prep.add_argument("--out", required=True, help="output folder (DATA_DIR)")
    prep.add_argument(
        "--val-fraction", type=_fraction, default=0.1, help="share of the bytes, in whole documents, for validation"
    )
    prep.add_argument(
        "--stdlib",
        action="store_true",
        help="use this Python's standard library source files (*.py, without tests; PSF licence) as the corpus",
    )
    prep.add_argument(
        "--max-mb", type=_positive_number, default=None, help="with --stdlib: the first MB of files in sorted order"
    )
    prep.add_argument("--license", default=None, help="licence of your corpus, recorded in meta.json")
    prep.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_pretrain_parser(sub) -> None:
    pre = sub.add_parser(
        "pretrain",
        help="train a GPT from scratch on a prepared DATA_DIR; alone, or under torchrun (DDP/FSDP2)",
        description="Train a GPTModel on DATA_DIR/train.bin with AdamW, warmup + cosine decay, clipping, gradient "
        "accumulation, validation and exact-resume checkpoints. Under torchrun --nproc_per_node=N each process "
        "trains on its part of every global batch.",
    )
    pre.add_argument("--data", required=True, help="folder written by prepare-data")
    pre.add_argument("--out", required=True, help="run folder: metrics.jsonl, checkpoints, loss.png")
    model = pre.add_mutually_exclusive_group(required=True)
    model.add_argument("--config", help="JSON file of GPTConfig fields (vocab_size, context_length, emb_dim, ...)")
    model.add_argument("--preset", help="a GPT-2 size: gpt2, gpt2-medium, gpt2-large, gpt2-xl (or 124M, ...)")
    pre.add_argument("--context-length", type=_positive_int, default=None, help="override the config's context")
    pre.add_argument("--steps", type=_positive_int, default=100, help="optimizer steps in total (default 100)")
    pre.add_argument("--batch-size", type=_positive_int, default=8, help="global batch in sequences (default 8)")
    pre.add_argument(
        "--micro-batch-size",
        type=_positive_int,
        default=None,
        help="sequences per process and backward pass; gradient accumulation makes up the rest "
        "(default: batch-size / processes)",
    )
    pre.add_argument("--lr", type=_positive_number, default=6e-4, help="peak learning rate (default 6e-4)")
    pre.add_argument("--min-lr", type=_non_negative_number, default=None, help="final learning rate (default lr/10)")
    pre.add_argument("--warmup", type=_non_negative_int, default=None, help="warmup steps (default steps // 10)")
    pre.add_argument("--weight-decay", type=_non_negative_number, default=0.1, help="AdamW weight decay (0.1)")
    pre.add_argument("--grad-clip", type=_non_negative_number, default=1.0, help="max gradient norm; 0 = off (1.0)")
    pre.add_argument("--eval-every", type=_positive_int, default=50, help="steps between evaluations (default 50)")
    pre.add_argument("--eval-windows", type=_positive_int, default=32, help="validation windows per evaluation (32)")
    pre.add_argument("--save-every", type=_positive_int, default=50, help="steps between checkpoints (default 50)")
    pre.add_argument("--sample-tokens", type=_non_negative_int, default=32, help="tokens of sample text per eval")
    pre.add_argument("--seed", type=_seed, default=123, help="random seed: weights, data order, dropout (123)")
    pre.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    pre.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto", help="default auto")
    pre.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="bfloat16 = bf16 autocast; auto = bf16 on CUDA devices that support it, float32 elsewhere (default)",
    )
    pre.add_argument(
        "--strategy",
        choices=("ddp", "fsdp"),
        default="ddp",
        help="under torchrun: ddp replicates the model; fsdp shards weights, gradients and AdamW state (FSDP2)",
    )
    pre.add_argument(
        "--peak-flops",
        type=_positive_number,
        default=None,
        help="peak FLOP/s of one device for MFU; default: measured at start with float32 1024x1024 matmuls "
        "(0.3 s), so MFU is the share of what this machine reaches, not of a datasheet figure",
    )
    pre.add_argument(
        "--dist-timeout", type=_positive_number, default=300.0, help="seconds a process waits for the others (300)"
    )
    pre.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the gpt_helpers command line."""
    parser = argparse.ArgumentParser(
        prog="python -m gpt_helpers", description="GPT from scratch: generate text, prepare data, pretrain."
    )
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
    _add_prepare_parser(sub)
    _add_pretrain_parser(sub)
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


def _prepare_data(args, parser) -> int:
    import sysconfig

    from .training.data import STDLIB_LICENSE, prepare_data, stdlib_sources

    if args.stdlib == bool(args.inputs):
        parser.error("give INPUT files or folders, or --stdlib (one of the two)")
    if args.max_mb is not None and not args.stdlib:
        parser.error("--max-mb applies to --stdlib only")
    if args.stdlib:
        max_bytes = None if args.max_mb is None else int(args.max_mb * 1_000_000)
        inputs, root, license_ = stdlib_sources(max_bytes), sysconfig.get_paths()["stdlib"], STDLIB_LICENSE
    else:
        inputs, root, license_ = args.inputs, None, args.license
    meta = prepare_data(
        inputs, args.out, val_fraction=args.val_fraction, license=license_, root=root, progress=not args.no_progress
    )
    print(
        f"{len(meta['sources'])} documents -> {args.out}: train {meta['train']['tokens']:,} tokens "
        f"({meta['train']['documents']} documents), val {meta['val']['tokens']:,} tokens "
        f"({meta['val']['documents']} documents)"
    )
    return 0


def _model_config(args, parser):
    import json

    from .gpt2.config import GPTConfig

    if args.preset is not None:
        cfg = GPTConfig.from_preset(args.preset)
    else:
        path = Path(args.config)
        if not path.is_file():
            parser.error(f"--config: no file {path}")
        try:
            fields = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            parser.error(f"--config: {path} is not JSON ({err})")
        if not isinstance(fields, dict):
            parser.error(f"--config: {path} must hold a JSON object of GPTConfig fields")
        try:
            cfg = GPTConfig().with_(**fields)
        except (TypeError, ValueError) as err:
            parser.error(f"--config: {err}")
    if args.context_length is not None:
        cfg = cfg.with_(context_length=args.context_length)
    return cfg


def _pretrain(args, parser) -> int:
    from .training.pretraining import PretrainSettings, pretrain, setup_distributed

    cfg = _model_config(args, parser)
    warmup = args.steps // 10 if args.warmup is None else args.warmup
    if warmup >= args.steps:
        parser.error(f"--warmup ({warmup}) must be smaller than --steps ({args.steps})")
    min_lr = args.lr / 10 if args.min_lr is None else args.min_lr
    if min_lr > args.lr:
        parser.error(f"--min-lr ({min_lr}) must not exceed --lr ({args.lr})")
    settings = PretrainSettings(
        steps=args.steps,
        batch_size=args.batch_size,
        micro_batch_size=args.micro_batch_size,
        lr=args.lr,
        min_lr=min_lr,
        warmup=warmup,
        weight_decay=args.weight_decay,
        grad_clip=args.grad_clip,
        eval_every=args.eval_every,
        eval_windows=args.eval_windows,
        save_every=args.save_every,
        seed=args.seed,
        sample_tokens=args.sample_tokens,
    )
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    try:
        settings.micro_batches(world_size)
    except ValueError as err:
        parser.error(f"--batch-size/--micro-batch-size: {err}")
    env = setup_distributed(args.device, args.dist_timeout)
    try:
        records = pretrain(
            args.data,
            args.out,
            cfg,
            settings,
            resume=args.resume,
            dtype=args.dtype,
            strategy=args.strategy,
            peak_flops=args.peak_flops,
            progress=not args.no_progress,
            env=env,
        )
    finally:
        if env.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if env.is_main:
        last = [r for r in records if "val_loss" in r]
        summary = f", val_loss {last[-1]['val_loss']:.3f}, val_ppl {last[-1]['val_ppl']:.1f}" if last else ""
        print(f"done: {settings.steps} steps{summary}; checkpoint, metrics.jsonl and loss.png in {args.out}")
    return 0


def _print_error(exc: BaseException) -> None:
    """One line on stderr; under torchrun it names the rank (only rank 0 reports errors every rank shares)."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        print(f"error: {exc}", file=sys.stderr)
    elif rank == 0 or not isinstance(exc, (OSError, ValueError)):
        print(f"error (rank {rank} of {world}): {exc}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m gpt_helpers`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("prepare-data", "pretrain"):
        try:
            return (_prepare_data if args.command == "prepare-data" else _pretrain)(args, parser)
        except (OSError, ValueError, RuntimeError) as exc:  # one line, no traceback; torchrun ends the other ranks
            _print_error(exc)
            return 2 if isinstance(exc, (OSError, ValueError)) else 1
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130
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
