"""Training a GPT on a text: token windows, the loss, the loop and safetensors checkpoints (notebook 08)."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..checkpoints.weights import _checked_device, _checked_path, read_safetensors, read_safetensors_metadata
from ..gpt2.config import GPTConfig
from ..gpt2.model import GPTModel
from ..text.tokenizer import text_to_token_ids

__all__ = [
    "CONFIG_METADATA_KEY",
    "TokenWindowDataset",
    "create_dataloader",
    "calc_loss_batch",
    "calc_loss_loader",
    "train_model",
    "save_model",
    "load_model",
]

CONFIG_METADATA_KEY = "gpt_config"  # safetensors metadata entry that holds the GPTConfig as JSON


def _check_positive_int(name: str, value) -> None:
    """Raise unless value is an int >= 1 (bool is rejected)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def _check_flag(name: str, value) -> None:
    """Raise unless value is True or False (1, "yes" and None are rejected)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _check_seed(seed, *, optional: bool = False) -> None:
    """Raise unless seed is an int that torch.manual_seed takes (or None, when optional)."""
    if seed is None and optional:
        return
    if isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**64:
        raise TypeError(f"seed must be an int{' or None' if optional else ''}, got {seed!r}")


def _check_rate(name: str, value, *, zero_ok: bool) -> None:
    """Raise unless value is a finite number > 0 (>= 0 when zero_ok); nan and inf are rejected."""
    number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not number or not (value >= 0 if zero_ok else value > 0):
        raise ValueError(f"{name} must be a finite number {'>= 0' if zero_ok else '> 0'}, got {value!r}")


class TokenWindowDataset(Dataset):
    """Windows of a tokenized text: inputs and the same tokens shifted by one as targets."""

    def __init__(self, text: str, context_length: int, stride: int | None = None, tokenizer=None):
        if not isinstance(text, str):
            raise TypeError(
                f"text must be a str, got {type(text).__name__}; read the file first, e.g. Path(p).read_text()"
            )
        stride = context_length if stride is None else stride  # default: windows side by side, no overlap
        _check_positive_int("context_length", context_length)
        _check_positive_int("stride", stride)
        token_ids = text_to_token_ids(text, tokenizer)[0]  # (N,)
        n_tokens = token_ids.numel()
        if n_tokens < context_length + 1:
            raise ValueError(
                f"the text has {n_tokens} tokens, but one window needs context_length + 1 = {context_length + 1} "
                "(the inputs plus one more token for the last target); use a longer text or a smaller context_length"
            )
        # every window holds context_length + 1 tokens; consecutive windows start `stride` tokens apart
        windows = token_ids.unfold(0, context_length + 1, stride)  # (num_windows, context_length + 1)
        self.input_ids = windows[:, :-1].contiguous()  # (num_windows, T)
        self.target_ids = windows[:, 1:].contiguous()  # (num_windows, T): target t is input t + 1
        self.context_length = context_length
        self.stride = stride
        self.n_tokens = n_tokens

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.input_ids[index], self.target_ids[index]  # (T,), (T,)


def create_dataloader(
    text: str,
    context_length: int,
    *,
    stride: int | None = None,
    batch_size: int = 4,
    shuffle: bool = True,
    drop_last: bool = True,
    seed: int = 123,
    tokenizer=None,
) -> DataLoader:
    """Wrap a TokenWindowDataset in a DataLoader whose shuffling follows its own seeded generator."""
    _check_positive_int("batch_size", batch_size)
    _check_flag("shuffle", shuffle)
    _check_flag("drop_last", drop_last)
    _check_seed(seed)
    dataset = TokenWindowDataset(text, context_length, stride, tokenizer)
    if drop_last and len(dataset) < batch_size:
        raise ValueError(
            f"the text gives {len(dataset)} windows, fewer than batch_size={batch_size}, so drop_last=True "
            "would leave no batch at all; use a smaller batch_size or stride, or drop_last=False"
        )
    generator = torch.Generator().manual_seed(seed)  # same seed, same order of batches
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=generator)


def calc_loss_batch(input_batch: torch.Tensor, target_batch: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Mean cross-entropy loss of the model's next-token predictions on one batch."""
    if not isinstance(input_batch, torch.Tensor) or not isinstance(target_batch, torch.Tensor):
        raise TypeError("input_batch and target_batch must be tensors of token ids; take them from a DataLoader")
    if input_batch.shape != target_batch.shape:
        raise ValueError(
            f"input_batch {tuple(input_batch.shape)} and target_batch {tuple(target_batch.shape)} must have the "
            "same shape (B, T): target t is the token that follows input t"
        )
    if target_batch.dtype not in (torch.long, torch.int32):
        raise TypeError(f"target_batch must hold integer token ids (torch.long), got dtype {target_batch.dtype}")
    param = next(model.parameters(), None) if isinstance(model, nn.Module) else None
    if param is None:
        raise TypeError(f"model must be an nn.Module with parameters (e.g. a GPTModel), got {type(model).__name__}")
    device = param.device
    logits = model(input_batch.to(device))  # (B, T, V)
    # a target outside the vocabulary is a mistake; -100 is cross_entropy's "ignore this position" (padding)
    bad = (target_batch != -100) & ((target_batch < 0) | (target_batch >= logits.shape[-1]))
    if bad.any():
        raise ValueError(
            f"target id {target_batch[bad][0].item()} is outside the vocabulary [0, {logits.shape[-1]}) "
            "(and is not -100, the id cross_entropy ignores); check the tokenizer and vocab_size"
        )
    # cross_entropy wants (N, V) scores and (N,) class ids: merge batch and time into N = B * T
    return F.cross_entropy(logits.flatten(0, 1), target_batch.to(device).flatten())


