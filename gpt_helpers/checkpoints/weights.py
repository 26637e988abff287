"""Read safetensors checkpoints with clear errors; load GPT-2 weights (Hugging Face layout) into GPTModel."""

from __future__ import annotations

import json
import math
import os
import re
import struct
from pathlib import Path

import torch

from ..gpt2.config import GPT2_PRESETS, GPTConfig
from ..gpt2.model import GPTModel

__all__ = [
    "read_safetensors",
    "read_safetensors_metadata",
    "resolve_checkpoint_path",
    "read_pth_state_dict",
    "load_book_model",
    "config_from_hf_state_dict",
    "hf_to_gpt_state_dict",
    "load_hf_gpt2_weights",
    "load_gpt2_safetensors",
    "download_gpt2_safetensors",
]

# ---------------------------------------------------------------------------------------------------------
# Reading a safetensors file safely: every way a learner's file can be damaged gets a one-line ValueError.
# Layout of a .safetensors file: 8 bytes (little-endian uint64) = N, then N bytes of JSON header
# {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...},
# then the tensor bytes, offsets counted from the end of the header.

_MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library refuses larger headers too
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E4M3FNUZ": 1, "F8_E5M2": 1, "F8_E5M2FNUZ": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip
_REDOWNLOAD = "download or save it again"


def _checked_path(path) -> Path:
    """path as a Path; a one-line TypeError for anything that is not a str or os.PathLike (None, an int...)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or pathlib.Path naming a file or folder, got {type(path).__name__}")
    return Path(path)


def _checked_device(device) -> torch.device:
    """device as a torch.device that exists on this machine, or a one-line ValueError naming the fix."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must name a torch device such as 'cpu' or 'cuda:0', got {device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} is not available: this torch sees no CUDA GPU; use 'cpu'")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r} is not available on this machine; use 'cpu'")
    return device


def resolve_checkpoint_path(path: str | Path, filename: str = "model.safetensors") -> Path:
    """Return path itself for a file, or path/filename for a folder; clear errors when neither exists."""
    path = _checked_path(path)
    if path.is_dir():
        candidate = path / filename
        if candidate.is_file():
            return candidate
        found = sorted(p.name for p in path.iterdir())
        shown = ", ".join(found[:6]) + (" ..." if len(found) > 6 else "") if found else "nothing"
        if (path / f"{filename}.index.json").is_file() or any(
            n.startswith("model-") and n.endswith(".safetensors") for n in found
        ):
            fix = "this is a sharded checkpoint; read each shard listed in its index.json, or pass one shard file"
        else:
            fix = f"pass the folder that holds {filename}, or the weights file itself"
        raise ValueError(f"{path} is a folder without {filename} (it holds: {shown}); {fix}")
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; check the path (pass a .safetensors file or its folder)")
    return path


def _format_of(head: bytes) -> str | None:
    """Name the file format a file's first bytes betray, if it is a well-known non-safetensors one."""
    if head.startswith(b"PK\x03\x04"):
        return "a PyTorch file written by torch.save (a zip archive with pickle inside: .pth/.pt/.bin)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a pickle file (an old-style torch.save .pth/.pt/.bin)"
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer (a small text file standing in for the weights; run `git lfs pull` or download it)"
    if head.lstrip()[:1] in (b"{", b"["):
        return "a JSON file (e.g. config.json), not the weights"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file (TensorFlow/Keras .h5)"
    if head.startswith(b"GGUF"):
        return "a GGUF file (llama.cpp)"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip archive; unpack it first"
    return None


def _is_torch_save(head: bytes) -> bool:
    """True if a file's first bytes are those of torch.save: a zip archive, or a bare pickle (old format)."""
    return head.startswith(b"PK\x03\x04") or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))


