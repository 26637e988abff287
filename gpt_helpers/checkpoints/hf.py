"""Load Hugging Face checkpoints (config.json + safetensors) of GPT-2, Llama and Qwen3 (notebook 09).

Only safetensors files are read (no pickle, no code runs). GPT-2 files go through gpt_helpers.checkpoints.weights.
"""

from __future__ import annotations

import importlib
import json
from os import PathLike
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from ..families.llama_qwen import LlamaQwenConfig, LlamaQwenModel
from ..families.rope import Llama3RopeScaling
from ..gpt2.config import GPTConfig
from ..gpt2.model import GPTModel
from ..text.tokenizer import get_gpt2_tokenizer
from .weights import load_gpt2_safetensors, load_hf_gpt2_weights, read_safetensors

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "HF_CONFIGS",
    "read_hf_config",
    "gpt_config_from_hf",
    "llama_qwen_config_from_hf",
    "model_from_hf_config",
    "read_hf_state_dict",
    "hf_to_llama_qwen_state_dict",
    "load_hf_checkpoint",
    "HFTokenizer",
    "load_hf_tokenizer",
    "tokenizer_for_checkpoint",
]

# model_type -> module of gpt_helpers.families that builds it. Each such module has
#   config_from_hf(config: dict) -> its config, MODEL_CLASS (built from that config, in eval mode on load),
#   state_dict_from_hf(state_dict, cfg) -> the model's own state_dict (names and shapes checked, one-line errors).
FAMILY_MODULES = {
    "deepseek_v3": "deepseek_v3",
    "gemma3_text": "gemma3",
    "qwen3_moe": "qwen3_moe",
    "qwen3_next": "qwen3_next",
}
SUPPORTED_MODEL_TYPES = ("gpt2", "llama", "qwen3", *FAMILY_MODULES)
INDEX_FILE = "model.safetensors.index.json"

