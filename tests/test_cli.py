"""The command line: python -m gpt_helpers generate ..."""

import subprocess
import sys

import pytest
import torch
from helpers import hf_gpt2

from gpt_helpers import generate, text_to_token_ids, token_ids_to_text
from gpt_helpers.checkpoints.weights import load_gpt2_safetensors
from gpt_helpers.cli import main


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
    assert "no checkpoint at" in capsys.readouterr().err


# ---- damaged or wrong weight files: exit code 2 and one line on stderr, no traceback --------------


def _damaged_files(folder, good):
    """One file (or folder) per way a learner's checkpoint can be broken; the part of the message to expect."""
    data = (good / "model.safetensors").read_bytes()
    cases = {}
    for name, content, expected in [
        ("truncated.safetensors", data[: len(data) // 2], "is truncated"),
        ("empty.safetensors", b"", "is empty (0 bytes)"),
        ("random.safetensors", bytes(range(7, 256)) * 4, "is not a safetensors file"),
        ("config.json", b'{"n_head": 4}', "is a JSON file"),
    ]:
        (folder / name).write_bytes(content)
        cases[name] = (folder / name, expected)
    torch.save({"w": torch.zeros(2)}, folder / "model.pth")
    cases["pth"] = (folder / "model.pth", "written by torch.save")
    empty_dir = folder / "no_weights"
    empty_dir.mkdir()
    (empty_dir / "config.json").write_text("{}")
    cases["folder"] = (empty_dir, "is a folder without model.safetensors")
    return cases


def test_damaged_weights_give_one_line_and_exit_code_2(checkpoint, tmp_path, capsys):
    for path, expected in _damaged_files(tmp_path, checkpoint).values():
        assert main(["generate", "Hi", "--max-new-tokens", "2", "--weights", str(path)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1, err
        assert err.startswith(f"error: {path}") and expected in err, err


def test_damaged_weights_from_the_shell_no_traceback(checkpoint, tmp_path):
    data = (checkpoint / "model.safetensors").read_bytes()
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(data[:-100])  # a download that stopped 100 bytes short
    result = subprocess.run(
        [sys.executable, "-m", "gpt_helpers", "generate", "Hi", "--weights", str(bad)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {bad} is truncated: its header describes {len(data) - 8 - _header_len(data):,} bytes of tensor "
        f"data but only {len(data) - 108 - _header_len(data):,} are there (a download that did not finish?); "
        "download or save it again"
    ]


def _header_len(data: bytes) -> int:
    return int.from_bytes(data[:8], "little")


def test_weights_written_by_save_model(tmp_path, capsys):
    from gpt_helpers import GPTConfig, GPTModel, save_model
    from gpt_helpers.training.loop import load_model

    torch.manual_seed(0)
    model = GPTModel(GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0))
    path = save_model(model, tmp_path / "model.safetensors")
    assert main(["generate", "Hello", "--max-new-tokens", "4", "--weights", str(path)]) == 0
    expected = token_ids_to_text(generate(load_model(path), text_to_token_ids("Hello"), 4))
    assert capsys.readouterr().out == expected + "\n"


# ---- bad values and a missing optional library: one line, exit code 2 (issue 17) ---------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--temperature", "nan"], "argument --temperature: must be a finite number, got 'nan'"),
        (["--temperature", "inf"], "argument --temperature: must be a finite number, got 'inf'"),
        (["--temperature", "warm"], "argument --temperature: expected a number, got 'warm'"),
        (["--top-p", "nan"], "argument --top-p: must be a finite number, got 'nan'"),
        (["--top-k", "1.5"], "argument --top-k: expected a whole number >= 1, got '1.5'"),
        (["--max-new-tokens", "ten"], "argument --max-new-tokens: expected a whole number >= 0, got 'ten'"),
        (["--seed", str(2**70)], "argument --seed: must be in [-2**63, 2**64)"),
    ],
)
def test_bad_numbers_are_refused_by_the_parser(extra, message, capsys):
    """nan/inf used to reach the sampler (a torch RuntimeError or top-k silently off); a huge seed, torch's."""
    with pytest.raises(SystemExit) as exc:
        main(["generate", "Hi", *extra])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_tokenizer_json_without_the_tokenizers_library(checkpoint, tmp_path, capsys, monkeypatch):
    """A checkpoint folder with tokenizer.json, `tokenizers` not installed: one line naming the fix, exit 2."""
    folder = tmp_path / "with_tokenizer"
    folder.mkdir()
    for f in checkpoint.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "tokenizer.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # what `import tokenizers` sees when it is missing
    loaded = []
    monkeypatch.setattr("gpt_helpers.cli._load_model", lambda *a: loaded.append(a))
    assert main(["generate", "Hi", "--max-new-tokens", "2", "--weights", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "error: reading tokenizer.json needs the tokenizers library: "
        "pip install 'gpt-helpers[hf]' (or pip install tokenizers)"
    ]
    assert loaded == []  # it failed before reading the weights


def test_ctrl_c_while_streaming_ends_quietly(checkpoint, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        yield torch.tensor([[11]])
        raise KeyboardInterrupt

    monkeypatch.setattr("gpt_helpers.text.generation.stream_generate", interrupted)
    assert main(["generate", "Hi", "--max-new-tokens", "5", "--weights", str(checkpoint)]) == 130
    out, err = capsys.readouterr()
    assert out == "Hi," and err.strip().splitlines()[-1] == "interrupted"
