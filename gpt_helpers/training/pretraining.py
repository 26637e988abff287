"""Pretraining that scales: schedule, weight decay groups, accumulation, exact checkpoints, DDP/FSDP2 (issue 20)."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import random
import shutil
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from ..gpt2.config import GPTConfig
from ..gpt2.model import GPTModel, count_parameters
from ..speed.fused import use_fused_kernels
from ..text.tokenizer import get_gpt2_tokenizer
from .data import WindowSampler, eval_windows, load_data_dir
from .loop import CONFIG_METADATA_KEY, load_model, save_model
from .optim import accumulate_gradients, clip_gradients, lr_at, param_groups

__all__ = [
    "PretrainSettings",
    "flops_per_token",
    "matmul_parameters",
    "measure_peak_flops",
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "Distributed",
    "setup_distributed",
    "wrap_model",
    "pretrain",
]

CHECKPOINT_POINTER = "checkpoint.json"  # names the last complete checkpoint folder; replaced atomically


def flops_per_token(cfg: GPTConfig, n_params: int) -> int:
    """Training FLOPs per token: 6 per matrix parameter (forward 2, backward 4) plus attention's 12 * L * C * T."""
    return 6 * n_params + 12 * cfg.n_layers * cfg.emb_dim * cfg.context_length


def matmul_parameters(model: GPTModel) -> int:
    """Parameters a token multiplies: all but the position table, and the token table unless it is the head."""
    n = count_parameters(model) - model.pos_emb.weight.numel()
    if model.tok_emb.weight is not model.out_head.weight:  # untied: the token table is only looked up
        n -= model.tok_emb.weight.numel()
    return n


def measure_peak_flops(device: torch.device, size: int = 1024, seconds: float = 0.3) -> float:
    """FLOP/s of repeated size x size float32 matmuls on device: this machine's reachable peak, measured."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b  # warm up
    n, start = 0, time.perf_counter()
    while True:
        a @ b
        n += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return 2 * size**3 * n / elapsed


@dataclasses.dataclass(frozen=True)
class PretrainSettings:
    """The hyper-parameters of a pretraining run (all of them stored in every checkpoint)."""

    steps: int = 100
    batch_size: int = 8  # the global batch, in sequences, over all processes
    micro_batch_size: int | None = None  # per process and backward pass; None: batch_size // world_size
    lr: float = 6e-4
    min_lr: float = 6e-5
    warmup: int = 10
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 50
    eval_windows: int = 32
    save_every: int = 50
    seed: int = 123
    sample_tokens: int = 32

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "eval_windows", "save_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        for name in ("warmup", "sample_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        if self.micro_batch_size is not None and (
            isinstance(self.micro_batch_size, bool)
            or not isinstance(self.micro_batch_size, int)
            or self.micro_batch_size < 1
        ):
            raise ValueError(f"micro_batch_size must be a whole number >= 1, got {self.micro_batch_size!r}")
        for name in ("lr", "min_lr", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.lr == 0:
            raise ValueError("lr must be > 0")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        if self.warmup >= self.steps:
            raise ValueError(f"warmup ({self.warmup}) must be smaller than steps ({self.steps})")

    def micro_batches(self, world_size: int) -> tuple[int, int]:
        """(micro_batch_size, micro-batches per step) on each of world_size processes; checks they divide."""
        if self.batch_size % world_size:
            raise ValueError(
                f"batch_size {self.batch_size} does not divide among {world_size} processes; "
                f"use a multiple of {world_size}"
            )
        per_rank = self.batch_size // world_size
        micro = per_rank if self.micro_batch_size is None else self.micro_batch_size
        if per_rank % micro:
            raise ValueError(
                f"micro_batch_size {micro} does not divide the {per_rank} sequences per process "
                f"(batch_size {self.batch_size} / {world_size} processes); pick a divisor of {per_rank}"
            )
        return micro, per_rank // micro


# ---------------------------------------------------------------- checkpoints


def _fsync_dir(path: Path) -> None:
    """Flush a folder's entries (new and renamed files) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The folder of the last complete checkpoint in run_dir, or None."""
    pointer = Path(run_dir) / CHECKPOINT_POINTER
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{pointer} is damaged; delete it to start over, or restore it") from None
    folder = Path(run_dir) / name
    if not folder.is_dir():
        raise ValueError(f"{pointer} names {name}, which is missing; the run folder was changed by hand")
    return folder