def _batches(data_loader):
    """Iterate over data_loader, checking that it gives (input_batch, target_batch) pairs."""
    if not hasattr(data_loader, "__iter__"):
        raise TypeError(f"data_loader must give (input_batch, target_batch) pairs, got {type(data_loader).__name__}")
    for batch in data_loader:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise TypeError(
                "data_loader must give (input_batch, target_batch) pairs, "
                f"got {type(batch).__name__}{f' of {len(batch)}' if isinstance(batch, (tuple, list)) else ''}; "
                "make it with create_dataloader()"
            )
        yield batch


def calc_loss_loader(data_loader: DataLoader, model: nn.Module, num_batches: int | None = None) -> float:
    """Mean loss per token over the first num_batches batches (all by default), in eval mode, without gradients."""
    if num_batches is not None:
        _check_positive_int("num_batches", num_batches)
    was_training = model.training
    model.eval()
    total_loss, total_tokens = 0.0, 0
    try:
        with torch.no_grad():
            for i, batch in enumerate(_batches(data_loader)):
                if num_batches is not None and i >= num_batches:
                    break
                input_batch, target_batch = batch
                n_tokens = target_batch.numel()
                total_loss += calc_loss_batch(input_batch, target_batch, model).item() * n_tokens
                total_tokens += n_tokens
    finally:
        model.train(was_training)
    if total_tokens == 0:
        raise ValueError("the data loader gave no batch; check its dataset and batch_size (drop_last)")
    return total_loss / total_tokens


