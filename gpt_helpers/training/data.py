"""A pretraining corpus on disk: text files -> GPT-2 token ids in uint16 files, split by document (issue 20)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import sysconfig
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..text.tokenizer import END_OF_TEXT_ID, get_gpt2_tokenizer

__all__ = [
    "DATA_FORMAT_VERSION",
    "STDLIB_LICENSE",
    "stdlib_sources",
    "find_documents",
    "read_document",
    "split_documents",
    "prepare_data",
    "load_data_dir",
    "WindowSampler",
    "eval_windows",
]

DATA_FORMAT_VERSION = 1
STDLIB_LICENSE = "PSF-2.0 (Python Software Foundation License Version 2): the Python standard library's source"
TEXT_SUFFIXES = (".py", ".txt", ".md", ".rst")  # what a folder contributes; files named directly are always read
_SPLITS = ("train", "val")


def stdlib_sources(max_bytes: int | None = None) -> list[Path]:
    """The standard library's own *.py files (no tests, no site-packages), sorted; the first max_bytes' worth."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
    files = sorted(p for p in root.rglob("*.py") if not skip.intersection(p.relative_to(root).parts) and p.is_file())
    if max_bytes is None:
        return files
    chosen, total = [], 0
    for path in files:  # sorted order: the same subset every time on the same Python version
        if total >= max_bytes:
            break
        chosen.append(path)
        total += path.stat().st_size
    return chosen


def find_documents(inputs) -> list[Path]:
    """Expand files and folders into a sorted list of documents (a folder gives its *.py, *.txt, *.md, *.rst)."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    documents = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix in TEXT_SUFFIXES
                and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(path).parts)
            )
            if not found:
                raise ValueError(f"the folder {path} holds no {', '.join(TEXT_SUFFIXES)} file; give text files")
            documents.extend(found)
        elif path.is_file():
            documents.append(path)
        else:
            raise FileNotFoundError(f"input {path} does not exist; give text files or folders")
    if not documents:
        raise ValueError("no input given; name at least one text file or folder")
    return sorted(set(documents))


def read_document(path: Path) -> tuple[str, str]:
    """The text of a UTF-8 file and the sha256 of its bytes; a binary or non-UTF-8 file is a ValueError."""
    data = Path(path).read_bytes()
    if b"\x00" in data:  # NUL bytes: an image, an archive, a .pyc, ... not text
        raise ValueError(f"{path} is not a text file (it holds NUL bytes); give UTF-8 text files only")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}); convert it to UTF-8 or leave it out") from None
    return text, hashlib.sha256(data).hexdigest()


def split_documents(sizes: dict[str, int], val_fraction: float) -> tuple[list[str], list[str]]:
    """Split whole documents into train and validation: in the order of their name's hash, documents go to
    validation until they hold val_fraction of all bytes (at least one document, never all)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if len(sizes) < 2:
        raise ValueError(f"got {len(sizes)} document; a training and a validation split need at least 2 files")
    # the hash of the name, not its place in the list: adding a file does not move the others between splits
    ranked = sorted(sizes, key=lambda name: hashlib.sha256(name.encode("utf-8")).hexdigest())
    total, val, val_bytes = sum(sizes.values()), set(), 0
    for name in ranked[:-1]:
        if val and val_bytes >= val_fraction * total:
            break
        val.add(name)
        val_bytes += sizes[name]
    names = sorted(sizes)
    return [n for n in names if n not in val], [n for n in names if n in val]


