"""The GPT model and parameter accounting (notebook 05)."""

from __future__ import annotations

import torch
from torch import nn

from .attention import KVCache
from .block import TransformerBlock
from .config import GPTConfig
from .normalization import LayerNorm

__all__ = ["GPTModel", "check_token_ids", "count_parameters", "parameter_breakdown", "model_size_mib"]


def check_token_ids(in_idx: torch.Tensor, vocab_size: int) -> None:
    """Raise a clear error unless in_idx is a 2-D integer tensor of ids in [0, vocab_size)."""
    if not isinstance(in_idx, torch.Tensor):
        raise TypeError(
            f"token ids must be a torch.Tensor, got {type(in_idx).__name__}; "
            "wrap them with torch.tensor([[...]]) or use text_to_token_ids()"
        )
    if in_idx.dtype not in (torch.long, torch.int32):  # what nn.Embedding can look up
        raise TypeError(f"token ids must be an integer tensor (torch.long), got dtype {in_idx.dtype}; use ids.long()")
    if in_idx.dim() != 2:
        raise ValueError(
            f"token ids must be 2-D with shape (batch, seq_len), got shape {tuple(in_idx.shape)}; "
            "for one sequence use ids.unsqueeze(0)"
        )
    if in_idx.shape[1] == 0:
        raise ValueError("token ids are empty (seq_len is 0); give at least one token")
    if in_idx.shape[0] == 0:
        raise ValueError("the batch is empty (batch size 0); give at least one sequence")
    if in_idx.device.type != "meta":
        lo, hi = int(in_idx.min()), int(in_idx.max())
        if lo < 0 or hi >= vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"token id {bad} is outside the vocabulary [0, {vocab_size}); check the tokenizer and vocab_size"
            )


class GPTModel(nn.Module):
    """GPT-2: token + position embeddings, N Transformer blocks, final LayerNorm, output head."""

    def __init__(self, cfg: GPTConfig | dict):
        super().__init__()
        cfg = GPTConfig.ensure(cfg, "GPTModel")  # also takes the book's dict config, e.g. GPT_CONFIG_124M
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)  # one learned vector per token id
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim)  # learned, one vector per position
        self.drop_emb = nn.Dropout(cfg.drop_rate)
        self.trf_blocks = nn.ModuleList(
            TransformerBlock(cfg) for _ in range(cfg.n_layers)
        )  # same structure, own weights
        self.final_norm = LayerNorm(cfg.emb_dim)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            # weight tying: the head and the token embedding are one Parameter (both are vocab_size x emb_dim)
            self.out_head.weight = self.tok_emb.weight

    def forward(self, in_idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        # cache: a KV cache for fast generation (notebook 07); None means the plain forward pass
        check_token_ids(in_idx, self.cfg.vocab_size)
        # duck-typed: notebook 07 defines its own KVCache class before importing the package's
        layers = getattr(cache, "layers", None)
        if cache is not None and not (
            hasattr(cache, "length") and layers is not None and len(layers) == self.cfg.n_layers
        ):
            raise ValueError(
                f"cache must be a KVCache with one layer per block ({self.cfg.n_layers}), got {type(cache).__name__}; "
                "make it with KVCache.for_model(model, batch_size)"
            )
        batch_size, seq_len = in_idx.shape  # (B, T)
        start = 0 if cache is None else cache.length  # position of the first new token
        if start + seq_len > self.cfg.context_length:
            raise ValueError(
                f"sequence of {start + seq_len} tokens is longer than context_length={self.cfg.context_length}; "
                f"keep only the last {self.cfg.context_length} tokens (in_idx[:, -context_length:]), "
                "as generate_text_simple does"
            )
        tok_embeds = self.tok_emb(in_idx)  # (B, T, C)
        pos_embeds = self.pos_emb(torch.arange(start, start + seq_len, device=in_idx.device))  # (T, C)
        x = self.drop_emb(tok_embeds + pos_embeds)  # broadcast over the batch: (B, T, C)
        for i, block in enumerate(self.trf_blocks):
            x = block(x, kv_cache=None if cache is None else cache.layers[i])
        x = self.final_norm(x)
        return self.out_head(x)  # logits: (B, T, vocab_size)


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters; a tied (shared) Parameter is counted once."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters expects an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters())


def model_size_mib(n_params: int, bytes_per_param: int = 4) -> float:
    """Memory of n_params values in MiB (1 MiB = 1024 * 1024 bytes); float32 by default."""
    if isinstance(n_params, bool) or not isinstance(n_params, int) or n_params < 0:
        raise ValueError(f"model_size_mib: n_params must be a non-negative int, got {n_params!r}")
    if (
        isinstance(bytes_per_param, bool)
        or not isinstance(bytes_per_param, (int, float))
        or not 0 < bytes_per_param < float("inf")
    ):
        raise ValueError(f"model_size_mib: bytes_per_param must be positive (4 for float32), got {bytes_per_param!r}")
    return n_params * bytes_per_param / (1024 * 1024)


def parameter_breakdown(cfg: GPTConfig) -> dict[str, int]:
    """Parameters per component, counted on the meta device so no weights are allocated."""
    with torch.device("meta"):
        model = GPTModel(cfg)
    block = model.trf_blocks[0]
    tied = cfg.tie_weights
    parts = {
        "token_embedding": model.tok_emb.weight.numel(),
        "position_embedding": model.pos_emb.weight.numel(),
        "attention": cfg.n_layers * count_parameters(block.att),
        "feed_forward": cfg.n_layers * count_parameters(block.ff),
        "layer_norms": cfg.n_layers * (count_parameters(block.norm1) + count_parameters(block.norm2))
        + count_parameters(model.final_norm),
        "output_head": 0 if tied else model.out_head.weight.numel(),
    }
    parts["total"] = count_parameters(model)
    if sum(v for k, v in parts.items() if k != "total") != parts["total"]:
        raise AssertionError("parameter breakdown does not add up to the model's total")
    return parts
