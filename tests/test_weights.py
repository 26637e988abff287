"""Loading Hugging Face GPT-2 checkpoints (model.safetensors) into GPTModel."""

import json

import pytest
import torch
from helpers import hf_gpt2
from safetensors.torch import load_file, save_file

from gpt_helpers import generate
from gpt_helpers.weights import config_from_hf_state_dict, load_gpt2_safetensors


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random-init GPT2LMHeadModel saved with save_pretrained, as learners get from the Hub."""
    hf = hf_gpt2(vocab_size=150, n_positions=24, n_embd=40, n_layer=2, n_head=5, seed=3)
    folder = tmp_path_factory.mktemp("gpt2-tiny")
    hf.save_pretrained(folder, safe_serialization=True)
    return hf, folder


def test_save_pretrained_writes_safetensors_only(checkpoint):
    _, folder = checkpoint
    names = sorted(p.name for p in folder.iterdir())
    assert "model.safetensors" in names and not any(n.endswith((".bin", ".pt", ".h5")) for n in names)


def test_loaded_model_matches_hf(checkpoint):
    hf, folder = checkpoint
    ours = load_gpt2_safetensors(folder)  # n_heads comes from config.json
    assert ours.cfg.n_heads == 5 and ours.cfg.qkv_bias and ours.out_head.weight is ours.tok_emb.weight
    ids = torch.randint(0, 150, (2, 24))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=1e-5)
    prompt = ids[:, :3]
    torch.manual_seed(11)
    with torch.no_grad():
        expected = hf.generate(prompt, max_new_tokens=12, do_sample=True, top_k=30, pad_token_id=0)
    torch.manual_seed(11)
    assert torch.equal(generate(ours, prompt, 12, temperature=1.0, top_k=30), expected)


def test_hub_layout_without_prefix_and_with_mask_buffers(checkpoint, tmp_path):
    """The Hub's original gpt2 files have no "transformer." prefix and may store attn.bias buffers."""
    hf, folder = checkpoint
    sd = load_file(str(folder / "model.safetensors"))
    sd = {k.removeprefix("transformer."): v for k, v in sd.items()}
    sd["h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 24, 24))
    save_file(sd, str(tmp_path / "model.safetensors"))
    ours = load_gpt2_safetensors(tmp_path / "model.safetensors", n_heads=5)
    ids = torch.randint(0, 150, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=1e-5)


def test_config_from_shapes_of_real_sizes():
    """The four GPT-2 sizes are recognised from shapes alone (no config.json needed)."""
    for emb, layers, heads in [(768, 12, 12), (1024, 24, 16), (1280, 36, 20), (1600, 48, 25)]:
        sd = {"wte.weight": torch.empty(50257, emb, device="meta"), "wpe.weight": torch.empty(1024, emb, device="meta")}
        sd |= {f"h.{i}.ln_1.weight": torch.empty(emb, device="meta") for i in range(layers)}
        cfg = config_from_hf_state_dict(sd)
        assert (cfg.emb_dim, cfg.n_layers, cfg.n_heads, cfg.vocab_size) == (emb, layers, heads, 50257)


def _save(tmp_path, sd):
    save_file(sd, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"n_head": 5}))
    return tmp_path


def test_not_gpt2(tmp_path):
    path = _save(tmp_path, {"encoder.layer.0.weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="not a GPT-2 checkpoint: key 'wte.weight' is missing"):
        load_gpt2_safetensors(path)


def test_missing_key(checkpoint, tmp_path):
    sd = load_file(str(checkpoint[1] / "model.safetensors"))
    del sd["transformer.h.1.mlp.c_fc.bias"]
    with pytest.raises(ValueError, match="missing key 'h.1.mlp.c_fc.bias'"):
        load_gpt2_safetensors(_save(tmp_path, sd))


def test_unexpected_key(checkpoint, tmp_path):
    sd = load_file(str(checkpoint[1] / "model.safetensors"))
    sd["transformer.h.0.attn.extra"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"unexpected keys \['h.0.attn.extra'\]"):
        load_gpt2_safetensors(_save(tmp_path, sd))


def test_shape_mismatch_names_key_and_shapes(checkpoint, tmp_path):
    sd = load_file(str(checkpoint[1] / "model.safetensors"))
    sd["transformer.h.1.mlp.c_fc.weight"] = torch.zeros(40, 100)
    with pytest.raises(
        ValueError, match=r"shape mismatch for 'trf_blocks.1.ff.layers.0.weight': .*\(160, 40\).*\(100, 40\)"
    ):
        load_gpt2_safetensors(_save(tmp_path, sd))


def test_unknown_size_needs_heads(checkpoint, tmp_path):
    sd = load_file(str(checkpoint[1] / "model.safetensors"))
    save_file(sd, str(tmp_path / "model.safetensors"))  # no config.json beside it
    with pytest.raises(ValueError, match="cannot tell the number of heads.*pass n_heads"):
        load_gpt2_safetensors(tmp_path)


def test_missing_file_and_pickle_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no GPT-2 checkpoint"):
        load_gpt2_safetensors(tmp_path / "nope.safetensors")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match="only safetensors checkpoints are read"):
        load_gpt2_safetensors(tmp_path / "pytorch_model.bin")


def test_download_rejects_unknown_name():
    from gpt_helpers.weights import download_gpt2_safetensors

    with pytest.raises(ValueError, match="unknown GPT-2 checkpoint"):
        download_gpt2_safetensors("gpt-5")