def save_checkpoint(run_dir: str | Path, step: int, model: GPTModel, state: dict) -> Path:
    """Write model.safetensors and state.pt into run_dir/ckpt-STEP, then point checkpoint.json at it.

    Each file is written and fsynced before checkpoint.json is replaced (os.replace is atomic), so a
    crash at any moment leaves the previous checkpoint as the current one. Older folders are removed after.
    """
    run_dir = Path(run_dir)
    folder = run_dir / f"ckpt-{step:07d}"
    tmp = run_dir / f".tmp-ckpt-{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)  # left over from a crash during an earlier save
    tmp.mkdir(parents=True)
    save_model(model, tmp / "model.safetensors")  # weights + GPTConfig, no pickle
    torch.save(state, tmp / "state.pt")  # optimizer, schedule step, RNG states, data position, settings
    for name in ("model.safetensors", "state.pt"):
        with open(tmp / name, "rb") as f:
            os.fsync(f.fileno())
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    _fsync_dir(run_dir)
    pointer_tmp = run_dir / (CHECKPOINT_POINTER + ".tmp")
    with open(pointer_tmp, "w", encoding="utf-8") as f:
        json.dump({"checkpoint": folder.name, "step": step}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(pointer_tmp, run_dir / CHECKPOINT_POINTER)  # the moment the new checkpoint becomes current
    _fsync_dir(run_dir)
    for old in run_dir.glob("ckpt-*"):
        if old.name != folder.name:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def load_checkpoint(folder: str | Path, cfg: GPTConfig | None = None) -> tuple[GPTModel, dict]:
    """Read a checkpoint folder: the model (checked against cfg when given) and the state dict."""
    folder = Path(folder)
    model = load_model(folder / "model.safetensors")  # a damaged file raises a one-line ValueError
    if cfg is not None and model.cfg != cfg:
        diff = [
            f"{f.name} {getattr(model.cfg, f.name)!r} (run: {getattr(cfg, f.name)!r})"
            for f in dataclasses.fields(cfg)
            if getattr(model.cfg, f.name) != getattr(cfg, f.name)
        ]
        raise ValueError(
            f"the checkpoint in {folder.parent} was made with another model config: {', '.join(diff)}; "
            "resume with the same --config/--preset, or train into a new --out"
        )
    try:
        state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a truncated or foreign file
        raise ValueError(
            f"{folder / 'state.pt'} is damaged ({type(err).__name__}); resume from an intact run"
        ) from None
    if not isinstance(state, dict) or "optimizer" not in state:
        raise ValueError(f"{folder / 'state.pt'} is not a pretraining checkpoint state")
    return model, state


# ---------------------------------------------------------------- distributed


@dataclasses.dataclass
class Distributed:
    """Where this process runs: rank, world size, device; rank 0 alone writes files and prints."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints."""
        return self.rank == 0


def _pick_device(device: str, local_rank: int) -> torch.device:
    """auto: cuda if available, then mps, else cpu; a requested device that is missing is an error."""
    if device not in ("auto", "cpu", "cuda", "mps"):
        raise ValueError(f"device must be auto, cpu, cuda or mps, got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available here; use --device cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps: MPS is not available here; use --device cpu")
    return torch.device(device)


def setup_distributed(device: str = "auto", timeout_s: float = 300.0) -> Distributed:
    """Join the torchrun process group if launched by torchrun (gloo on CPU, NCCL on CUDA), else one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _pick_device(device, local_rank)
    if world_size == 1:
        return Distributed(device=dev)
    if dev.type == "mps":
        raise ValueError("torchrun with --device mps is not supported (no MPS process group); use cpu")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    # a timeout on every collective: a rank that died makes the others fail instead of waiting for ever
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank, dev, True)


def wrap_model(model: GPTModel, env: Distributed, strategy: str = "ddp") -> nn.Module:
    """DDP (every rank holds all weights, gradients averaged) or FSDP2 (weights, gradients, Adam state sharded)."""
    if strategy not in ("ddp", "fsdp"):
        raise ValueError(f"strategy must be ddp or fsdp, got {strategy!r}")
    if not env.enabled:
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    if env.device.type == "cpu" and version < (2, 6):  # torch 2.5's FSDP2 needs CUDA streams
        raise ValueError(
            f"--strategy fsdp on CPU needs torch 2.6 or newer (this is torch {torch.__version__}); "
            "use --strategy ddp, or upgrade torch"
        )
    try:
        from torch.distributed.fsdp import fully_shard  # public from torch 2.6
    except ImportError:  # torch 2.5, the lowest version pyproject.toml allows: FSDP2 under its first name
        from torch.distributed._composable.fsdp import fully_shard

    for block in model.trf_blocks:  # one shard group per block: gathered just before it runs, freed after
        fully_shard(block)
    fully_shard(model)  # the rest: embeddings, final norm, head
    return model


def _no_sync(model: nn.Module, strategy: str, enabled: bool):
    """A function last -> context that skips the gradient all-reduce except on the last micro-batch."""
    if not enabled:
        return None
    if strategy == "ddp":
        return lambda last: nullcontext() if last else model.no_sync()

    def fsdp(last):
        model.set_requires_gradient_sync(last)  # FSDP2: reduce-scatter only on the last micro-batch
        return nullcontext()

    return fsdp


def _mean_over_ranks(value: float, env: Distributed) -> float:
    """Average of one float over all processes (itself in a single process)."""
    if not env.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return float(t.item()) / env.world_size


def _full_states(model: nn.Module, optimizer, env: Distributed, strategy: str) -> tuple[dict | None, dict | None]:
    """The whole model and optimizer state on rank 0 (gathered from the shards under FSDP)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    inner = model.module if hasattr(model, "module") else model
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_sd = get_model_state_dict(inner, options=options)
    optim_sd = get_optimizer_state_dict(inner, optimizer, options=options)
    return (model_sd, optim_sd) if env.is_main else (None, None)


def _set_optimizer_state(model: nn.Module, optimizer, optim_sd: dict) -> None:
    """Load a full optimizer state (as _full_states gathered it) into the optimizer of a possibly sharded model."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    inner = model.module if hasattr(model, "module") else model
    set_optimizer_state_dict(inner, optimizer, optim_sd, options=StateDictOptions(full_state_dict=True))


def _rng_state(env: Distributed) -> dict:
    """This process's random generators: torch (CPU and the device's) and Python's."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if env.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(env.device)
    return state


