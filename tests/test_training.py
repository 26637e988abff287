"""Token windows, losses, the training loop and safetensors checkpoints (gpt_helpers.training.loop)."""

import dataclasses
import json
import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from gpt_helpers import GPTConfig, GPTModel, get_gpt2_tokenizer
from gpt_helpers.training.loop import (
    CONFIG_METADATA_KEY,
    TokenWindowDataset,
    calc_loss_batch,
    calc_loss_loader,
    create_dataloader,
    load_model,
    save_model,
    train_model,
)

TEXT = "Every effort moves you forward. Small steps, taken every day, add up to a long way. " * 3
TINY = GPTConfig(vocab_size=50257, context_length=16, emb_dim=32, n_heads=2, n_layers=1, drop_rate=0.0)


class AsciiTokenizer:
    """One token per ASCII character: a 128-token vocabulary keeps the training tests fast."""

    def encode(self, text, allowed_special=()):
        return [ord(c) for c in text]


ASCII_CFG = TINY.with_(vocab_size=128)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster on one thread (no threads waiting for each other on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_windows_are_shifted_by_one():
    """Targets are the inputs moved one token to the left; windows start stride tokens apart."""
    ids = get_gpt2_tokenizer().encode(TEXT)
    ds = TokenWindowDataset(TEXT, context_length=8, stride=3)
    assert ds.n_tokens == len(ids)
    assert len(ds) == (len(ids) - 9) // 3 + 1
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == y.shape == (8,)
        assert x.tolist() == ids[3 * i : 3 * i + 8]
        assert y.tolist() == ids[3 * i + 1 : 3 * i + 9]
        torch.testing.assert_close(x[1:], y[:-1])


def test_default_stride_gives_side_by_side_windows():
    ds = TokenWindowDataset(TEXT, context_length=8)
    assert ds.stride == 8
    assert ds.input_ids[1, 0] == ds.target_ids[0, -1]  # the next window starts where the last target was


def test_text_exactly_one_window_long():
    ids = get_gpt2_tokenizer().encode(TEXT)
    ds = TokenWindowDataset(TEXT, context_length=len(ids) - 1)
    assert len(ds) == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"text": "too short", "context_length": 8}, ValueError, "smaller context_length"),
        ({"text": 123, "context_length": 8}, TypeError, "must be a str"),
        ({"text": TEXT, "context_length": 0}, ValueError, "context_length must be >= 1"),
        ({"text": TEXT, "context_length": 8.0}, TypeError, "context_length must be an int"),
        ({"text": TEXT, "context_length": 8, "stride": 0}, ValueError, "stride must be >= 1"),
        ({"text": TEXT, "context_length": True}, TypeError, "context_length must be an int"),
    ],
)
def test_dataset_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        TokenWindowDataset(**kwargs)


def test_dataloader_is_seeded_and_batched():
    def order(loader):
        return [x[:, 0].tolist() for x, _ in loader]

    a = create_dataloader(TEXT, 8, stride=4, batch_size=2, seed=1)
    b = create_dataloader(TEXT, 8, stride=4, batch_size=2, seed=1)
    c = create_dataloader(TEXT, 8, stride=4, batch_size=2, seed=2)
    assert order(a) == order(b)
    assert order(a) != order(c)
    x, y = next(iter(a))
    assert x.shape == y.shape == (2, 8)
    assert x.dtype == torch.long


def test_dataloader_errors():
    with pytest.raises(ValueError, match="fewer than batch_size"):
        create_dataloader(TEXT, 60, batch_size=4)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        create_dataloader(TEXT, 8, batch_size=0)
    assert len(create_dataloader(TEXT, 60, batch_size=4, drop_last=False)) == 1


def test_calc_loss_batch_is_cross_entropy():
    model = GPTModel(TINY).eval()
    x = torch.randint(0, TINY.vocab_size, (2, 5))
    y = torch.randint(0, TINY.vocab_size, (2, 5))
    loss = calc_loss_batch(x, y, model)
    logits = model(x)
    log_probs = torch.log_softmax(logits, dim=-1)
    expected = -log_probs.gather(-1, y.unsqueeze(-1)).mean()
    torch.testing.assert_close(loss, expected)
    # an untrained model with small logits guesses close to uniformly: loss near ln(vocab_size)
    assert abs(loss.item() - math.log(TINY.vocab_size)) < 1.0
    with pytest.raises(ValueError, match="same shape"):
        calc_loss_batch(x, y[:, :4], model)
    with pytest.raises(TypeError, match="tensors of token ids"):
        calc_loss_batch(x.tolist(), y, model)


