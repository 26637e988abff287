"""The GPT-2 tokenizer, built offline from GPT-2's BPE files shipped in gpt_helpers/data (notebook 06)."""

from __future__ import annotations

import functools
import hashlib
from importlib import resources

import tiktoken
import torch
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

__all__ = ["get_gpt2_tokenizer", "text_to_token_ids", "token_ids_to_text", "END_OF_TEXT_ID"]

END_OF_TEXT_ID = 50256  # id of <|endoftext|>, the last entry of GPT-2's vocabulary

# sha256 of the two files of the original GPT-2 release (the values tiktoken checks when it downloads
# them). The files ship inside this package (gpt_helpers/data, with OpenAI's licence in LICENSE-GPT2.txt).
_SHA256 = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}


def _verified_path(name: str) -> str:
    """Path of one of GPT-2's BPE files in gpt_helpers/data, after checking its sha256."""
    path = resources.files("gpt_helpers") / "data" / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{name} is missing from gpt_helpers/data; reinstall the course package (pip install -r requirements.txt)"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != _SHA256[name]:
        raise ValueError(
            f"{path} has sha256 {digest}, expected GPT-2's {_SHA256[name]}; the file was changed or damaged: "
            "restore it (git checkout) or reinstall the course package"
        )
    return str(path)


@functools.lru_cache(maxsize=1)
def get_gpt2_tokenizer() -> tiktoken.Encoding:
    """Return a tiktoken Encoding identical to tiktoken's "gpt2", without any download."""
    from tiktoken_ext.openai_public import ENDOFTEXT, r50k_pat_str

    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=_verified_path("vocab.bpe"),
        encoder_json_file=_verified_path("encoder.json"),
    )
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=r50k_pat_str,  # tiktoken's own GPT-2 split pattern
        mergeable_ranks=ranks,
        special_tokens={ENDOFTEXT: END_OF_TEXT_ID},
        explicit_n_vocab=50257,
    )


def _tokenizer_or_gpt2(tokenizer, method: str):
    """The given tokenizer (checked to have `method`), or GPT-2's when it is None."""
    if tokenizer is None:
        return get_gpt2_tokenizer()
    if isinstance(tokenizer, (str, bytes)) or not callable(getattr(tokenizer, method, None)):
        raise TypeError(
            f"tokenizer must be a tiktoken.Encoding (or have .{method}), got {type(tokenizer).__name__} "
            f"{tokenizer!r}; leave it out for GPT-2's, or pass get_gpt2_tokenizer()"
        )
    return tokenizer


def text_to_token_ids(text: str, tokenizer: tiktoken.Encoding | None = None) -> torch.Tensor:
    """Encode text into a (1, T) tensor of token ids; <|endoftext|> is allowed."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    tokenizer = _tokenizer_or_gpt2(tokenizer, "encode")
    ids = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    return torch.tensor(ids, dtype=torch.long).unsqueeze(0)  # add the batch dimension


def token_ids_to_text(token_ids: torch.Tensor, tokenizer: tiktoken.Encoding | None = None) -> str:
    """Decode a (1, T) or (T,) tensor (or list) of token ids back into text."""
    if isinstance(token_ids, (list, tuple)):
        token_ids = torch.tensor(token_ids) if token_ids else torch.zeros(0, dtype=torch.long)
    if not isinstance(token_ids, torch.Tensor):
        raise TypeError(f"token ids must be a tensor or a list of ints, got {type(token_ids).__name__}")
    if token_ids.dtype not in (torch.long, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise TypeError(f"token ids must be integers, got dtype {token_ids.dtype}; use ids.long()")
    if token_ids.dim() == 2:
        if token_ids.shape[0] != 1:
            raise ValueError(
                f"token_ids_to_text decodes one sequence, got a batch of {token_ids.shape[0]}; decode each row"
            )
        token_ids = token_ids[0]
    if token_ids.dim() != 1:
        raise ValueError(f"token ids must have shape (T,) or (1, T), got {tuple(token_ids.shape)}")
    tokenizer = _tokenizer_or_gpt2(tokenizer, "decode")
    if token_ids.numel() > 0:
        lo, hi = int(token_ids.min()), int(token_ids.max())
        if lo < 0 or hi >= tokenizer.n_vocab:
            raise ValueError(
                f"token id {lo if lo < 0 else hi} is outside the tokenizer's vocabulary [0, {tokenizer.n_vocab}); "
                "were these ids made by another tokenizer or a model with a larger vocab_size?"
            )
    return tokenizer.decode(token_ids.tolist())
