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


# ---- bad inputs: one line from our code, not torch's or AdamW's (issue 17) -------------------------


def _ascii_setup():
    torch.manual_seed(0)
    model = GPTModel(ASCII_CFG)
    loader = create_dataloader(TEXT, 16, batch_size=2, tokenizer=AsciiTokenizer())
    return model, loader


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"seed": 1.5}, TypeError, "seed must be an int, got 1.5"),
        ({"seed": None}, TypeError, "seed must be an int, got None"),
        ({"shuffle": "yes"}, TypeError, "shuffle must be True or False, got 'yes'"),
        ({"drop_last": 0}, TypeError, "drop_last must be True or False, got 0"),
    ],
)
def test_dataloader_rejects_bad_flags_and_seeds(kwargs, error, match):
    """A float seed ended in torch's manual_seed RuntimeError; shuffle='yes' was taken as True."""
    with pytest.raises(error, match=match):
        create_dataloader(TEXT, 16, tokenizer=AsciiTokenizer(), **kwargs)


@pytest.mark.parametrize(
    ("target", "error", "match"),
    [
        (torch.zeros(1, 4), TypeError, "target_batch must hold integer token ids .* got dtype torch.float32"),
        (torch.full((1, 4), 128), ValueError, r"target id 128 is outside the vocabulary \[0, 128\)"),
        (torch.full((1, 4), -5), ValueError, r"target id -5 is outside the vocabulary .* not -100"),
    ],
)
def test_calc_loss_batch_rejects_bad_targets(target, error, match):
    """Targets past the vocabulary raised cross_entropy's IndexError; float targets, its RuntimeError."""
    model, _ = _ascii_setup()
    with pytest.raises(error, match=match):
        calc_loss_batch(torch.zeros(1, 4, dtype=torch.long), target, model)


def test_calc_loss_batch_still_ignores_minus_100():
    """-100 is cross_entropy's ignore_index (padding, as in the book's chapter 7): allowed, not counted."""
    model, _ = _ascii_setup()
    inputs, targets = torch.tensor([[65, 66, 67, 68]]), torch.tensor([[66, 67, 68, -100]])
    with torch.no_grad():
        expected = calc_loss_batch(inputs[:, :3], targets[:, :3], model)
        torch.testing.assert_close(calc_loss_batch(inputs, targets, model), expected)


@pytest.mark.parametrize("model", ["gpt", torch.nn.Identity()])
def test_calc_loss_batch_names_a_model_without_parameters(model):
    with pytest.raises(TypeError, match="model must be an nn.Module with parameters"):
        calc_loss_batch(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long), model)


@pytest.mark.parametrize(
    ("loader", "match"),
    [(5, "got int"), ([(1, 2, 3)], "got tuple of 3; make it with create_dataloader"), ([torch.zeros(2)], "got Tensor")],
)
def test_loaders_that_do_not_give_pairs(loader, match):
    model, _ = _ascii_setup()
    with pytest.raises(TypeError, match=f"data_loader must give \\(input_batch, target_batch\\) pairs, {match}"):
        calc_loss_loader(loader, model)
    with pytest.raises(TypeError, match="data_loader must give"):
        train_model(model, loader, 1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lr": float("nan")}, ValueError, "lr must be a finite number > 0, got nan"),
        ({"lr": float("inf")}, ValueError, "lr must be a finite number > 0, got inf"),  # trained to nan silently
        ({"lr": 0}, ValueError, "lr must be a finite number > 0, got 0"),
        ({"lr": "1e-3"}, ValueError, "lr must be a finite number > 0, got '1e-3'"),
        ({"weight_decay": float("nan")}, ValueError, "weight_decay must be a finite number >= 0, got nan"),
        ({"weight_decay": -0.1}, ValueError, "weight_decay must be a finite number >= 0"),
        ({"seed": 1.5}, TypeError, "seed must be an int or None, got 1.5"),
        ({"seed": True}, TypeError, "seed must be an int or None, got True"),
        ({"optimizer": "adamw"}, TypeError, "optimizer must be a torch.optim.Optimizer or None, got str"),
        ({"progress": "x"}, TypeError, "progress must be True or False, got 'x'"),
    ],
)
def test_train_model_rejects_bad_settings_before_any_step(kwargs, error, match):
    model, loader = _ascii_setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(error, match=match):
        train_model(model, loader, 2, **kwargs)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # no step was taken


def test_train_model_names_a_model_that_is_not_one():
    _, loader = _ascii_setup()
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        train_model("gpt", loader, 1)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m, d: save_model(m, 5), TypeError, "path must be a str or pathlib.Path .* got int"),
        (lambda m, d: save_model(m, d / "missing" / "m.safetensors"), FileNotFoundError, "does not exist; create it"),
        (lambda m, d: load_model(None), TypeError, "path must be a str or pathlib.Path .* got NoneType"),
        (lambda m, d: load_model(save_model(m, d / "m.safetensors"), device="gpu"), ValueError, "device must name"),
        (lambda m, d: load_model(save_model(m, d / "m.safetensors"), device="cuda:7"), ValueError, "'cuda:7' is not"),
    ],
)
def test_save_and_load_bad_paths_and_devices(tmp_path, call, error, match):
    """A missing folder ended in a SafetensorError, device='gpu' in torch's long RuntimeError."""
    if match == "'cuda:7' is not" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA: cuda:7 may exist")
    with pytest.raises(error, match=match) as info:
        call(GPTModel(ASCII_CFG), tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [({"seed": 1.5}, TypeError, "seed must be an int, got 1.5"), ({"progress": 1}, TypeError, "progress must be")],
)
def test_train_zen_model_bad_arguments(kwargs, error, match):
    from gpt_helpers.training.zen import train_zen_model

    with pytest.raises(error, match=match):
        train_zen_model(num_steps=1, **kwargs)