def test_calc_loss_loader_weights_tokens_and_keeps_mode():
    model = GPTModel(TINY)
    loader = create_dataloader(TEXT, 8, stride=8, batch_size=3, drop_last=False, shuffle=False)
    per_batch = [(calc_loss_batch(x, y, model.eval()).item(), y.numel()) for x, y in loader]
    model.train()
    expected = sum(loss * n for loss, n in per_batch) / sum(n for _, n in per_batch)
    assert calc_loss_loader(loader, model) == pytest.approx(expected, rel=1e-6)
    assert model.training  # mode restored
    assert calc_loss_loader(loader, model, num_batches=1) == pytest.approx(per_batch[0][0], rel=1e-6)
    with pytest.raises(ValueError, match="num_batches must be >= 1"):
        calc_loss_loader(loader, model, num_batches=0)
    with pytest.raises(ValueError, match="no batch"):
        calc_loss_loader([], model)


def test_training_lowers_the_loss_and_is_deterministic():
    loader = create_dataloader(TEXT, 16, stride=8, batch_size=4, tokenizer=AsciiTokenizer())
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = GPTModel(ASCII_CFG)
        before = calc_loss_loader(loader, model)
        history = train_model(model, loader, num_steps=40, lr=5e-3, seed=7)
        after = calc_loss_loader(loader, model)
        assert len(history) == 40  # more steps than batches per epoch: the loader is repeated
        assert after < before - 1.5
        assert history[-1] < history[0]
        losses.append(history)
    assert losses[0] == losses[1]  # same init, data and seed: the same losses


def test_training_with_given_optimizer_and_progress_bar(capsys):
    model = GPTModel(ASCII_CFG)
    loader = create_dataloader(TEXT, 16, stride=8, batch_size=2, tokenizer=AsciiTokenizer())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = train_model(model, loader, 3, optimizer=optimizer, progress=True)
    assert len(history) == 3
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])  # lr 0: the given optimizer was used, not a new AdamW
    assert "training: 100%" in capsys.readouterr().out


def test_training_errors():
    model = GPTModel(TINY)
    loader = create_dataloader(TEXT, 16, batch_size=2)
    with pytest.raises(ValueError, match="num_steps must be >= 1"):
        train_model(model, loader, 0)
    with pytest.raises(ValueError, match="no batch"):
        train_model(model, [], 2)


@pytest.mark.parametrize("tie_weights", [False, True])
def test_save_load_round_trip(tmp_path, tie_weights):
    cfg = TINY.with_(tie_weights=tie_weights, qkv_bias=True, drop_rate=0.1)
    model = GPTModel(cfg)
    path = save_model(model, tmp_path / "model.safetensors")
    loaded = load_model(path)
    assert loaded.cfg == cfg
    assert not loaded.training
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert (loaded.out_head.weight is loaded.tok_emb.weight) == tie_weights  # tying restored
    x = torch.randint(0, cfg.vocab_size, (2, 7))
    assert torch.equal(loaded(x), model.eval()(x))
    with safe_open(path, framework="pt") as f:
        keys = set(f.keys())
        assert json.loads(f.metadata()[CONFIG_METADATA_KEY]) == dataclasses.asdict(cfg)
    assert ("out_head.weight" in keys) != tie_weights  # a tied head is stored once


def test_load_does_not_touch_the_global_rng(tmp_path):
    path = save_model(GPTModel(TINY), tmp_path / "m.safetensors")
    torch.manual_seed(5)
    load_model(path)
    after = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(3))


def test_load_errors(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"tok_emb.weight": torch.zeros(2, 2)}, plain)
    with pytest.raises(ValueError, match="no 'gpt_config' metadata"):
        load_model(plain)
    bad = tmp_path / "bad.safetensors"
    save_file({"x": torch.zeros(1)}, bad, metadata={CONFIG_METADATA_KEY: json.dumps({"emb_dimm": 3})})
    with pytest.raises(ValueError, match="not a valid GPTConfig"):
        load_model(bad)
    mismatch = tmp_path / "mismatch.safetensors"
    save_file({"x": torch.zeros(1)}, mismatch, metadata={CONFIG_METADATA_KEY: json.dumps(dataclasses.asdict(TINY))})
    with pytest.raises(ValueError, match="does not match its own config"):
        load_model(mismatch)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_model(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match=r"\*\.safetensors"):
        save_model(GPTModel(TINY), tmp_path / "model.pt")
    with pytest.raises(TypeError, match="expects a GPTModel"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda data: data[: len(data) - 7], r"is truncated: its header describes"),
        (lambda data: b"", r"is empty \(0 bytes\)"),
        (lambda data: bytes(range(256)) * 8, r"is not a safetensors file"),
        (lambda data: b'{"n_heads": 4}', r"is a JSON file"),
    ],
    ids=["truncated", "empty", "random", "json"],
)
def test_load_damaged_file_is_one_line_value_error(tmp_path, damage, match):
    path = save_model(GPTModel(TINY), tmp_path / "model.safetensors")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=match) as info:
        load_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_load_pth_or_folder_without_checkpoint(tmp_path):
    torch.save(GPTModel(TINY).state_dict(), tmp_path / "model.pth")
    with pytest.raises(ValueError, match=r"written by torch\.save .*not a safetensors file.*load_book_model"):
        load_model(tmp_path / "model.pth")
    with pytest.raises(ValueError, match=r"is a folder without model\.safetensors \(it holds: model\.pth\)"):
        load_model(tmp_path)
