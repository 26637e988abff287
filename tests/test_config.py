"""GPTConfig: presets and validation."""

import dataclasses

import pytest

from gpt_helpers import GPT2_PRESETS, GPTConfig


def test_defaults_are_gpt2_small():
    cfg = GPTConfig()
    assert (cfg.vocab_size, cfg.context_length, cfg.emb_dim, cfg.n_heads, cfg.n_layers) == (50257, 1024, 768, 12, 12)
    assert cfg.qkv_bias is False and cfg.tie_weights is False and cfg.head_dim == 64


@pytest.mark.parametrize(
    ("name", "alias", "emb_dim", "n_layers", "n_heads"),
    [
        ("gpt2", "124M", 768, 12, 12),
        ("gpt2-medium", "355M", 1024, 24, 16),
        ("gpt2-large", "774M", 1280, 36, 20),
        ("gpt2-xl", "1558M", 1600, 48, 25),
    ],
)
def test_presets(name, alias, emb_dim, n_layers, n_heads):
    cfg = GPTConfig.from_preset(name)
    assert cfg == GPTConfig.from_preset(alias) == GPT2_PRESETS[name]
    assert (cfg.emb_dim, cfg.n_layers, cfg.n_heads) == (emb_dim, n_layers, n_heads)
    assert GPTConfig.from_preset(name, qkv_bias=True).qkv_bias


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        GPTConfig().emb_dim = 10


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown GPT-2 preset 'gpt3'"):
        GPTConfig.from_preset("gpt3")


def test_emb_dim_not_divisible_by_heads():
    with pytest.raises(ValueError, match=r"emb_dim \(770\) must be divisible by n_heads \(12\)"):
        GPTConfig(emb_dim=770)


@pytest.mark.parametrize("field", ["vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"])
@pytest.mark.parametrize("value", [0, -3])
def test_non_positive_sizes(field, value):
    with pytest.raises(ValueError, match=f"{field} must be positive"):
        GPTConfig(**{field: value})


@pytest.mark.parametrize("value", [1.5, "12", True, None])
def test_sizes_must_be_int(value):
    with pytest.raises(TypeError, match="n_layers must be an int"):
        GPTConfig(n_layers=value)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 2])
def test_drop_rate_range(rate):
    with pytest.raises(ValueError, match=r"drop_rate must be in \[0, 1\)"):
        GPTConfig(drop_rate=rate)


def test_drop_rate_type_and_flags():
    with pytest.raises(TypeError, match="drop_rate must be a float"):
        GPTConfig(drop_rate="0.1")
    with pytest.raises(TypeError, match="qkv_bias must be True or False"):
        GPTConfig(qkv_bias=1)
    with pytest.raises(TypeError, match="tie_weights must be True or False"):
        GPTConfig(tie_weights="yes")


def test_with_revalidates():
    assert GPTConfig().with_(drop_rate=0.0).drop_rate == 0.0
    with pytest.raises(ValueError):
        GPTConfig().with_(n_heads=7)


# ---- the book's dict config ------------------------------------------------------------------

BOOK_124M = {
    "vocab_size": 50257,
    "context_length": 1024,
    "emb_dim": 768,
    "n_heads": 12,
    "n_layers": 12,
    "drop_rate": 0.1,
    "qkv_bias": False,
}


def test_from_dict_takes_the_books_keys():
    assert GPTConfig.from_dict(BOOK_124M) == GPTConfig()  # the book's 124M dict is the default config
    small = GPTConfig.from_dict({**BOOK_124M, "context_length": 256, "qkv_bias": True, "tie_weights": True})
    assert (small.context_length, small.qkv_bias, small.tie_weights) == (256, True, True)


def test_from_dict_unknown_key_names_it_and_suggests():
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'n_head' \(did you mean 'n_heads'\?\); the accepted keys"):
        GPTConfig.from_dict({**BOOK_124M, "n_head": 12})
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'emb_size'; the accepted keys are vocab_size, "):
        GPTConfig.from_dict({**BOOK_124M, "emb_size": 768})


def test_from_dict_missing_key():
    partial = {k: v for k, v in BOOK_124M.items() if k not in ("n_layers", "qkv_bias")}
    with pytest.raises(ValueError, match=r"missing key\(s\) 'n_layers', 'qkv_bias'; the book's config gives all of"):
        GPTConfig.from_dict(partial)


def test_from_dict_validates_values_and_type():
    with pytest.raises(ValueError, match="must be divisible by n_heads"):
        GPTConfig.from_dict({**BOOK_124M, "n_heads": 7})
    with pytest.raises(TypeError, match="expects a dict, got list"):
        GPTConfig.from_dict([("emb_dim", 768)])


# ---- bad input: one-line errors that name the problem and the fix ------------------------------


@pytest.mark.parametrize("name", [124, ["gpt2"], None])
def test_preset_name_must_be_a_str(name):
    with pytest.raises(TypeError, match=r"GPT-2 preset name must be a str, got .*; choose one of: 124M"):
        GPTConfig.from_preset(name)


@pytest.mark.parametrize(
    "call",
    [lambda: GPTConfig.from_preset("gpt2", n_head=16), lambda: GPTConfig().with_(n_head=16)],
    ids=["from_preset", "with_"],
)
def test_unknown_override_names_it_and_suggests(call):
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'n_head' \(did you mean 'n_heads'\?\); the accepted keys"):
        call()


@pytest.mark.parametrize("rate", [float("nan"), float("inf"), -float("inf")])
def test_drop_rate_nan_and_inf(rate):
    with pytest.raises(ValueError, match=r"drop_rate must be in \[0, 1\)"):
        GPTConfig(drop_rate=rate)


def test_drop_rate_bool_and_size_float():
    with pytest.raises(TypeError, match="drop_rate must be a float, got bool"):
        GPTConfig(drop_rate=True)
    with pytest.raises(TypeError, match=r"emb_dim must be an int, got float \(768.0\)"):
        GPTConfig(emb_dim=768.0)


def test_ensure_takes_config_and_book_dict_and_rejects_the_rest():
    cfg = GPTConfig()
    assert GPTConfig.ensure(cfg, "X") is cfg
    assert GPTConfig.ensure(BOOK_124M, "X") == cfg
    with pytest.raises(TypeError, match=r"FeedForward expects a GPTConfig \(or the book's dict config\), got int"):
        GPTConfig.ensure(768, "FeedForward")


def test_from_dict_non_str_key():
    with pytest.raises(ValueError, match=r"unknown key\(s\) 1; the accepted keys"):
        GPTConfig.from_dict({**BOOK_124M, 1: 2})
