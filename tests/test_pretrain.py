"""Pretraining (issue 20): data preparation, the step pieces, exact resume, atomic checkpoints, one-line errors."""

from __future__ import annotations

import hashlib
import json
import math
import os

import numpy as np
import pytest
import torch

from gpt_helpers import GPTConfig, GPTModel, get_gpt2_tokenizer
from gpt_helpers.cli import main
from gpt_helpers.training import data as data_module
from gpt_helpers.training import pretraining as pretrain_module
from gpt_helpers.training.data import (
    WindowSampler,
    eval_windows,
    load_data_dir,
    prepare_data,
    read_document,
    split_documents,
    stdlib_sources,
)
from gpt_helpers.training.optim import accumulate_gradients, clip_gradients, lr_at, param_groups
from gpt_helpers.training.pretraining import PretrainSettings, latest_checkpoint, load_checkpoint, pretrain

TINY = {"vocab_size": 50257, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 2, "drop_rate": 0.1}
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()


def _write_corpus(folder, n_files=8):
    """n_files small English-like text files, different from each other (seeded)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        words = rng.choice(WORDS, size=300 + 40 * i)
        (folder / f"doc{i}.txt").write_text(" ".join(words) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    corpus = _write_corpus(root / "corpus")
    prepare_data([corpus], root / "data", val_fraction=0.25, license="test corpus")
    return root / "data"


def _settings(**changes):
    base = dict(steps=6, batch_size=4, micro_batch_size=2, warmup=2, eval_every=3, save_every=3, eval_windows=4)
    return PretrainSettings(**(base | changes))


def _losses(run_dir):
    return [(r["step"], r.get("loss"), r.get("val_loss")) for r in map(json.loads, open(run_dir / "metrics.jsonl"))]


# ---- data --------------------------------------------------------------------------------------


def test_prepare_data_writes_every_document_once_with_its_hash(data_dir, tmp_path):
    meta = json.loads((data_dir / "meta.json").read_text())
    assert meta["tokenizer"] == "gpt2" and meta["dtype"] == "uint16" and meta["license"] == "test corpus"
    assert meta["train"]["documents"] + meta["val"]["documents"] == len(meta["sources"]) == 8
    assert meta["val"]["documents"] >= 1 and meta["train"]["documents"] >= 1
    tok = get_gpt2_tokenizer()
    _, splits = load_data_dir(data_dir, vocab_size=50257)
    for split in ("train", "val"):
        docs = [s for s in meta["sources"] if s["split"] == split]
        text = tok.decode(np.asarray(splits[split]).tolist())
        expected = "".join(open(s["path"], encoding="utf-8").read() + "<|endoftext|>" for s in docs)
        assert text == expected  # whole documents, in sorted order, each closed by <|endoftext|>
        assert meta[split]["tokens"] == splits[split].size == sum(s["tokens"] for s in docs)
    for s in meta["sources"]:
        assert s["sha256"] == hashlib.sha256(open(s["path"], "rb").read()).hexdigest()
    # deterministic: the same input gives byte-identical files
    again = prepare_data([data_dir.parent / "corpus"], tmp_path / "again", val_fraction=0.25, license="test corpus")
    assert again == meta
    for name in ("train.bin", "val.bin"):
        assert (tmp_path / "again" / name).read_bytes() == (data_dir / name).read_bytes()


def test_split_by_document_follows_the_name_hash_not_the_order():
    sizes = {f"f{i}.txt": 100 + i for i in range(20)}
    train, val = split_documents(sizes, 0.2)
    assert sorted(train + val) == sorted(sizes) and not set(train) & set(val)
    val_bytes = sum(sizes[n] for n in val)
    assert val_bytes >= 0.2 * sum(sizes.values())  # at least the fraction ...
    assert val_bytes - max(sizes[n] for n in val) < 0.2 * sum(sizes.values())  # ... and no document more
    reversed_sizes = dict(reversed(list(sizes.items())))
    assert split_documents(reversed_sizes, 0.2) == (train, val)
    assert split_documents({"a": 5, "b": 5}, 0.9)[0] != []  # never all documents to validation
    with pytest.raises(ValueError, match="at least 2 files"):
        split_documents({"a": 5}, 0.1)


def test_stdlib_sources_are_sorted_and_cut_by_size():
    files = stdlib_sources(max_bytes=200_000)
    assert files == sorted(files) and files
    assert all(f.suffix == ".py" and "test" not in f.parts for f in files)
    assert sum(f.stat().st_size for f in files[:-1]) < 200_000 <= sum(f.stat().st_size for f in files)


def test_sampler_is_a_function_of_seed_and_position_and_ranks_split_the_batch():
    tokens = np.arange(1000, dtype=np.uint16)
    sampler = WindowSampler(tokens, 8, batch_size=4, seed=1)
    x, y = sampler.batch(5)
    assert x.shape == y.shape == (4, 8) and torch.equal(x[:, 1:], y[:, :-1])
    halves = [sampler.batch(5, rank, 2) for rank in (0, 1)]
    assert torch.equal(torch.cat([halves[0][0], halves[1][0]]).sort(0).values, x.sort(0).values)
    assert torch.equal(halves[0][0], x[0::2]) and torch.equal(halves[1][0], x[1::2])
    for _ in range(5):
        sampler.next_batch()
    other = WindowSampler(tokens, 8, batch_size=4, seed=1)
    other.load_state_dict(sampler.state_dict())
    assert torch.equal(other.next_batch()[0], x)
    assert not torch.equal(WindowSampler(tokens, 8, batch_size=4, seed=2).batch(5)[0], x)
    ex, ey = eval_windows(tokens, 8, 3)
    assert ex[:, 0].tolist() == [0, 496, 984] and torch.equal(ex[:, 1:], ey[:, :-1])


# ---- the step pieces ---------------------------------------------------------------------------


def test_lr_schedule_warmup_then_cosine():
    lrs = [lr_at(s, 1.0, 4, 20, 0.1) for s in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, 1.0, 4, 20, 0.1) == 1.0  # the cosine starts at the peak
    assert math.isclose(lr_at(12, 1.0, 4, 20, 0.1), 0.55)  # half-way: the mean of peak and floor
    assert math.isclose(lr_at(20, 1.0, 4, 20, 0.1), 0.1) and lr_at(100, 1.0, 4, 20, 0.1) == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False))


@pytest.mark.parametrize("tie", [False, True])
def test_weight_decay_only_on_matrices(tie):
    model = GPTModel(GPTConfig(**TINY, tie_weights=tie))
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    linear = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    if tie:
        linear.discard("out_head.weight")  # it is tok_emb.weight: an embedding
    assert decayed == linear
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert "tok_emb.weight" in {names[id(p)] for p in no_decay["params"]}


def test_accumulated_micro_batches_give_the_big_batch_gradient():
    torch.manual_seed(0)
    model = GPTModel(GPTConfig(**(TINY | {"drop_rate": 0.0, "vocab_size": 64})))
    x, y = torch.randint(0, 64, (8, 16)), torch.randint(0, 64, (8, 16))
    loss = accumulate_gradients(model, [(x, y)])
    big = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    loss4 = accumulate_gradients(model, [(x[i : i + 2], y[i : i + 2]) for i in range(0, 8, 2)])
    for g, p in zip(big, model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)
    assert loss4 == pytest.approx(loss, rel=1e-6)


def test_clipping_scales_to_the_max_norm_and_returns_the_norm_before():
    model = torch.nn.Linear(3, 2)
    for p in model.parameters():
        p.grad = torch.full_like(p, 2.0)
    before = clip_gradients(model, 1.0)
    assert before == pytest.approx(2.0 * math.sqrt(8))
    after = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters()))
    assert after == pytest.approx(1.0, rel=1e-5)


# ---- the loop: metrics, exact resume, atomic checkpoints ---------------------------------------


def test_metrics_checkpoint_and_plot(data_dir, tmp_path):
    out = tmp_path / "run"
    records = pretrain(data_dir, out, GPTConfig(**TINY), _settings(), progress=False, peak_flops=1e11)
    lines = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert lines == records
    steps = [r for r in lines if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 7))
    assert {"step", "loss", "lr", "tokens", "tokens_per_s", "mfu", "grad_norm"} <= set(steps[0])
    assert steps[-1]["tokens"] == 6 * 4 * 16
    assert steps[0]["lr"] == pytest.approx(lr_at(0, 6e-4, 2, 6, 6e-5))
    evals = [r for r in lines if "val_loss" in r]
    assert [r["step"] for r in evals] == [3, 6]
    assert all(r["val_ppl"] == pytest.approx(math.exp(r["val_loss"]), rel=1e-5) for r in evals)
    assert all(isinstance(r["sample"], str) and r["sample"] for r in evals)
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    folder = latest_checkpoint(out)
    assert folder.name == "ckpt-0000006" and sorted(p.name for p in out.glob("ckpt-*")) == ["ckpt-0000006"]
    model, state = load_checkpoint(folder, GPTConfig(**TINY))
    assert state["step"] == 6 and state["sampler"]["position"] == 6 and len(state["rng"]) == 1


def test_resume_gives_the_losses_of_an_uninterrupted_run(data_dir, tmp_path, monkeypatch):
    cfg = GPTConfig(**TINY)  # dropout on: the RNG state must be restored too
    pretrain(data_dir, tmp_path / "full", cfg, _settings(), progress=False, peak_flops=1e11)
    monkeypatch.setenv("GPT_HELPERS_FAIL_AT", "0:4")  # dies in step 5, after the checkpoint at step 3
    with pytest.raises(RuntimeError, match="simulated failure"):
        pretrain(data_dir, tmp_path / "cut", cfg, _settings(), progress=False, peak_flops=1e11)
    monkeypatch.delenv("GPT_HELPERS_FAIL_AT")
    assert _losses(tmp_path / "cut")[-1][0] == 4  # steps 4 logged; it will be redone
    pretrain(data_dir, tmp_path / "cut", cfg, _settings(), resume=True, progress=False, peak_flops=1e11)
    assert _losses(tmp_path / "cut") == _losses(tmp_path / "full")


def test_a_crash_during_save_keeps_the_previous_checkpoint(data_dir, tmp_path, monkeypatch):
    cfg = GPTConfig(**TINY)
    real_save = torch.save
    calls = []

    def dying_save(obj, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:  # the second checkpoint: write half a file, then die
            real_save(obj, path, *args, **kwargs)
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
            raise KeyboardInterrupt("killed during save")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(pretrain_module.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        pretrain(data_dir, tmp_path / "run", cfg, _settings(), progress=False, peak_flops=1e11)
    monkeypatch.setattr(pretrain_module.torch, "save", real_save)
    folder = latest_checkpoint(tmp_path / "run")
    assert folder.name == "ckpt-0000003"
    assert load_checkpoint(folder, cfg)[1]["step"] == 3  # intact
    pretrain(data_dir, tmp_path / "run", cfg, _settings(), resume=True, progress=False, peak_flops=1e11)
    pretrain(data_dir, tmp_path / "full", cfg, _settings(), progress=False, peak_flops=1e11)
    assert _losses(tmp_path / "run") == _losses(tmp_path / "full")
    assert not list((tmp_path / "run").glob(".tmp-*"))


# ---- one-line errors from the command line -----------------------------------------------------


def _cli_error(argv, capsys):
    """Run the CLI expecting a failure; return its one stderr line."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's parser.error
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    if lines[-1].startswith("python -m gpt_helpers"):  # parser.error: argparse prints the usage, then one line
        return lines[-1]
    assert len(lines) == 1, err
    return lines[0]