# The config.json files of three released models, as published with their weights (facts, kept as data).
HF_CONFIGS: dict[str, dict] = {
    "openai-community/gpt2": {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": 50257,
        "n_positions": 1024,
        "n_ctx": 1024,
        "n_embd": 768,
        "n_layer": 12,
        "n_head": 12,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-05,
        "bos_token_id": 50256,
        "eos_token_id": 50256,
    },
    "Qwen/Qwen3-0.6B": {
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "head_dim": 128,
        "hidden_act": "silu",
        "hidden_size": 1024,
        "initializer_range": 0.02,
        "intermediate_size": 3072,
        "max_position_embeddings": 40960,
        "max_window_layers": 28,
        "model_type": "qwen3",
        "num_attention_heads": 16,
        "num_hidden_layers": 28,
        "num_key_value_heads": 8,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 151936,
    },
    "meta-llama/Llama-3.2-1B": {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 128000,
        "eos_token_id": 128001,
        "head_dim": 64,
        "hidden_act": "silu",
        "hidden_size": 2048,
        "initializer_range": 0.02,
        "intermediate_size": 8192,
        "max_position_embeddings": 131072,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 32,
        "num_hidden_layers": 16,
        "num_key_value_heads": 8,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {
            "factor": 32.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
        "rope_theta": 500000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": 128256,
    },
}


def read_hf_config(path: str | Path) -> dict:
    """Read a config.json (or the one in a folder) into a dict, with one-line errors."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no config.json at {path}; download config.json together with the weights")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path} is not valid JSON; download config.json again") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not a config.json (expected a JSON object); download config.json again")
    return config


def _model_type(config: dict) -> str:
    model_type = config.get("model_type")
    if model_type is None:
        raise ValueError("config.json has no 'model_type'; it should say one of " + ", ".join(SUPPORTED_MODEL_TYPES))
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"model_type {model_type!r} is not supported; gpt_helpers loads {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    return model_type


def _required(config: dict, key: str, model_type: str):
    if config.get(key) is None:
        raise ValueError(f"config.json has no {key!r}, which every {model_type} config.json has; download it again")
    return config[key]


def gpt_config_from_hf(config: dict) -> GPTConfig:
    """The GPTConfig of a Hugging Face GPT-2 config.json dict (biases on Q/K/V, no dropout)."""
    return GPTConfig(
        vocab_size=_required(config, "vocab_size", "gpt2"),
        context_length=_required(config, "n_positions", "gpt2"),
        emb_dim=_required(config, "n_embd", "gpt2"),
        n_heads=_required(config, "n_head", "gpt2"),
        n_layers=_required(config, "n_layer", "gpt2"),
        drop_rate=0.0,
        qkv_bias=True,
        tie_weights=bool(config.get("tie_word_embeddings", True)),  # GPT-2 ties unless told otherwise
    )


def _rope_settings(config: dict) -> tuple[float, Llama3RopeScaling | None]:
    """(rope_theta, scaling) from either layout: transformers 5's rope_parameters or the older rope_scaling."""
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if not isinstance(params, dict):
        raise ValueError(f"config.json's rope settings must be a JSON object, got {params!r}")
    theta = params.get("rope_theta", config.get("rope_theta", 10_000.0))
    if isinstance(theta, bool) or not isinstance(theta, (int, float)):
        raise ValueError(f"config.json's rope_theta must be a number, got {theta!r}; download config.json again")
    kind = params.get("rope_type", params.get("type", "default"))
    if kind == "default":
        return float(theta), None
    if kind != "llama3":
        raise ValueError(
            f"RoPE scaling type {kind!r} in config.json is not supported for llama/qwen3; "
            "gpt_helpers' Llama/Qwen3 loader implements 'default' (no scaling) and 'llama3'"
        )
    try:
        scaling = Llama3RopeScaling(
            factor=params["factor"],
            low_freq_factor=params["low_freq_factor"],
            high_freq_factor=params["high_freq_factor"],
            original_context_length=params.get(
                "original_max_position_embeddings", config.get("max_position_embeddings")
            ),
        )
    except KeyError as err:
        missing = err.args[0]
        raise ValueError(f"config.json's llama3 RoPE scaling has no {missing!r}; download config.json again") from None
    except ValueError as err:
        raise ValueError(f"config.json's llama3 RoPE scaling is invalid: {err}") from None
    return float(theta), scaling


def llama_qwen_config_from_hf(config: dict) -> LlamaQwenConfig:
    """The LlamaQwenConfig of a Hugging Face config.json dict with model_type llama or qwen3."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be the dict of a config.json, got {type(config).__name__}; see read_hf_config")
    model_type = _model_type(config)
    if model_type == "gpt2":
        raise ValueError("this is a GPT-2 config.json; use gpt_config_from_hf or model_from_hf_config")
    unsupported = {
        "attention_bias": "biases on the attention projections",
        "mlp_bias": "biases in the feed-forward network",
        "use_sliding_window": "sliding-window attention",
    }
    for key, what in unsupported.items():
        if config.get(key):
            raise ValueError(f"config.json sets {key}=true ({what}); gpt_helpers' {model_type} model has none")
    if config.get("hidden_act", "silu") != "silu":
        raise ValueError(f"config.json uses hidden_act={config['hidden_act']!r}; the SwiGLU network here uses 'silu'")
    emb_dim = _required(config, "hidden_size", model_type)
    n_heads = _required(config, "num_attention_heads", model_type)
    theta, scaling = _rope_settings(config)
    tie = config.get("tie_word_embeddings", False)
    if not isinstance(tie, bool):
        raise ValueError(f"config.json's tie_word_embeddings must be true or false, got {tie!r}")
    n_kv_heads, head_dim = config.get("num_key_value_heads"), config.get("head_dim")
    if head_dim is None:  # absent: emb_dim // n_heads, as transformers does
        if not (isinstance(emb_dim, int) and isinstance(n_heads, int) and n_heads > 0):
            raise ValueError(
                f"config.json's hidden_size and num_attention_heads must be positive ints, got "
                f"{emb_dim!r} and {n_heads!r}"
            )
        head_dim = emb_dim // n_heads
    try:
        return LlamaQwenConfig(
            vocab_size=_required(config, "vocab_size", model_type),
            context_length=_required(config, "max_position_embeddings", model_type),
            emb_dim=emb_dim,
            n_heads=n_heads,
            n_kv_heads=n_heads if n_kv_heads is None else n_kv_heads,  # absent: one key/value head per query head
            head_dim=head_dim,
            n_layers=_required(config, "num_hidden_layers", model_type),
            hidden_dim=_required(config, "intermediate_size", model_type),
            rope_theta=theta,
            rope_scaling=scaling,
            qk_norm=model_type == "qwen3",
            norm_eps=config.get("rms_norm_eps", 1e-6),
            tie_weights=tie,
        )
    except (TypeError, ValueError) as err:  # our field names; say which file is wrong
        raise ValueError(f"config.json does not describe a valid {model_type} model: {err}") from None


def _family(model_type: str) -> ModuleType | None:
    """The families module for a model_type of FAMILY_MODULES, else None (GPT-2, Llama and Qwen3 are built here)."""
    name = FAMILY_MODULES.get(model_type)
    # imported on first use: the family modules import much of the package, which imports this module
    return None if name is None else importlib.import_module(f"..families.{name}", __package__)


def model_from_hf_config(config: dict, device=None, dtype: torch.dtype | None = None) -> nn.Module:
    """Build the course's model for a config.json dict (device="meta": shapes only)."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be the dict of a config.json, got {type(config).__name__}; see read_hf_config")
    _check_dtype(dtype, allow_none=True)
    device = _checked_device(device)
    model_type = _model_type(config)
    family = _family(model_type)
    if family is not None:
        cls, cfg = family.MODEL_CLASS, family.config_from_hf(config)
    elif model_type == "gpt2":
        cls, cfg = GPTModel, gpt_config_from_hf(config)
    else:
        cls, cfg = LlamaQwenModel, llama_qwen_config_from_hf(config)
    with torch.device(device or "cpu"):
        model = cls(cfg)
    return model if dtype is None else model.to(dtype)


def _weights_location(path: Path) -> tuple[Path, Path]:
    """(folder, weights file) for a folder, a model.safetensors file or a model.safetensors.index.json file."""
    if path.is_dir():
        for name in ("model.safetensors", INDEX_FILE):
            if (path / name).is_file():
                return path, path / name
        found = ", ".join(sorted(p.name for p in path.iterdir())[:6]) or "nothing"
        raise ValueError(
            f"{path} is a folder without model.safetensors or {INDEX_FILE} (it holds: {found}); "
            "pass the folder of a safetensors checkpoint"
        )
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; pass a checkpoint folder or its model.safetensors")
    if not (path.name.endswith(".safetensors") or path.name == INDEX_FILE):
        raise ValueError(f"{path.name} is not a .safetensors file; only safetensors checkpoints are read (no pickle)")
    return path.parent, path


def read_hf_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint: one model.safetensors, or every shard listed in model.safetensors.index.json."""

    folder, weights = _weights_location(Path(path))
    if weights.name != INDEX_FILE:
        return read_safetensors(weights)
    try:
        weight_map = json.loads(weights.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise ValueError(f"{weights} is not a valid {INDEX_FILE} (no weight_map); download it again") from None
    missing = [name for name in shards if not (folder / name).is_file()]
    if missing:
        raise ValueError(
            f"shard {missing[0]} listed in {INDEX_FILE} is missing from {folder} "
            f"({len(missing)} of {len(shards)} shards missing); download every shard into that folder"
        )
    state_dict: dict[str, torch.Tensor] = {}
    for name in shards:
        state_dict.update(read_safetensors(folder / name))
    absent = sorted(key for key, shard in weight_map.items() if key not in state_dict)
    if absent:
        raise ValueError(
            f"{INDEX_FILE} says {absent[0]!r} is in {weight_map[absent[0]]}, but that shard does not hold it; "
            "the shards and the index do not belong together: download them again"
        )
    return state_dict


def _llama_qwen_key_map(cfg: LlamaQwenConfig) -> dict[str, str]:
    """Hugging Face tensor name -> LlamaQwenModel state_dict name, for every tensor a checkpoint must hold."""
    names = {"model.embed_tokens.weight": "tok_emb.weight", "model.norm.weight": "final_norm.scale"}
    if not cfg.tie_weights:
        names["lm_head.weight"] = "out_head.weight"
    per_layer = {
        "input_layernorm.weight": "norm1.scale",
        "self_attn.q_proj.weight": "att.W_query.weight",
        "self_attn.k_proj.weight": "att.W_key.weight",
        "self_attn.v_proj.weight": "att.W_value.weight",
        "self_attn.o_proj.weight": "att.out_proj.weight",
        "post_attention_layernorm.weight": "norm2.scale",
        "mlp.gate_proj.weight": "ff.gate.weight",
        "mlp.up_proj.weight": "ff.up.weight",
        "mlp.down_proj.weight": "ff.down.weight",
    }
    if cfg.qk_norm:
        per_layer |= {"self_attn.q_norm.weight": "att.q_norm.scale", "self_attn.k_norm.weight": "att.k_norm.scale"}
    for i in range(cfg.n_layers):
        names |= {f"model.layers.{i}.{hf}": f"trf_blocks.{i}.{ours}" for hf, ours in per_layer.items()}
    return names


def _listed(keys: list[str]) -> str:
    return str(keys[:3])[:-1] + (f", ... ({len(keys)} in all)]" if len(keys) > 3 else "]")


def hf_to_llama_qwen_state_dict(state_dict: dict[str, torch.Tensor], cfg: LlamaQwenConfig) -> dict[str, torch.Tensor]:
    """Rename Hugging Face Llama/Qwen3 tensors to LlamaQwenModel's names, checking names and shapes."""
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise TypeError("state_dict must be a dict of tensors, e.g. read_hf_state_dict(folder)")
    if not isinstance(cfg, LlamaQwenConfig):
        raise TypeError(f"cfg must be a LlamaQwenConfig (llama_qwen_config_from_hf), got {type(cfg).__name__}")
    names = _llama_qwen_key_map(cfg)
    given = {k: v for k, v in state_dict.items() if not k.endswith("rotary_emb.inv_freq")}  # old files: a buffer
    if cfg.tie_weights and "lm_head.weight" in given:
        head = given.pop("lm_head.weight")
        embedding = given.get("model.embed_tokens.weight")
        if embedding is not None and not head.is_meta and not torch.equal(head, embedding):
            raise ValueError(
                "lm_head.weight differs from model.embed_tokens.weight, but config.json says "
                "tie_word_embeddings=true; set it to false in config.json"
            )
    missing = sorted(set(names) - set(given))
    if missing:
        raise ValueError(
            f"checkpoint is missing {_listed(missing)}; are all shards there, and does config.json "
            "(num_hidden_layers, model_type, tie_word_embeddings) belong to these weights?"
        )
    unexpected = sorted(set(given) - set(names))
    if unexpected:
        raise ValueError(
            f"checkpoint has unexpected tensors {_listed(unexpected)}; does config.json "
            "(num_hidden_layers, model_type, tie_word_embeddings) belong to these weights?"
        )
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in LlamaQwenModel(cfg).state_dict().items()}
    for hf_name, ours in names.items():
        if not given[hf_name].is_floating_point():
            raise ValueError(
                f"{hf_name!r} has dtype {given[hf_name].dtype}: quantized or damaged weights are not supported; "
                "use a checkpoint with float32, float16 or bfloat16 weights"
            )
        if tuple(given[hf_name].shape) != shapes[ours]:
            raise ValueError(
                f"shape mismatch for {hf_name!r}: the checkpoint has {tuple(given[hf_name].shape)}, "
                f"config.json implies {shapes[ours]}; config.json and the weights do not belong together"
            )
    return {ours: given[hf_name] for hf_name, ours in names.items()}


