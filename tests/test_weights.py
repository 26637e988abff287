"""Loading Hugging Face GPT-2 checkpoints (model.safetensors) into GPTModel."""

import json

import pytest
import torch
from helpers import hf_gpt2
from safetensors.torch import load_file, save_file

from gpt_helpers import generate
from gpt_helpers.weights import (
    config_from_hf_state_dict,
    load_gpt2_safetensors,
    read_safetensors,
    read_safetensors_metadata,
)


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
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_gpt2_safetensors(tmp_path / "nope.safetensors")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match="is a pickle file .*not a safetensors file"):
        load_gpt2_safetensors(tmp_path / "pytorch_model.bin")


def test_download_rejects_unknown_name():
    from gpt_helpers.weights import download_gpt2_safetensors

    with pytest.raises(ValueError, match="unknown GPT-2 checkpoint"):
        download_gpt2_safetensors("gpt-5")


# --- damaged and wrong files: one line naming the file, the problem and the fix; nothing loaded ---


@pytest.fixture
def good_file(tmp_path):
    """A small valid .safetensors file with metadata, and its tensors."""
    tensors = {"a": torch.arange(12, dtype=torch.float32).reshape(3, 4), "b": torch.ones(5, dtype=torch.bfloat16)}
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path), metadata={"note": "hi"})
    return path, tensors


def _damaged(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _one_line_error(func, path, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        func(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    return message


def test_read_safetensors_reads_good_file(good_file):
    path, tensors = good_file
    got = read_safetensors(path)
    assert got.keys() == tensors.keys()
    for name, t in tensors.items():
        assert torch.equal(got[name], t) and got[name].dtype == t.dtype
    assert read_safetensors(path.parent).keys() == tensors.keys()  # the folder holding model.safetensors
    assert read_safetensors_metadata(path) == {"note": "hi"}


@pytest.mark.parametrize("cut", [1, 10, 100])
def test_truncated(good_file, tmp_path, cut):
    path, _ = good_file
    data = path.read_bytes()
    bad = _damaged(tmp_path, "cut.safetensors", data[: len(data) - cut])
    for func in (read_safetensors, read_safetensors_metadata, load_gpt2_safetensors):
        _one_line_error(func, bad, r"is truncated: .*download or save it again")


def test_truncated_inside_header(good_file, tmp_path):
    data = good_file[0].read_bytes()
    for n in (3, 20):
        bad = _damaged(tmp_path, f"h{n}.safetensors", data[:n])
        _one_line_error(read_safetensors, bad, r"is truncated")


def test_empty(tmp_path):
    bad = _damaged(tmp_path, "model.safetensors", b"")
    for func in (read_safetensors, load_gpt2_safetensors):
        _one_line_error(func, bad, r"is empty \(0 bytes\)")


def test_random_bytes(tmp_path):
    gen = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (4096,), generator=gen, dtype=torch.uint8).numpy().tobytes()
    bad = _damaged(tmp_path, "model.safetensors", noise)
    _one_line_error(read_safetensors, bad, r"is not a safetensors file \(.*header length")
    # a plausible length but garbage after it
    bad = _damaged(tmp_path, "m2.safetensors", (100).to_bytes(8, "little") + noise[:500])
    _one_line_error(read_safetensors, bad, r"is not a safetensors file \(its header is not a JSON object\)")


def test_torch_save_pth_passed_as_safetensors(tmp_path):
    bad = tmp_path / "model.pth"
    torch.save({"w": torch.zeros(2)}, bad)
    msg = _one_line_error(read_safetensors, bad, r"written by torch\.save .*not a safetensors file")
    assert "pass a .safetensors checkpoint" in msg


def test_json_passed_as_safetensors(tmp_path):
    bad = _damaged(tmp_path, "config.json", b'{"n_head": 12}')
    _one_line_error(read_safetensors, bad, r"is a JSON file")


def test_git_lfs_pointer(tmp_path):
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 548105171\n"
    bad = _damaged(tmp_path, "model.safetensors", pointer)
    _one_line_error(read_safetensors, bad, r"Git LFS pointer.*git lfs pull")


def test_extra_bytes_after_data(good_file, tmp_path):
    bad = _damaged(tmp_path, "x.safetensors", good_file[0].read_bytes() + b"\0" * 16)
    _one_line_error(read_safetensors, bad, r"16 bytes follow the last tensor")


def test_tensor_size_disagrees_with_header(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    bad = _damaged(tmp_path, "x.safetensors", len(header).to_bytes(8, "little") + header + b"\0" * 8)
    _one_line_error(read_safetensors, bad, r"tensor 'w' \(F32 \[4\]\) is given 8 bytes")


def test_folder_without_model_safetensors(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    for func in (read_safetensors, load_gpt2_safetensors):
        msg = _one_line_error(func, tmp_path, r"is a folder without model\.safetensors \(it holds: config\.json")
        assert "pass the folder that holds model.safetensors" in msg


def test_sharded_folder_is_named(tmp_path):
    (tmp_path / "model.safetensors.index.json").write_text("{}")
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"")
    _one_line_error(read_safetensors, tmp_path, r"sharded checkpoint")


def test_damaged_config_json_beside_weights(checkpoint, tmp_path):
    sd = load_file(str(checkpoint[1] / "model.safetensors"))
    save_file(sd, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text('{"n_head": 5')  # cut short
    with pytest.raises(ValueError, match=r"config\.json is not a valid config\.json"):
        load_gpt2_safetensors(tmp_path)