def _read_header(path: Path) -> tuple[dict, int]:
    """Parse and check the header of a .safetensors file; return (header, bytes of tensor data after it)."""
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path} is empty (0 bytes): the download or save did not finish; {_REDOWNLOAD}")
    with path.open("rb") as f:
        head = f.read(64)
        known = _format_of(head)
        if known is not None:
            fix = "pass a .safetensors checkpoint"
            if _is_torch_save(head):
                fix += " (a state_dict saved with torch.save loads with gpt_helpers.load_book_model)"
            raise ValueError(f"{path} is {known}, not a safetensors file; {fix}")
        if size < 8:
            raise ValueError(f"{path} is truncated: {size} bytes, too short for a safetensors header; {_REDOWNLOAD}")
        (n_header,) = struct.unpack("<Q", head[:8])
        if n_header < 2 or n_header > _MAX_HEADER_BYTES:
            raise ValueError(
                f"{path} is not a safetensors file (its first 8 bytes give a header length of {n_header:,} bytes); "
                f"the file is damaged or of another format; {_REDOWNLOAD}"
            )
        if 8 + n_header > size:
            raise ValueError(
                f"{path} is truncated: its header alone needs {8 + n_header:,} bytes but the file has {size:,} "
                f"(a download that did not finish?); {_REDOWNLOAD}"
            )
        f.seek(8)
        raw = f.read(n_header)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict):
        raise ValueError(
            f"{path} is not a safetensors file (its header is not a JSON object); "
            f"the file is damaged or of another format; {_REDOWNLOAD}"
        )
    data_bytes = size - 8 - n_header
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"{path} is damaged: its __metadata__ is not a table of strings; {_REDOWNLOAD}")
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        ok = (
            isinstance(info, dict)
            and isinstance(info.get("dtype"), str)
            and isinstance(info.get("shape"), list)
            and all(isinstance(d, int) and d >= 0 for d in info["shape"])
            and isinstance(info.get("data_offsets"), list)
            and len(info["data_offsets"]) == 2
            and all(isinstance(o, int) for o in info["data_offsets"])
            and 0 <= info["data_offsets"][0] <= info["data_offsets"][1]
        )
        if not ok:
            raise ValueError(f"{path} is damaged: the header entry for {name!r} is malformed; {_REDOWNLOAD}")
        begin, end = info["data_offsets"]
        itemsize = _DTYPE_BYTES.get(info["dtype"])
        if itemsize is not None and (end - begin) != math.prod(info["shape"]) * itemsize:
            raise ValueError(
                f"{path} is damaged: tensor {name!r} ({info['dtype']} {info['shape']}) is given "
                f"{end - begin:,} bytes; {_REDOWNLOAD}"
            )
        spans.append((begin, end, name))
    needed = max((end for _, end, _ in spans), default=0)
    if needed > data_bytes:
        raise ValueError(
            f"{path} is truncated: its header describes {needed:,} bytes of tensor data but only {data_bytes:,} "
            f"are there (a download that did not finish?); {_REDOWNLOAD}"
        )
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise ValueError(
                f"{path} is damaged: tensor {name!r} starts at byte {begin:,} of the data, expected {position:,}; "
                f"{_REDOWNLOAD}"
            )
        position = end
    if data_bytes > needed:
        raise ValueError(
            f"{path} is damaged: {data_bytes - needed:,} bytes follow the last tensor its header describes "
            f"(two files written into one?); {_REDOWNLOAD}"
        )
    return header, data_bytes


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """Return the string metadata of a checked .safetensors file (or folder/model.safetensors) without its tensors.

    Raises the same errors as read_safetensors.
    """
    header, _ = _read_header(resolve_checkpoint_path(path))
    return dict(header.get("__metadata__", {}))


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read every tensor of a .safetensors file (or of model.safetensors in a folder) onto the CPU, safely.

    Contract (for every loader in gpt_helpers that reads a learner's checkpoint):
    - returns {name: tensor} with all tensors of the file, or raises; nothing partial is ever returned;
    - a missing path raises FileNotFoundError; every damaged or wrong file raises ValueError with one line
      that names the file, the problem and the fix: a folder without model.safetensors (a sharded folder is
      named as such), an empty file, a truncated file, random bytes, a torch.save/pickle .pth/.bin, JSON,
      a Git LFS pointer, HDF5, GGUF, or a header that does not describe the data exactly;
    - only tensors are read (safetensors: no pickle, no code runs). Sharded checkpoints
      (model-0000N-of-0000M.safetensors): call it once per shard file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = resolve_checkpoint_path(path)
    _read_header(path)  # all checks first, so the library never sees a file we have not understood
    try:
        return load_file(str(path))
    except (SafetensorError, KeyError, RuntimeError, OSError) as err:  # e.g. a dtype this torch cannot hold
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path} could not be read as safetensors ({message}); {_REDOWNLOAD}") from None


