"""The command line: python -m gpt_helpers generate ..."""

import subprocess
import sys

import pytest
from helpers import hf_gpt2

from gpt_helpers import generate, text_to_token_ids, token_ids_to_text
from gpt_helpers.cli import main
from gpt_helpers.weights import load_gpt2_safetensors


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    hf = hf_gpt2(vocab_size=50257, n_positions=32, n_embd=32, n_layer=2, n_head=4, seed=5)
    folder = tmp_path_factory.mktemp("ckpt")
    hf.save_pretrained(folder, safe_serialization=True)
    return folder


def test_generate_with_weights_streams_same_text_as_library(checkpoint, capsys):
    assert main(["generate", "Hello, I am", "--max-new-tokens", "8", "--weights", str(checkpoint)]) == 0
    out, err = capsys.readouterr()
    model = load_gpt2_safetensors(checkpoint)
    expected = token_ids_to_text(generate(model, text_to_token_ids("Hello, I am"), 8))
    assert out == expected + "\n"
    assert "tokens/s" in err and "UNTRAINED" not in err


def test_sampling_options_are_reproducible(checkpoint, capsys):
    argv = ["generate", "Hi", "--max-new-tokens", "6", "--weights", str(checkpoint), "--temperature", "1.0"]
    main([*argv, "--top-k", "50", "--seed", "3"])
    first = capsys.readouterr().out
    main([*argv, "--top-k", "50", "--seed", "3"])
    assert capsys.readouterr().out == first


def test_untrained_default_says_so():
    result = subprocess.run(
        [sys.executable, "-m", "gpt_helpers", "generate", "Hello, I am", "--max-new-tokens", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Hello, I am") and len(result.stdout) > len("Hello, I am\n")
    assert "UNTRAINED 124M model" in result.stderr and "tokens/s" in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--temperature", "-1"], "--temperature must be >= 0"),
        (["--top-p", "1.5"], r"--top-p must be in \(0, 1\]"),
        (["--top-k", "0"], "must be >= 1"),
    ],
)
def test_bad_arguments(extra, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["generate", "Hi", *extra])
    assert exc.value.code == 2
    assert message.replace("\\", "") in capsys.readouterr().err


def test_missing_weights_file(tmp_path, capsys):
    assert main(["generate", "Hi", "--weights", str(tmp_path / "missing.safetensors")]) == 2
    assert "no GPT-2 checkpoint" in capsys.readouterr().err