def _tiny_config_file(tmp_path, **changes):
    path = tmp_path / ("tiny" + "".join(f"_{k}{v}" for k, v in changes.items()) + ".json")
    path.write_text(json.dumps(TINY | changes))
    return str(path)


def test_bad_data_gives_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no .py, .txt, .md, .rst file" in _cli_error(
        ["prepare-data", str(empty), "--out", "x", "--no-progress"], capsys
    )
    (tmp_path / "a.txt").write_text("")
    (tmp_path / "b.txt").write_text("")
    line = _cli_error(
        ["prepare-data", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), "--out", "x", "--no-progress"], capsys
    )
    assert "holds no text at all" in line
    (tmp_path / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    line = _cli_error(
        ["prepare-data", str(tmp_path / "img.png"), str(tmp_path / "a.txt"), "--out", "x", "--no-progress"], capsys
    )
    assert line == f"error: {tmp_path / 'img.png'} is not a text file (it holds NUL bytes); give UTF-8 text files only"
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    line = _cli_error(
        ["prepare-data", str(tmp_path / "latin1.txt"), str(tmp_path / "a.txt"), "--out", "x", "--no-progress"], capsys
    )
    assert "is not UTF-8 text" in line
    assert "does not exist" in _cli_error(
        ["prepare-data", str(tmp_path / "nope"), "--out", "x", "--no-progress"], capsys
    )
    assert "--stdlib (one of the two)" in _cli_error(["prepare-data", "--out", "x", "--no-progress"], capsys)
    assert "argument --val-fraction" in _cli_error(
        ["prepare-data", "--stdlib", "--out", "x", "--val-fraction", "1"], capsys
    )
    with pytest.raises(ValueError, match="holds NUL bytes"):
        read_document(tmp_path / "img.png")


def test_bad_training_inputs_give_one_line(data_dir, tmp_path, capsys):
    cfg = _tiny_config_file(tmp_path)
    base = [
        "pretrain",
        "--data",
        str(data_dir),
        "--out",
        str(tmp_path / "run"),
        "--config",
        cfg,
        "--steps",
        "4",
        "--batch-size",
        "4",
        "--eval-every",
        "2",
        "--save-every",
        "2",
        "--peak-flops",
        "1e11",
        "--no-progress",
    ]
    assert "--warmup (4) must be smaller than --steps (4)" in _cli_error([*base, "--warmup", "4"], capsys)
    assert "micro_batch_size 3 does not divide" in _cli_error([*base, "--micro-batch-size", "3"], capsys)
    assert "argument --batch-size: must be >= 1" in _cli_error([*base, "--batch-size", "0"], capsys)
    assert "argument --lr: must be a finite number" in _cli_error([*base, "--lr", "nan"], capsys)
    assert "--resume: " in _cli_error([*base, "--resume"], capsys)  # no checkpoint yet
    small_vocab = _tiny_config_file(tmp_path, vocab_size=1000)
    line = _cli_error([*base[:5], "--config", small_vocab, *base[7:]], capsys)
    assert "holds token id 50256, but the model's vocab_size is 1000" in line
    (tmp_path / "bad.json").write_text('{"emb_dimm": 16}')
    assert "did you mean 'emb_dim'" in _cli_error(
        [*base[:5], "--config", str(tmp_path / "bad.json"), *base[7:]], capsys
    )
    (tmp_path / "notjson.json").write_text("{emb_dim: 16")
    assert "is not JSON" in _cli_error([*base[:5], "--config", str(tmp_path / "notjson.json"), *base[7:]], capsys)
    assert "unknown GPT-2 preset" in _cli_error([*base[:5], "--preset", "gpt5", *base[7:]], capsys)
    # a data folder from another tokenizer, and a missing one
    other = tmp_path / "other"
    other.mkdir()
    for name in ("train.bin", "val.bin"):
        (other / name).write_bytes((data_dir / name).read_bytes())
    meta = json.loads((data_dir / "meta.json").read_text()) | {"tokenizer": "llama3"}
    (other / "meta.json").write_text(json.dumps(meta))
    line = _cli_error([base[0], "--data", str(other), *base[3:]], capsys)
    assert "was made with tokenizer 'llama3'" in line
    assert "has no meta.json" in _cli_error([base[0], "--data", str(tmp_path), *base[3:]], capsys)
    # a run that exists: without --resume it is refused; with another config, resume is refused
    assert main(base) == 0
    capsys.readouterr()
    assert "already holds a checkpoint (ckpt-0000004); pass --resume" in _cli_error(base, capsys)
    wider = _tiny_config_file(tmp_path, emb_dim=32)
    line = _cli_error([*base[:5], "--config", wider, *base[7:], "--resume"], capsys)
    assert "made with another model config: emb_dim 16 (run: 32)" in line
    assert "other settings: seed 123 (now 5)" in _cli_error([*base, "--resume", "--seed", "5"], capsys)
    # damaged checkpoint files
    folder = latest_checkpoint(tmp_path / "run")
    state = (folder / "state.pt").read_bytes()
    (folder / "state.pt").write_bytes(state[: len(state) // 2])
    assert "state.pt is damaged" in _cli_error([*base, "--resume"], capsys)
    (folder / "state.pt").write_bytes(state)
    weights = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(weights[:-10])
    assert "is truncated" in _cli_error([*base, "--resume"], capsys)
    (tmp_path / "run" / "checkpoint.json").write_text("{")
    assert "checkpoint.json is damaged" in _cli_error([*base, "--resume"], capsys)


def test_data_module_lists_its_names():
    assert set(data_module.__all__) >= {"prepare_data", "WindowSampler", "load_data_dir", "split_documents"}


@pytest.mark.parametrize("tie", [False, True])
def test_mfu_counts_only_the_parameters_a_token_multiplies(tie):
    from gpt_helpers import GPTConfig, GPTModel, count_parameters, matmul_parameters

    cfg = GPTConfig(vocab_size=300, context_length=16, emb_dim=32, n_heads=2, n_layers=2, tie_weights=tie)
    model = GPTModel(cfg)
    tables = 16 * 32 + (0 if tie else 300 * 32)  # the position table always; the token table unless it is the head
    assert matmul_parameters(model) == count_parameters(model) - tables