def read_pth_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict saved with torch.save(model.state_dict()) (.pth), by torch.load(weights_only=True) only.

    The same contract as read_safetensors: {name: tensor} on the CPU or a one-line ValueError naming the file,
    the problem and the fix (empty, truncated, random bytes, another format, a pickle with more than tensors).
    A folder is resolved to its model.pth. The book's model_and_optimizer.pth ({"model_state_dict": ...,
    "optimizer_state_dict": ...}) gives its model_state_dict.
    """
    import zipfile

    path = resolve_checkpoint_path(path, filename="model.pth")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): the download or save did not finish; {_REDOWNLOAD}")
    with path.open("rb") as f:
        head = f.read(64)
    if not _is_torch_save(head):
        if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < _MAX_HEADER_BYTES:
            raise ValueError(
                f"{path} is a safetensors file, not a torch.save file; read it with read_safetensors() "
                "(or load_book_model, load_model, load_gpt2_safetensors)"
            )
        known = _format_of(head)
        problem = known if known is not None else "not a file written by torch.save (random or damaged bytes?)"
        raise ValueError(f"{path} is {problem}; pass the .pth file saved with torch.save(model.state_dict())")
    if head.startswith(b"PK") and not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is truncated: the end of its zip archive is missing (a download or save that did not "
            f"finish?); {_REDOWNLOAD}"
        )
    try:
        # weights_only=True: only tensors and plain containers are unpickled, no code from the file can run
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types (RuntimeError, OSError, EOFError, UnpicklingError...)
        if "Weights only load failed" in str(err):
            raise ValueError(
                f"{path} holds Python objects besides tensors (e.g. a whole model saved with torch.save(model)), "
                "which are not loaded for safety; save model.state_dict() instead"
            ) from None
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is truncated or damaged ({message[:120]}); {_REDOWNLOAD}") from None
    if isinstance(obj, dict) and isinstance(obj.get("model_state_dict"), dict):
        obj = obj["model_state_dict"]  # the book's model_and_optimizer.pth
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        found = type(obj).__name__ if not isinstance(obj, dict) else f"a dict with keys {list(obj)[:4]}"
        raise ValueError(
            f"{path} does not hold a state_dict (it holds {found}); save it with torch.save(model.state_dict())"
        )
    return dict(obj)


def load_book_model(path: str | Path, config: GPTConfig | dict, *, device: str | torch.device = "cpu") -> GPTModel:
    """Build GPTModel(config) and load a state_dict file into it: the book's model.pth, or .safetensors (eval mode).

    config is a GPTConfig or the book's dict (e.g. GPT_CONFIG_124M with the context_length it was trained with).
    The load is strict except for the book's causal-mask buffers; every mismatch is a one-line ValueError.
    """
    cfg = config if isinstance(config, GPTConfig) else GPTConfig.from_dict(config)
    path = _checked_path(path)
    device = _checked_device(device)
    if path.is_dir() and (path / "model.safetensors").is_file():
        path = path / "model.safetensors"
    path = resolve_checkpoint_path(path, filename="model.pth")
    with path.open("rb") as f:
        head = f.read(64)
    state_dict = read_pth_state_dict(path) if _is_torch_save(head) else read_safetensors(path)
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten: leave the caller's RNG alone
        model = GPTModel(cfg)
    own = model.state_dict()
    for key, value in state_dict.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise ValueError(
                f"{path}: {key!r} has shape {tuple(value.shape)}, but this config gives {tuple(own[key].shape)}; "
                "pass the config the model was trained with (e.g. the book's chapter 5 uses context_length=256)"
            )
    if cfg.tie_weights and "out_head.weight" in state_dict and "tok_emb.weight" in state_dict:
        if not torch.equal(state_dict["out_head.weight"], state_dict["tok_emb.weight"]):
            raise ValueError(
                f"{path} has an output head different from its token embedding, but the config ties them; "
                "pass tie_weights=False (the book's models are not tied)"
            )
    missing, unexpected = model.load_state_dict(state_dict, strict=False)  # the book's causal masks are dropped
    if cfg.tie_weights and "out_head.weight" not in state_dict:
        missing = [k for k in missing if k != "out_head.weight"]  # tied: the head is tok_emb.weight
    if missing or unexpected:
        bias_keys = any(".att.W_query.bias" in k for k in [*missing, *unexpected])
        hint = f" (qkv_bias={not cfg.qkv_bias}?)" if bias_keys else ""
        raise ValueError(
            f"{path} does not fit GPTModel with this config{hint}: missing {sorted(missing)[:4]}, "
            f"unexpected {sorted(unexpected)[:4]}; pass the config the model was trained with"
        )
    return model.to(device).eval()


_LAYER_KEY = re.compile(r"^h\.(\d+)\.(.+)$")
# buffers some checkpoints store (the old causal mask); they are not weights
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def _check_state_dict(state_dict) -> None:
    """Raise a one-line TypeError unless state_dict maps str names to tensors."""
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise TypeError(
            f"state_dict must be a dict of name -> tensor (as read_safetensors gives), got {type(state_dict).__name__}"
        )


def _strip_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the "transformer." prefix of GPT2LMHeadModel and the non-weight buffers."""
    out = {}
    for key, value in state_dict.items():
        key = key.removeprefix("transformer.")
        if key.endswith(_IGNORED_SUFFIXES) and key.count(".") == 3:
            continue
        out[key] = value
    return out