def _set_rng_state(state: dict, env: Distributed) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and env.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], env.device)


def _gather_objects(obj, env: Distributed) -> list:
    """obj of every rank, in rank order (on every rank)."""
    if not env.enabled:
        return [obj]
    out = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def _check_fail_hook(step: int, env: Distributed) -> None:
    """Test hook: GPT_HELPERS_FAIL_AT=RANK:STEP makes that rank raise at that step (tests a failing rank)."""
    spec = os.environ.get("GPT_HELPERS_FAIL_AT")
    if spec and spec == f"{env.rank}:{step}":
        raise RuntimeError(f"simulated failure (GPT_HELPERS_FAIL_AT={spec})")


# ---------------------------------------------------------------- the loop


def _plot_losses(records: list[dict], path: Path) -> None:
    """loss.png: training loss per step and validation loss per evaluation."""
    from matplotlib.figure import Figure

    steps = [r["step"] for r in records if "loss" in r]
    evals = [r for r in records if "val_loss" in r]
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    ax.plot(steps, [r["loss"] for r in records if "loss" in r], label="train loss", linewidth=1)
    if evals:
        ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (nats per token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


@torch.no_grad()
def _evaluate(model, inner, windows, env, autocast, sample_prompt, sample_tokens) -> tuple[float, str]:
    """Validation loss over this rank's share of the fixed windows (averaged by token over ranks), and a sample."""
    model.eval()
    x_all, y_all = windows
    total = torch.zeros(2, dtype=torch.float64, device=env.device)  # (sum of losses, tokens)
    for i in range(env.rank, x_all.shape[0], env.world_size):
        x, y = x_all[i : i + 1].to(env.device), y_all[i : i + 1].to(env.device)
        with autocast():
            logits = model(x)  # (1, T, V)
        total[0] += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum").double()
        total[1] += y.numel()
    if env.enabled:
        dist.all_reduce(total)
    idx = sample_prompt.to(env.device)  # (1, P)
    for _ in range(sample_tokens):  # greedy: every rank computes the same tokens (FSDP needs all of them)
        with autocast():
            logits = model(idx[:, -inner.cfg.context_length :])[:, -1]  # (1, V)
        idx = torch.cat([idx, logits.argmax(dim=-1, keepdim=True)], dim=1)
    model.train()
    return float(total[0] / total[1]), get_gpt2_tokenizer().decode(idx[0].tolist())


def pretrain(
    data_dir: str | Path,
    out_dir: str | Path,
    cfg: GPTConfig,
    settings: PretrainSettings | None = None,
    *,
    resume: bool = False,
    device: str = "auto",
    dtype: str = "auto",
    strategy: str = "ddp",
    peak_flops: float | None = None,
    progress: bool = True,
    env: Distributed | None = None,
) -> list[dict]:
    """Train cfg's GPTModel on data_dir's train.bin; write metrics.jsonl, checkpoints and loss.png to out_dir.

    Works alone or under torchrun (DDP or FSDP2). Returns the metrics records of this run (rank 0 and others).
    """
    settings = PretrainSettings() if settings is None else settings
    if not isinstance(cfg, GPTConfig):
        raise TypeError(f"cfg must be a GPTConfig, got {type(cfg).__name__}")
    if dtype not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"dtype must be auto, float32 or bfloat16, got {dtype!r}")
    if strategy not in ("ddp", "fsdp"):
        raise ValueError(f"strategy must be ddp or fsdp, got {strategy!r}")
    env = setup_distributed(device) if env is None else env
    micro, n_micro = settings.micro_batches(env.world_size)
    meta, splits = load_data_dir(data_dir, cfg.vocab_size)
    out_dir = Path(out_dir)
    found = latest_checkpoint(out_dir) if out_dir.is_dir() else None
    if resume and found is None:
        raise ValueError(f"--resume: {out_dir} holds no checkpoint; start without --resume")
    if not resume and found is not None:
        raise ValueError(f"{out_dir} already holds a checkpoint ({found.name}); pass --resume, or choose a new --out")
    # bf16 autocast on CUDA when supported (auto), or when asked; float32 on CPU by default: exact and comparable
    use_bf16 = dtype == "bfloat16" or (dtype == "auto" and env.device.type == "cuda" and torch.cuda.is_bf16_supported())
    autocast = (lambda: torch.autocast(env.device.type, dtype=torch.bfloat16)) if use_bf16 else nullcontext

    torch.manual_seed(settings.seed)  # the same initial weights on every rank
    model = GPTModel(cfg)
    start_step, state = 0, None
    if resume:
        loaded, state = load_checkpoint(found, cfg)
        model.load_state_dict(loaded.state_dict())
        saved = state["settings"]
        now = dataclasses.asdict(settings)
        changed = [k for k in saved if k not in ("eval_every", "save_every", "sample_tokens") and saved[k] != now[k]]
        if changed:
            raise ValueError(
                "the checkpoint was made with other settings: "
                + ", ".join(f"{k} {saved[k]!r} (now {now[k]!r})" for k in changed)
                + "; resume with the same options"
            )
        start_step = state["step"]
    use_fused_kernels(model)  # LayerNorm and GELU as one kernel each: same parameters, same results, faster
    model.to(env.device).train()
    inner = model
    model = wrap_model(model, env, strategy)
    optimizer = torch.optim.AdamW(
        param_groups(inner, settings.weight_decay),
        lr=settings.lr,
        betas=(0.9, 0.95),
        fused=env.device.type == "cuda" or None,
    )
    sampler = WindowSampler(splits["train"], cfg.context_length, settings.batch_size, settings.seed)
    windows = eval_windows(splits["val"], cfg.context_length, settings.eval_windows)
    sample_prompt = windows[0][:1, :8]  # the first 8 tokens of the validation split
    torch.manual_seed(settings.seed + env.rank)  # dropout masks: each rank its own stream
    if state is not None:
        _set_optimizer_state(model, optimizer, state["optimizer"])
        sampler.load_state_dict(state["sampler"])
        if state["world_size"] == env.world_size:
            _set_rng_state(state["rng"][env.rank], env)
        else:  # another number of processes: a fresh, deterministic stream per rank
            torch.manual_seed(settings.seed + 1000 * start_step + env.rank)

    fpt = flops_per_token(cfg, matmul_parameters(inner))  # for MFU: the embedding tables are looked up, not multiplied
    if peak_flops is None:
        peak_flops = measure_peak_flops(env.device)
    peak_total = peak_flops * env.world_size
    tokens_per_step = settings.batch_size * cfg.context_length
    records: list[dict] = []
    metrics_path = out_dir / "metrics.jsonl"
    if env.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume and metrics_path.is_file():  # drop what came after the checkpoint: it is about to be redone
            for line in metrics_path.read_text(encoding="utf-8").splitlines():
                rec = json.loads(line)
                if rec["step"] <= start_step:
                    kept.append(line + "\n")
        metrics_path.write_text("".join(kept), encoding="utf-8")
        (out_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1), encoding="utf-8")

    def log(record: dict) -> None:
        records.append(record)
        if env.is_main:
            with open(metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    bar = tqdm(
        total=settings.steps,
        initial=start_step,
        desc="pretraining",
        file=sys.stderr,
        disable=not (progress and env.is_main),
        mininterval=1.0,
    )
    no_sync = _no_sync(model, strategy, env.enabled)
    step_start = time.perf_counter()
    with bar:
        for step in range(start_step, settings.steps):
            _check_fail_hook(step, env)
            lr = lr_at(step, settings.lr, settings.warmup, settings.steps, settings.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = sampler.next_batch(env.rank, env.world_size)  # (B / world, T): this rank's rows
            batches = [
                (x[i : i + micro].to(env.device), y[i : i + micro].to(env.device)) for i in range(0, x.shape[0], micro)
            ]
            optimizer.zero_grad(set_to_none=True)
            loss = accumulate_gradients(model, batches, autocast, no_sync)
            grad_norm = clip_gradients(model, settings.grad_clip) if settings.grad_clip > 0 else float("nan")
            optimizer.step()
            loss = _mean_over_ranks(loss, env)  # each rank's mean over the same number of tokens
            if env.device.type == "cuda":
                torch.cuda.synchronize(env.device)
            now = time.perf_counter()
            seconds, step_start = now - step_start, now
            tokens_per_s = tokens_per_step / seconds
            done = step + 1
            log(
                {
                    "step": done,
                    "loss": round(loss, 6),
                    "lr": lr,
                    "tokens": done * tokens_per_step,
                    "tokens_per_s": round(tokens_per_s, 1),
                    "mfu": round(tokens_per_s * fpt / peak_total, 4),
                    "grad_norm": round(grad_norm, 6),
                }
            )
            bar.set_postfix(
                loss=f"{loss:.3f}",
                lr=f"{lr:.2e}",
                tok_s=f"{tokens_per_s:.0f}",
                mfu=f"{100 * tokens_per_s * fpt / peak_total:.1f}%",
                refresh=False,
            )
            bar.update(1)
            evaluate = done % settings.eval_every == 0 or done == settings.steps
            save = done % settings.save_every == 0 or done == settings.steps
            if evaluate:
                val_loss, sample = _evaluate(
                    model, inner, windows, env, autocast, sample_prompt, settings.sample_tokens
                )
                log(
                    {
                        "step": done,
                        "val_loss": round(val_loss, 6),
                        "val_ppl": round(math.exp(val_loss), 4),
                        "sample": sample,
                    }
                )
                if env.is_main:
                    bar.write(
                        f"step {done}: val_loss {val_loss:.3f}, val_ppl {math.exp(val_loss):.1f}\n  sample: {sample!r}",
                        file=sys.stderr,
                    )
            if save:
                model_sd, optim_sd = _full_states(model, optimizer, env, strategy)
                rng = _gather_objects(_rng_state(env), env)
                if env.is_main:
                    with torch.random.fork_rng(devices=[]):
                        snapshot = GPTModel(cfg)
                    snapshot.load_state_dict(model_sd)
                    state = {
                        "step": done,
                        "optimizer": optim_sd,
                        "sampler": sampler.state_dict(),
                        "rng": rng,
                        "world_size": env.world_size,
                        "settings": dataclasses.asdict(settings),
                        "strategy": strategy,
                        CONFIG_METADATA_KEY: json.dumps(dataclasses.asdict(cfg)),
                    }
                    save_checkpoint(out_dir, done, snapshot, state)
                if env.enabled:
                    dist.barrier()
            if evaluate or save:
                step_start = time.perf_counter()  # evaluating and saving are not training time
    if env.is_main:
        all_records = [json.loads(line) for line in metrics_path.read_text(encoding="utf-8").splitlines()]
        _plot_losses(all_records, out_dir / "loss.png")
    return records
