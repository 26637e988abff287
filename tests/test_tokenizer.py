"""The GPT-2 tokenizer, built offline."""

import pytest
import tiktoken
import torch

from gpt_helpers import END_OF_TEXT_ID, get_gpt2_tokenizer, text_to_token_ids, token_ids_to_text
from gpt_helpers import tokenizer as tok_module


def test_is_real_tiktoken_encoding():
    tok = get_gpt2_tokenizer()
    assert isinstance(tok, tiktoken.Encoding)
    assert tok.n_vocab == 50257 and tok.eot_token == END_OF_TEXT_ID == 50256


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("Hello, I am", [15496, 11, 314, 716]),
        ("Every effort moves you", [6109, 3626, 6100, 345]),
        ("Every day holds a", [6109, 1110, 6622, 257]),
    ],
)
def test_known_ids(text, ids):
    assert get_gpt2_tokenizer().encode(text) == ids
    assert text_to_token_ids(text).tolist() == [ids]


def test_round_trip_unicode_and_special():
    text = "层归一化 (LayerNorm) works 🙂<|endoftext|>again"
    ids = text_to_token_ids(text)
    assert ids.shape[0] == 1 and ids.dtype == torch.long
    assert END_OF_TEXT_ID in ids[0].tolist()
    assert token_ids_to_text(ids) == text
    assert token_ids_to_text(ids[0]) == text


def test_bad_input():
    with pytest.raises(TypeError, match="text must be a str"):
        text_to_token_ids(123)
    with pytest.raises(ValueError, match="decodes one sequence, got a batch of 2"):
        token_ids_to_text(torch.zeros(2, 3, dtype=torch.long))


def test_checksum_is_verified(monkeypatch):
    monkeypatch.setitem(tok_module._SHA256, "vocab.bpe", "0" * 64)
    with pytest.raises(ValueError, match="expected GPT-2's"):
        tok_module._verified_path("vocab.bpe")