def config_from_hf_state_dict(state_dict: dict[str, torch.Tensor], n_heads: int | None = None) -> GPTConfig:
    """Infer the GPTConfig of a GPT-2 checkpoint from its tensor shapes."""
    _check_state_dict(state_dict)
    sd = _strip_prefix(state_dict)
    if "tok_emb.weight" in sd:
        raise ValueError(
            "not a Hugging Face GPT-2 checkpoint but GPTModel's own layout (tok_emb, trf_blocks, ...): "
            "load a save_model() file with load_model(path), a state_dict with load_book_model(path, config)"
        )
    for key in ("wte.weight", "wpe.weight"):
        if key not in sd:
            raise ValueError(
                f"not a GPT-2 checkpoint: key {key!r} is missing (found e.g. {sorted(sd)[:3]}); "
                "expected the Hugging Face GPT-2 layout (wte, wpe, h.N..., ln_f)"
            )
    for key in ("wte.weight", "wpe.weight"):
        if sd[key].dim() != 2:
            raise ValueError(f"not a GPT-2 checkpoint: {key!r} has shape {tuple(sd[key].shape)}, expected 2-D")
    vocab_size, emb_dim = sd["wte.weight"].shape
    context_length = sd["wpe.weight"].shape[0]
    layers = {int(m.group(1)) for k in sd if (m := _LAYER_KEY.match(k))}
    n_layers = len(layers)
    if n_layers == 0 or layers != set(range(n_layers)):
        raise ValueError(
            f"not a GPT-2 checkpoint: transformer layers h.N are missing or not numbered 0..N-1 ({sorted(layers)})"
        )
    if n_heads is None:
        presets = [c for c in GPT2_PRESETS.values() if (c.emb_dim, c.n_layers) == (emb_dim, n_layers)]
        if not presets:
            raise ValueError(
                f"cannot tell the number of heads of a checkpoint with emb_dim={emb_dim}, n_layers={n_layers} "
                "(it is not one of the four GPT-2 sizes); pass n_heads=... or keep config.json beside the file"
            )
        n_heads = presets[0].n_heads
    return GPTConfig(
        vocab_size=int(vocab_size),
        context_length=int(context_length),
        emb_dim=int(emb_dim),
        n_heads=n_heads,
        n_layers=n_layers,
        drop_rate=0.0,
        qkv_bias=True,  # GPT-2 was trained with biases on the query/key/value projections
        tie_weights=True,  # and with the output head tied to the token embedding
    )


