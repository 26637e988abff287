"""Load GPT-2 weights in the Hugging Face layout (model.safetensors) into GPTModel."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from .config import GPT2_PRESETS, GPTConfig
from .model import GPTModel

__all__ = [
    "config_from_hf_state_dict",
    "hf_to_gpt_state_dict",
    "load_hf_gpt2_weights",
    "load_gpt2_safetensors",
    "download_gpt2_safetensors",
]

_LAYER_KEY = re.compile(r"^h\.(\d+)\.(.+)$")
# buffers some checkpoints store (the old causal mask); they are not weights
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


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
    sd = _strip_prefix(state_dict)
    for key in ("wte.weight", "wpe.weight"):
        if key not in sd:
            raise ValueError(
                f"not a GPT-2 checkpoint: key {key!r} is missing (found e.g. {sorted(sd)[:3]}); "
                "expected the Hugging Face GPT-2 layout (wte, wpe, h.N..., ln_f)"
            )
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
    from safetensors.torch import load_file  # reads tensors only: no pickle, no code

    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no GPT-2 checkpoint at {path}; pass the path of a model.safetensors file")
    if path.suffix != ".safetensors":
        raise ValueError(f"{path.name} is not a .safetensors file; only safetensors checkpoints are read (no pickle)")
    state_dict = load_file(str(path))
    config_json = path.with_name("config.json")
    if n_heads is None and config_json.is_file():
        n_heads = json.loads(config_json.read_text(encoding="utf-8")).get("n_head")
    cfg = config_from_hf_state_dict(state_dict, n_heads=n_heads)
    with torch.device("meta"):
        model = GPTModel(cfg)
    model = model.to_empty(device="cpu")
    if cfg.tie_weights:
        model.out_head.weight = model.tok_emb.weight  # to_empty() breaks the tie: tie again
    load_hf_gpt2_weights(model, state_dict)
    return model.to(dtype).eval()


def download_gpt2_safetensors(name: str = "gpt2", cache_dir: str | None = None) -> Path:
    """Download model.safetensors of gpt2 / gpt2-medium / gpt2-large / gpt2-xl (needs network access)."""
    if name not in GPT2_PRESETS:
        raise ValueError(f"unknown GPT-2 checkpoint {name!r}; choose one of {sorted(GPT2_PRESETS)}")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as err:
        raise ImportError("downloading needs huggingface_hub: pip install 'gpt-helpers[download]'") from err
    folder = None
    for filename in ("config.json", "model.safetensors"):
        folder = Path(
            hf_hub_download(repo_id=f"openai-community/{name}", filename=filename, cache_dir=cache_dir)
        ).parent
    return folder / "model.safetensors"