def _write_atomic(path: Path, data: bytes) -> None:
    """Write data to path through a temporary file, so a crash never leaves a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def prepare_data(
    inputs,
    out_dir: str | Path,
    *,
    val_fraction: float = 0.1,
    license: str | None = None,
    root: str | Path | None = None,
    progress: bool = False,
) -> dict:
    """Tokenize documents with GPT-2's BPE into out_dir/train.bin and val.bin (uint16) plus meta.json.

    Every document ends with <|endoftext|>. Documents are split whole between the two files
    (split_documents). meta.json records the counts, the tokenizer, the licence and each source's sha256.
    Paths are stored relative to root when given.
    """
    documents = find_documents(inputs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {str(p.relative_to(root) if root is not None else p): p for p in documents}
    train_names, val_names = split_documents({n: p.stat().st_size for n, p in names.items()}, val_fraction)
    split_of = {n: "train" for n in train_names} | {n: "val" for n in val_names}
    tokenizer = get_gpt2_tokenizer()
    ids = {"train": [], "val": []}
    sources = []
    for name in tqdm(sorted(names), desc="tokenizing", unit="file", disable=not progress, file=sys.stderr):
        text, digest = read_document(names[name])
        tokens = tokenizer.encode_ordinary(text) + [END_OF_TEXT_ID]  # the document boundary is a token
        ids[split_of[name]].append(np.asarray(tokens, dtype=np.uint16))  # GPT-2 ids < 50257 < 65536
        sources.append(
            {
                "path": name,
                "bytes": len(text.encode("utf-8")),
                "sha256": digest,
                "split": split_of[name],
                "tokens": len(tokens),
            }
        )
    if all(src["bytes"] == 0 for src in sources):
        raise ValueError(f"the input ({len(sources)} file(s)) holds no text at all; give files with some text")
    meta = {
        "format_version": DATA_FORMAT_VERSION,
        "tokenizer": "gpt2",
        "vocab_size": tokenizer.n_vocab,
        "eot_id": END_OF_TEXT_ID,
        "dtype": "uint16",
        "val_fraction": val_fraction,
        "license": license,
        "max_token_id": 0,
        "sources": sources,
    }
    for split in _SPLITS:
        array = np.concatenate(ids[split]) if ids[split] else np.zeros(0, dtype=np.uint16)
        _write_atomic(out_dir / f"{split}.bin", array.tobytes())
        meta[split] = {"documents": len(ids[split]), "tokens": int(array.size)}
        meta["max_token_id"] = max(meta["max_token_id"], int(array.max()) if array.size else 0)
    _write_atomic(out_dir / "meta.json", json.dumps(meta, indent=1).encode("utf-8"))
    return meta


def load_data_dir(data_dir: str | Path, vocab_size: int | None = None) -> tuple[dict, dict[str, np.memmap]]:
    """meta.json and a read-only memory map of each split; checks the tokenizer and, if given, the vocabulary."""
    data_dir = Path(data_dir)
    meta_path = data_dir / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{data_dir} has no meta.json; make the data with: python -m gpt_helpers prepare-data")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        tokenizer, dtype = meta["tokenizer"], meta["dtype"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{meta_path} is damaged ({type(err).__name__}: {err}); run prepare-data again") from None
    if tokenizer != "gpt2" or dtype != "uint16":
        raise ValueError(
            f"{data_dir} was made with tokenizer {tokenizer!r} ({dtype}); this course trains on GPT-2 ids (uint16): "
            "run prepare-data again"
        )
    if vocab_size is not None and meta["max_token_id"] >= vocab_size:
        raise ValueError(
            f"the data holds token id {meta['max_token_id']}, but the model's vocab_size is {vocab_size}; "
            f"use vocab_size >= {meta['max_token_id'] + 1} (GPT-2's is 50257)"
        )
    splits = {}
    for split in _SPLITS:
        path = data_dir / f"{split}.bin"
        expected = meta.get(split, {}).get("tokens")
        if not path.is_file() or path.stat().st_size != 2 * expected:
            raise ValueError(
                f"{path} is missing or not the {expected} tokens meta.json records; run prepare-data again"
            )
        splits[split] = np.memmap(path, dtype=np.uint16, mode="r")  # read from disk on demand: any corpus size
    return meta, splits


class WindowSampler:
    """Random training windows of a token array; batch n is a function of (seed, n), so its position is n."""

    def __init__(self, tokens: np.ndarray, context_length: int, batch_size: int, seed: int = 123):
        if len(tokens) < context_length + 1:
            raise ValueError(
                f"the training split has {len(tokens)} tokens, fewer than one window (context_length + 1 = "
                f"{context_length + 1}); use more data or a smaller context_length"
            )
        self.tokens = tokens
        self.context_length = context_length
        self.batch_size = batch_size
        self.seed = seed
        self.position = 0  # global batches drawn so far: all a checkpoint needs to continue the same stream

    def batch(self, n: int, rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Global batch n's rows for one rank (rank r takes every world_size-th row from r): inputs and targets."""
        rng = np.random.default_rng([self.seed, n])  # its own stream per batch: no state to carry along
        starts = rng.integers(0, len(self.tokens) - self.context_length, size=self.batch_size)  # (B,)
        rows = np.stack([self.tokens[s : s + self.context_length + 1] for s in starts[rank::world_size]])
        rows = torch.from_numpy(rows.astype(np.int64))  # (B / world_size, T + 1)
        return rows[:, :-1], rows[:, 1:]  # target t is input t + 1

    def next_batch(self, rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """The next global batch's rows for this rank; moves the position on by one."""
        x, y = self.batch(self.position, rank, world_size)
        self.position += 1
        return x, y

    def state_dict(self) -> dict:
        """What a checkpoint stores to continue the stream exactly."""
        return {"seed": self.seed, "position": self.position, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        """Continue the stream saved by state_dict()."""
        if state["seed"] != self.seed or state["batch_size"] != self.batch_size:
            raise ValueError(
                f"the checkpoint's data stream used seed {state['seed']} and batch size {state['batch_size']}, "
                f"this run {self.seed} and {self.batch_size}; resume with the same --seed and --batch-size"
            )
        self.position = state["position"]


def eval_windows(tokens: np.ndarray, context_length: int, max_windows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to max_windows non-overlapping windows spread evenly over a split: the same ones at every evaluation."""
    n_windows = (len(tokens) - 1) // context_length
    if n_windows < 1:
        raise ValueError(
            f"the validation split has {len(tokens)} tokens, fewer than one window (context_length + 1 = "
            f"{context_length + 1}); use a larger --val-fraction or a smaller context_length"
        )
    picks = np.linspace(0, n_windows - 1, num=min(max_windows, n_windows)).round().astype(np.int64)
    picks = np.unique(picks)
    rows = np.stack([tokens[i * context_length : i * context_length + context_length + 1] for i in picks])
    rows = torch.from_numpy(rows.astype(np.int64))  # (N, T + 1)
    return rows[:, :-1], rows[:, 1:]