def hf_to_gpt_state_dict(state_dict: dict[str, torch.Tensor], cfg: GPTConfig) -> dict[str, torch.Tensor]:
    """Rename and reshape Hugging Face GPT-2 tensors into GPTModel's state_dict layout."""
    _check_state_dict(state_dict)
    if not isinstance(cfg, GPTConfig):
        raise TypeError(
            f"cfg must be a GPTConfig (e.g. config_from_hf_state_dict(state_dict)), got {type(cfg).__name__}"
        )
    sd = _strip_prefix(state_dict)
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in sd:
            raise ValueError(f"checkpoint is missing key {key!r}; is it a complete GPT-2 checkpoint?")
        used.add(key)
        return sd[key]

    out["tok_emb.weight"] = take("wte.weight")
    out["pos_emb.weight"] = take("wpe.weight")
    for i in range(cfg.n_layers):
        h, b = f"h.{i}.", f"trf_blocks.{i}."
        # Hugging Face's Conv1D stores (in, out); nn.Linear wants (out, in), hence the transposes
        q_w, k_w, v_w = take(h + "attn.c_attn.weight").chunk(3, dim=-1)
        q_b, k_b, v_b = take(h + "attn.c_attn.bias").chunk(3, dim=-1)
        for name, w, bias in (("W_query", q_w, q_b), ("W_key", k_w, k_b), ("W_value", v_w, v_b)):
            out[b + f"att.{name}.weight"] = w.T
            out[b + f"att.{name}.bias"] = bias
        out[b + "att.out_proj.weight"] = take(h + "attn.c_proj.weight").T
        out[b + "att.out_proj.bias"] = take(h + "attn.c_proj.bias")
        out[b + "ff.layers.0.weight"] = take(h + "mlp.c_fc.weight").T
        out[b + "ff.layers.0.bias"] = take(h + "mlp.c_fc.bias")
        out[b + "ff.layers.2.weight"] = take(h + "mlp.c_proj.weight").T
        out[b + "ff.layers.2.bias"] = take(h + "mlp.c_proj.bias")
        out[b + "norm1.scale"] = take(h + "ln_1.weight")
        out[b + "norm1.shift"] = take(h + "ln_1.bias")
        out[b + "norm2.scale"] = take(h + "ln_2.weight")
        out[b + "norm2.shift"] = take(h + "ln_2.bias")
    out["final_norm.scale"] = take("ln_f.weight")
    out["final_norm.shift"] = take("ln_f.bias")
    if "lm_head.weight" in sd:
        used.add("lm_head.weight")
        if cfg.tie_weights and not torch.equal(sd["lm_head.weight"], sd["wte.weight"]):
            raise ValueError("lm_head.weight differs from wte.weight, but GPT-2's head is tied; use tie_weights=False")
        if not cfg.tie_weights:
            out["out_head.weight"] = sd["lm_head.weight"]
    elif not cfg.tie_weights:
        out["out_head.weight"] = sd["wte.weight"]
    unexpected = sorted(set(sd) - used)
    if unexpected:
        raise ValueError(f"checkpoint has unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    return out


def load_hf_gpt2_weights(model: GPTModel, state_dict: dict[str, torch.Tensor]) -> GPTModel:
    """Copy a Hugging Face GPT-2 state_dict into an existing GPTModel, checking every shape."""
    if not isinstance(model, GPTModel):
        raise TypeError(f"model must be a GPTModel, got {type(model).__name__}; load_gpt2_safetensors(path) builds one")
    converted = hf_to_gpt_state_dict(state_dict, model.cfg)
    own = model.state_dict()
    for key, value in converted.items():
        if key not in own:
            raise ValueError(f"GPTModel has no parameter {key!r}; does the config match the checkpoint (qkv_bias)?")
        if tuple(own[key].shape) != tuple(value.shape):
            raise ValueError(
                f"shape mismatch for {key!r}: the model has {tuple(own[key].shape)}, "
                f"the checkpoint gives {tuple(value.shape)}"
            )
    # out_head.weight is the same Parameter as tok_emb.weight when tied, so it is absent from `converted`
    missing = sorted(set(own) - set(converted) - ({"out_head.weight"} if model.cfg.tie_weights else set()))
    if missing:
        raise ValueError(f"checkpoint leaves these GPTModel parameters unset: {missing[:5]}")
    with torch.no_grad():
        for key, value in converted.items():
            own[key].copy_(value)
    return model


def load_gpt2_safetensors(path: str | Path, *, n_heads: int | None = None, dtype=torch.float32) -> GPTModel:
    """Build a GPTModel from a Hugging Face GPT-2 model.safetensors (or the folder holding it)."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype such as torch.float32 or torch.bfloat16, got {dtype!r}")
    path = resolve_checkpoint_path(path)
    state_dict = read_safetensors(path)  # checked: a damaged file raises a one-line ValueError
    config_json = path.with_name("config.json")
    if n_heads is None and config_json.is_file():
        try:
            n_heads = json.loads(config_json.read_text(encoding="utf-8")).get("n_head")
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            raise ValueError(
                f"{config_json} is not a valid config.json; delete it or download it again, or pass n_heads=..."
            ) from None
    cfg = config_from_hf_state_dict(state_dict, n_heads=n_heads)
    with torch.device("meta"):
        model = GPTModel(cfg)
    model = model.to_empty(device="cpu")
    if cfg.tie_weights:
        model.out_head.weight = model.tok_emb.weight  # to_empty() breaks the tie: tie again
    load_hf_gpt2_weights(model, state_dict)
    return model.to(dtype).eval()


def _hub_reachable(endpoint: str, timeout: float = 3.0) -> str | None:
    """None if a TCP connection to the hub's host opens within `timeout` seconds, else the reason it did not."""
    import os
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # through a proxy the host is not dialled directly: let huggingface_hub try
    url = urlsplit(endpoint)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
    except OSError as err:  # no DNS, no route, refused, timed out
        return f"{type(err).__name__}: {err}"
    return None


def download_gpt2_safetensors(name: str = "gpt2", cache_dir: str | Path | None = None) -> Path:
    """Download model.safetensors of gpt2 / gpt2-medium / gpt2-large / gpt2-xl (needs network access).

    Files already in the cache are used without any network access. Offline, it fails within seconds with a
    one-line ConnectionError (huggingface_hub alone retries for about half a minute).
    """
    if not isinstance(name, str) or name not in GPT2_PRESETS:
        raise ValueError(f"unknown GPT-2 checkpoint {name!r}; choose one of {sorted(GPT2_PRESETS)}")
    if cache_dir is not None and not isinstance(cache_dir, (str, Path)):
        raise TypeError(f"cache_dir must be a folder path (str or Path) or None, got {type(cache_dir).__name__}")
    try:
        from huggingface_hub import constants, hf_hub_download
    except ImportError as err:
        raise ImportError("downloading needs huggingface_hub: pip install 'gpt-helpers[download]'") from err
    repo_id = f"openai-community/{name}"

    def fetch(local_files_only: bool) -> Path:
        folder = None
        for filename in ("config.json", "model.safetensors"):
            path = hf_hub_download(repo_id, filename, cache_dir=cache_dir, local_files_only=local_files_only)
            folder = Path(path).parent
        return folder / "model.safetensors"

    try:
        return fetch(local_files_only=True)  # already downloaded: no network needed
    except OSError:  # not (all) in the cache: huggingface_hub's LocalEntryNotFoundError
        pass
    fix = "connect to the network and retry, or pass a model.safetensors you already have to load_gpt2_safetensors()"
    if constants.HF_HUB_OFFLINE:
        raise ConnectionError(f"{repo_id} is not in the cache and HF_HUB_OFFLINE is set; unset it, or {fix}")
    reason = _hub_reachable(constants.ENDPOINT)
    if reason is not None:
        raise ConnectionError(f"cannot reach {constants.ENDPOINT} to download {repo_id} ({reason}); {fix}")
    try:
        return fetch(local_files_only=False)
    except OSError as err:  # huggingface_hub's HTTP and cache errors are OSErrors with long messages
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConnectionError(f"downloading {repo_id} failed ({type(err).__name__}: {first[:200]}); {fix}") from None