def _check_dtype(dtype, allow_none: bool = False) -> None:
    if (dtype is None and allow_none) or (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        return
    raise TypeError(f"dtype must be a floating torch.dtype such as torch.float32 or torch.bfloat16, got {dtype!r}")


def _checked_device(device) -> torch.device:
    try:
        device = torch.device(device or "cpu")
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a torch device; use 'cpu' or 'meta'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} is not available: this torch has no usable CUDA; use 'cpu'")
    return device


def load_hf_checkpoint(path: str | Path, *, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Load a Hugging Face checkpoint folder (config.json + safetensors, sharded or not) as the course's model.

    model_type gpt2 gives a GPTModel, llama and qwen3 a LlamaQwenModel; returned in eval mode, as `dtype`.
    `path` is the folder, its model.safetensors or its model.safetensors.index.json. A lone GPT-2
    model.safetensors without config.json is read as before (the tensor shapes tell its size).
    """
    if not isinstance(path, (str, PathLike)):
        raise TypeError(f"path must be a folder or file path (str or Path), got {type(path).__name__}")
    _check_dtype(dtype)
    folder, weights = _weights_location(Path(path))
    if not (folder / "config.json").is_file():
        if weights.name == "model.safetensors":
            return load_gpt2_safetensors(weights, dtype=dtype)
        raise FileNotFoundError(
            f"no config.json in {folder}; load_hf_checkpoint needs it to know the model type and sizes"
        )
    config = read_hf_config(folder)
    model_type = _model_type(config)
    state_dict = read_hf_state_dict(weights)
    family = _family(model_type)
    if family is None and model_type != "gpt2":  # llama, qwen3: names and shapes checked before memory is taken
        state_dict = hf_to_llama_qwen_state_dict(state_dict, llama_qwen_config_from_hf(config))
    model = model_from_hf_config(config, device="meta").to_empty(device="cpu")  # shapes only, then memory
    if getattr(model.cfg, "tie_weights", False):
        model.out_head.weight = model.tok_emb.weight  # to_empty() breaks the tie: tie again
    if family is not None:
        own = model.state_dict()
        with torch.no_grad():
            for key, value in family.state_dict_from_hf(state_dict, model.cfg).items():
                own[key].copy_(value)
    elif model_type == "gpt2":
        load_hf_gpt2_weights(model, state_dict)
    else:
        own = model.state_dict()
        with torch.no_grad():
            for key, value in state_dict.items():  # already renamed and checked above
                own[key].copy_(value)  # converts bfloat16 files to the model's float32
    return model.to(dtype).eval()


def _byte_decoder() -> dict[str, int]:
    """Inverse of the byte-level BPE alphabet: each of the 256 bytes is written as one printable character."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:  # spaces, control bytes, ...: moved to unused code points from 256 on
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


class HFTokenizer:
    """A tokenizer.json (Hugging Face `tokenizers`) behind the small interface the course uses from tiktoken."""

    def __init__(self, tokenizer, eos_id: int | None = None):
        self.tokenizer = tokenizer
        self.eos_id = eos_id
        decoder = json.loads(tokenizer.to_str()).get("decoder") or {}
        parts = decoder.get("decoders", [decoder])  # a Sequence of decoders, or a single one
        self.byte_level = any(part.get("type") == "ByteLevel" for part in parts)
        self._bytes = _byte_decoder() if self.byte_level else None
        self._special = {i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}

    @property
    def n_vocab(self) -> int:
        """Number of token ids, added tokens included."""
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, allowed_special=()) -> list[int]:
        """Token ids of text (the tokenizer's own special tokens, e.g. a leading BOS, included)."""
        return self.tokenizer.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        """Text of token ids."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def decode_bytes(self, ids: list[int]) -> bytes:
        """UTF-8 bytes of token ids; with byte-level BPE a character may end in the next token."""
        if not self.byte_level:
            return self.decode(ids).encode("utf-8")
        out = bytearray()
        for i in ids:
            piece = self.tokenizer.id_to_token(int(i))
            if piece is None:
                raise ValueError(f"token id {i} is not in the tokenizer's vocabulary of {self.n_vocab}")
            if int(i) in self._special or any(ch not in self._bytes for ch in piece):
                out += piece.encode("utf-8")  # special/added tokens are stored as plain text
            else:
                out += bytes(self._bytes[ch] for ch in piece)
        return bytes(out)


def load_hf_tokenizer(path: str | Path) -> HFTokenizer:
    """The tokenizer.json of a checkpoint folder (needs the `tokenizers` library), as an HFTokenizer."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    file = path if path.name == "tokenizer.json" else folder / "tokenizer.json"
    if not file.is_file():
        raise FileNotFoundError(f"no tokenizer.json in {folder}; download it with the weights, or use GPT-2's")
    try:
        from tokenizers import Tokenizer
    except ImportError as err:
        raise ImportError(
            "reading tokenizer.json needs the tokenizers library: "
            "pip install 'gpt-helpers[hf]' (or pip install tokenizers)"
        ) from err
    try:
        tokenizer = Tokenizer.from_file(str(file))
    except Exception as err:  # the library raises its own exception type with a long message
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{file} could not be read as a tokenizer.json ({first}); download it again") from None
    eos = None
    if (folder / "config.json").is_file():
        eos = read_hf_config(folder).get("eos_token_id")
        eos = eos[0] if isinstance(eos, list) and eos else eos
    return HFTokenizer(tokenizer, eos_id=eos if isinstance(eos, int) else None)


def tokenizer_for_checkpoint(path: str | Path | None):
    """The tokenizer.json beside a checkpoint if there is one, else the GPT-2 tokenizer (tiktoken)."""

    if path is not None:
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        if (folder / "tokenizer.json").is_file():
            return load_hf_tokenizer(folder)
    return get_gpt2_tokenizer()