def train_model(
    model: nn.Module,
    train_loader: DataLoader,
    num_steps: int,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    seed: int | None = 123,
    progress: bool = False,
) -> list[float]:
    """Run num_steps optimizer steps over the loader (repeated as needed); return the loss of every step.

    Without an optimizer an AdamW(lr, weight_decay) is created. A seed reseeds torch and the
    loader's generator, so the same model, data and seed give the same losses. progress=True
    shows a tqdm bar.
    """
    _check_positive_int("num_steps", num_steps)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module (e.g. a GPTModel), got {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}")
    _check_rate("lr", lr, zero_ok=False)
    _check_rate("weight_decay", weight_decay, zero_ok=True)
    _check_seed(seed, optional=True)
    _check_flag("progress", progress)
    if seed is not None:
        torch.manual_seed(seed)  # dropout masks
        if getattr(train_loader, "generator", None) is not None:
            train_loader.generator.manual_seed(seed)  # order of the shuffled batches
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    was_training = model.training
    model.train()  # dropout on (if drop_rate > 0)
    history = []
    try:
        # redraw at most once a second: a short, readable bar (also in a notebook's stored output)
        bar = tqdm(total=num_steps, desc="training", disable=not progress, file=sys.stdout, mininterval=1.0)
        with bar:
            while len(history) < num_steps:
                n_before = len(history)
                for input_batch, target_batch in _batches(train_loader):  # one pass over the data = one epoch
                    optimizer.zero_grad()  # gradients add up unless cleared
                    loss = calc_loss_batch(input_batch, target_batch, model)
                    loss.backward()  # gradient of the loss for every parameter
                    optimizer.step()  # AdamW updates the weights
                    history.append(loss.item())
                    bar.set_postfix(loss=f"{history[-1]:.3f}", refresh=False)
                    bar.update(1)
                    if len(history) == num_steps:
                        break
                if len(history) == n_before:
                    raise ValueError("the data loader gave no batch; check its dataset and batch_size (drop_last)")
    finally:
        model.train(was_training)
    return history


def save_model(model: GPTModel, path: str | Path) -> Path:
    """Write a GPTModel's weights and its GPTConfig (as JSON metadata) to one .safetensors file."""
    if not isinstance(model, GPTModel):
        raise TypeError(f"save_model expects a GPTModel, got {type(model).__name__}")
    path = _checked_path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"name the file *.safetensors (e.g. model.safetensors), got {path.name!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the folder {path.parent} does not exist; create it first (Path.mkdir(parents=True))")
    state_dict = model.state_dict()
    if model.cfg.tie_weights:
        # weight tying: out_head.weight is the very tensor tok_emb.weight; safetensors refuses to store a
        # shared tensor twice, so keep one copy (the model load_model builds is tied again by its config)
        del state_dict["out_head.weight"]
    tensors = {name: t.detach().cpu().contiguous() for name, t in state_dict.items()}
    metadata = {CONFIG_METADATA_KEY: json.dumps(dataclasses.asdict(model.cfg), sort_keys=True)}
    save_file(tensors, path, metadata=metadata)  # only tensors and strings: no pickle
    return path


def load_model(path: str | Path, device: str | torch.device = "cpu") -> GPTModel:
    """Rebuild the GPTModel saved by save_model: the config from the metadata, then the weights (eval mode)."""
    path = _checked_path(path)
    device = _checked_device(device)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; pass the path of a file written by save_model()")
    # read_safetensors_metadata checks the whole file first: a damaged one raises a one-line ValueError
    metadata = read_safetensors_metadata(path)
    if CONFIG_METADATA_KEY not in metadata:
        raise ValueError(
            f"{path.name} has no {CONFIG_METADATA_KEY!r} metadata, so the model's shape is unknown; "
            "write checkpoints with save_model(), or load Hugging Face GPT-2 files with load_gpt2_safetensors()"
        )
    try:
        cfg = GPTConfig(**json.loads(metadata[CONFIG_METADATA_KEY]))
    except (ValueError, TypeError) as err:  # bad JSON (a ValueError), unknown or invalid fields
        raise ValueError(
            f"the {CONFIG_METADATA_KEY!r} metadata of {path.name} is not a valid GPTConfig: {err}"
        ) from err
    state_dict = read_safetensors(path)
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten: leave the caller's RNG alone
        model = GPTModel(cfg)
    # load_state_dict copies into the existing parameters, so a tied head stays tied to tok_emb
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    missing = set(missing) - ({"out_head.weight"} if cfg.tie_weights else set())
    if missing or unexpected:
        raise ValueError(
            f"{path.name} does not match its own config: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    return model.to(device).eval()
