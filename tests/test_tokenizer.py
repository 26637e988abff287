"""The GPT-2 tokenizer, built offline."""

import fnmatch
import subprocess
import sys
import tomllib
from importlib import resources

import pytest
import tiktoken
import torch
from notebook_sync import ROOT

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
    with pytest.raises(ValueError, match="expected GPT-2's .*changed or damaged"):
        tok_module._verified_path("vocab.bpe")


def test_bpe_files_ship_in_the_package_with_their_licence():
    """The files come from gpt_helpers/data (no other package), with OpenAI's licence beside them."""
    data = resources.files("gpt_helpers") / "data"
    for name in ("encoder.json", "vocab.bpe"):
        assert tok_module._verified_path(name) == str(data / name)
    licence = (data / "LICENSE-GPT2.txt").read_text(encoding="utf-8")
    assert "Modified MIT License" in licence and "Copyright (c) 2019 OpenAI" in licence


def test_package_data_covers_the_data_folder():
    """pyproject.toml lists every file of gpt_helpers/data, so a non-editable install (a wheel) has them too."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["gpt_helpers"]
    shipped = sorted(p.relative_to(ROOT / "gpt_helpers").as_posix() for p in (ROOT / "gpt_helpers" / "data").iterdir())
    assert shipped == ["data/LICENSE-GPT2.txt", "data/encoder.json", "data/vocab.bpe"]
    for name in shipped:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), f"{name} is not in package-data"


def test_no_other_tokenizer_package_is_needed():
    code = (
        "import sys; from gpt_helpers import get_gpt2_tokenizer; get_gpt2_tokenizer(); "
        "print(sorted(m for m in sys.modules if 'gpt3' in m or 'tiktoken_ext' in m))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['tiktoken_ext', 'tiktoken_ext.openai_public']"


@pytest.mark.parametrize(
    ("ids", "error", "message"),
    [
        (torch.tensor([50257]), ValueError, r"token id 50257 is outside the tokenizer's vocabulary \[0, 50257\)"),
        (torch.tensor([15496, -1]), ValueError, r"token id -1 is outside the tokenizer's vocabulary \[0, 50257\)"),
        ([2**40], ValueError, r"token id 1099511627776 is outside"),
        (torch.tensor([1.0]), TypeError, "token ids must be integers, got dtype torch.float32; use ids.long()"),
        ([15496.0], TypeError, "token ids must be integers, got dtype torch.float32"),
        (torch.tensor([True]), TypeError, "token ids must be integers, got dtype torch.bool"),
        ("Hello", TypeError, "token ids must be a tensor or a list of ints, got str"),
        (None, TypeError, "token ids must be a tensor or a list of ints, got NoneType"),
        (7, TypeError, "token ids must be a tensor or a list of ints, got int"),
    ],
)
def test_token_ids_to_text_rejects_bad_ids_in_one_line(ids, error, message):
    """Out-of-range, float, bool and non-sequence ids: our one-line error, not tiktoken's KeyError/OverflowError."""
    with pytest.raises(error, match=message) as info:
        token_ids_to_text(ids)
    assert "\n" not in str(info.value)


def test_token_ids_to_text_still_decodes_lists_ints_and_nothing():
    """Lists, int32 tensors, the last id of the vocabulary and empty input keep working."""
    assert token_ids_to_text([15496, 11]) == "Hello,"
    assert token_ids_to_text(torch.tensor([[15496, 11]], dtype=torch.int32)) == "Hello,"
    assert token_ids_to_text([END_OF_TEXT_ID]) == "<|endoftext|>"
    assert token_ids_to_text([]) == token_ids_to_text(torch.tensor([], dtype=torch.long)) == ""


@pytest.mark.parametrize(
    "call",
    [
        lambda: text_to_token_ids("hi", 5),
        lambda: text_to_token_ids("hi", "gpt2"),
        lambda: token_ids_to_text([1], "gpt2"),
    ],
)
def test_a_tokenizer_that_is_not_one_is_named(call):
    """tokenizer=5 or the string "gpt2" gives a TypeError saying what to pass, not an AttributeError."""
    with pytest.raises(TypeError, match=r"tokenizer must be a tiktoken.Encoding \(or have \.(en|de)code\)"):
        call()
