"""Part 2, notebooks 06-07: the GPT-2 tokenizer, decoding, the KV cache in use and sampling."""

from .generation import (
    apply_temperature,
    generate,
    generate_text_simple,
    stream_generate,
    top_k_filter,
    top_p_filter,
)
from .tokenizer import (
    END_OF_TEXT_ID,
    get_gpt2_tokenizer,
    text_to_token_ids,
    token_ids_to_text,
)

__all__ = [
    "get_gpt2_tokenizer",
    "text_to_token_ids",
    "token_ids_to_text",
    "END_OF_TEXT_ID",
    "generate_text_simple",
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "generate",
    "stream_generate",
]
