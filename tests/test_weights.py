"""Loading Hugging Face GPT-2 checkpoints (model.safetensors) into GPTModel."""

import json

import pytest
import torch
from helpers import hf_gpt2
from safetensors.torch import load_file, save_file

from gpt_helpers import GPTConfig, GPTModel, generate
from gpt_helpers.checkpoints.weights import (
    config_from_hf_state_dict,
    hf_to_gpt_state_dict,
    load_book_model,
    load_gpt2_safetensors,
    load_hf_gpt2_weights,
    read_pth_state_dict,
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


def test_our_own_layout_points_to_the_right_loader(tmp_path):
    from gpt_helpers import save_model

    path = save_model(
        GPTModel(GPTConfig(vocab_size=50, context_length=8, emb_dim=8, n_heads=2, n_layers=1)),
        tmp_path / "model.safetensors",
    )
    with pytest.raises(ValueError, match=r"GPTModel's own layout .*load_model\(path\).*load_book_model"):
        load_gpt2_safetensors(path, n_heads=2)


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
    from gpt_helpers.checkpoints.weights import download_gpt2_safetensors

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


# --- the book's .pth files: torch.save(model.state_dict()), read with torch.load(weights_only=True) only ---

BOOK_CFG = {
    "vocab_size": 61,
    "context_length": 12,
    "emb_dim": 24,
    "n_heads": 4,
    "n_layers": 2,
    "drop_rate": 0.1,
    "qkv_bias": True,
}


@pytest.fixture
def book_pth(tmp_path):
    """A state_dict of a model with the book's names (causal masks included), saved as the book does."""
    from book_style import BookGPT

    torch.manual_seed(8)
    book = BookGPT(BOOK_CFG).eval()
    path = tmp_path / "model.pth"
    torch.save(book.state_dict(), path)
    return book, path


def test_book_pth_loads(book_pth):
    book, path = book_pth
    sd = read_pth_state_dict(path)
    assert sd.keys() == book.state_dict().keys()
    for model in (load_book_model(path, BOOK_CFG), load_book_model(path.parent, GPTConfig.from_dict(BOOK_CFG))):
        assert not model.training
        ids = torch.randint(0, 61, (2, 12))
        with torch.no_grad():
            torch.testing.assert_close(model(ids), book(ids), atol=1e-5, rtol=1e-5)


def test_book_model_and_optimizer_pth(book_pth, tmp_path):
    """The book's chapter 5 also saves {"model_state_dict": ..., "optimizer_state_dict": ...}."""
    book, _ = book_pth
    optimizer = torch.optim.AdamW(book.parameters())
    path = tmp_path / "model_and_optimizer.pth"
    torch.save({"model_state_dict": book.state_dict(), "optimizer_state_dict": optimizer.state_dict()}, path)
    assert read_pth_state_dict(path).keys() == book.state_dict().keys()


def test_book_safetensors_loads_too(book_pth, tmp_path):
    book, _ = book_pth
    save_file(book.state_dict(), str(tmp_path / "book.safetensors"))
    model = load_book_model(tmp_path / "book.safetensors", BOOK_CFG)
    ids = torch.randint(0, 61, (1, 5))
    with torch.no_grad():
        torch.testing.assert_close(model(ids), book(ids), atol=1e-5, rtol=1e-5)


def test_pth_with_python_objects_is_not_unpickled(tmp_path):
    """weights_only=True: a whole pickled module (code) is refused, though torch.load(weights_only=False) reads it."""
    from book_style import BookGPT

    path = tmp_path / "whole_model.pth"
    torch.save(BookGPT(BOOK_CFG), path)
    assert isinstance(torch.load(path, weights_only=False), BookGPT)  # what an unsafe load would do
    _one_line_error(read_pth_state_dict, path, r"holds Python objects besides tensors .*save model\.state_dict\(\)")


def test_pth_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    _one_line_error(read_pth_state_dict, path, r"does not hold a state_dict \(it holds list\)")


@pytest.mark.parametrize("cut", [1, 200, 0.5])
def test_pth_truncated(book_pth, tmp_path, cut):
    data = book_pth[1].read_bytes()
    keep = int(len(data) * cut) if isinstance(cut, float) else len(data) - cut
    bad = _damaged(tmp_path, "cut.pth", data[:keep])
    for func in (read_pth_state_dict, lambda p: load_book_model(p, BOOK_CFG)):
        _one_line_error(func, bad, r"is truncated: the end of its zip archive is missing")


def test_pth_old_format_truncated(tmp_path):
    import io

    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(64, 64)}, buffer, _use_new_zipfile_serialization=False)
    data = buffer.getvalue()
    for keep in (20, len(data) // 2):
        bad = _damaged(tmp_path, f"old{keep}.pth", data[:keep])
        _one_line_error(read_pth_state_dict, bad, r"is truncated or damaged")


def test_pth_empty_random_and_wrong_formats(good_file, tmp_path):
    _one_line_error(read_pth_state_dict, _damaged(tmp_path, "e.pth", b""), r"is empty \(0 bytes\)")
    noise = torch.randint(0, 256, (3000,), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    _one_line_error(
        read_pth_state_dict, _damaged(tmp_path, "r.pth", noise.numpy().tobytes()), r"is not a file written by torch"
    )
    _one_line_error(read_pth_state_dict, _damaged(tmp_path, "c.pth", b'{"a": 1}'), r"is a JSON file")
    _one_line_error(read_pth_state_dict, good_file[0], r"is a safetensors file, not a torch\.save file")


def test_pth_zip_with_damaged_inside(book_pth, tmp_path):
    data = bytearray(book_pth[1].read_bytes())
    start = data.find(b"data.pkl") + 40  # inside the pickled structure
    data[start : start + 64] = b"\xff" * 64
    _one_line_error(read_pth_state_dict, _damaged(tmp_path, "z.pth", bytes(data)), r"is truncated or damaged")


def test_pth_folder_without_model_pth(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    msg = _one_line_error(read_pth_state_dict, tmp_path, r"is a folder without model\.pth \(it holds: notes\.txt\)")
    assert "pass the folder that holds model.pth" in msg
    _one_line_error(lambda p: load_book_model(p, BOOK_CFG), tmp_path, r"is a folder without model\.pth")


def test_book_model_wrong_config_is_one_line(book_pth):
    _, path = book_pth
    msg = _one_line_error(
        lambda p: load_book_model(p, {**BOOK_CFG, "context_length": 16}),
        path,
        r"'pos_emb.weight' has shape \(12, 24\), but this config gives \(16, 24\); pass the config",
    )
    assert "context_length=256" in msg
    _one_line_error(
        lambda p: load_book_model(p, {**BOOK_CFG, "qkv_bias": False}),
        path,
        r"does not fit GPTModel with this config \(qkv_bias=True\?\): missing \[\], unexpected \['trf_blocks.0",
    )
    _one_line_error(lambda p: load_book_model(p, {**BOOK_CFG, "tie_weights": True}), path, r"pass tie_weights=False")


# ---- download_gpt2_safetensors without a network: fail fast, one line (issue 17) ----------------
# No test here touches the network: socket.create_connection and huggingface_hub's download are replaced.


def _no_network(monkeypatch, calls=None):
    """Every TCP connection fails as it does offline (no DNS); huggingface_hub finds nothing in its cache."""
    import socket

    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def refuse(address, *args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    def download(repo_id, filename, *, local_files_only=False, **kwargs):
        if calls is not None:
            calls.append((filename, local_files_only))
        if not local_files_only:
            raise AssertionError("the test reached a real download")
        raise LocalEntryNotFoundError(f"{filename} is not in the cache\nand a long explanation")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


def test_download_offline_fails_fast_in_one_line(monkeypatch):
    """It used to retry for ~23 s inside huggingface_hub and end in its traceback."""
    import time

    from gpt_helpers.checkpoints.weights import download_gpt2_safetensors

    calls = []
    _no_network(monkeypatch, calls)
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"^cannot reach \S+ to download openai-community/gpt2 \(gaierror") as e:
        download_gpt2_safetensors("gpt2")
    assert time.perf_counter() - start < 5
    assert "\n" not in str(e.value) and "load_gpt2_safetensors()" in str(e.value)
    assert e.value.__cause__ is None and (e.value.__context__ is None or e.value.__suppress_context__)  # no chain
    assert calls == [("config.json", True)]  # only the cache was looked at


def test_download_uses_the_cache_without_the_network(tmp_path, monkeypatch):
    """A checkpoint already in huggingface_hub's cache is returned with every connection refused."""
    import socket

    from gpt_helpers.checkpoints.weights import download_gpt2_safetensors

    snapshot = tmp_path / "models--openai-community--gpt2" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (snapshot / "model.safetensors").write_bytes(b"not read here")
    (tmp_path / "models--openai-community--gpt2" / "refs").mkdir()
    (tmp_path / "models--openai-community--gpt2" / "refs" / "main").write_text("0" * 40)

    def refuse(*args, **kwargs):
        raise AssertionError("the cached checkpoint needed the network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert download_gpt2_safetensors("gpt2", cache_dir=tmp_path) == snapshot / "model.safetensors"


def test_download_with_hf_hub_offline_set(monkeypatch):
    from huggingface_hub import constants

    from gpt_helpers.checkpoints.weights import download_gpt2_safetensors

    _no_network(monkeypatch)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConnectionError, match="is not in the cache and HF_HUB_OFFLINE is set; unset it, or connect"):
        download_gpt2_safetensors("gpt2-medium")


def test_download_error_after_connecting_is_one_line(monkeypatch):
    """The host answers but the download fails (e.g. HTTP 404 or a full disk): one line, not the hub's traceback."""
    import socket

    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    from gpt_helpers.checkpoints.weights import download_gpt2_safetensors

    class Connection:
        def close(self):
            pass

    def download(repo_id, filename, *, local_files_only=False, **kwargs):
        if local_files_only:
            raise LocalEntryNotFoundError("not cached")
        raise OSError("404 Client Error.\n\nEntry Not Found for url: ...")

    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: Connection())
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    with pytest.raises(
        ConnectionError, match=r"^downloading openai-community/gpt2 failed \(OSError: 404 Client Error\.\)"
    ):
        download_gpt2_safetensors()


def test_download_behind_a_proxy_leaves_the_connection_to_huggingface_hub(monkeypatch):
    """With HTTPS_PROXY set the host is not dialled directly, so no probe is made."""
    import huggingface_hub

    from gpt_helpers.checkpoints.weights import download_gpt2_safetensors

    calls = []
    _no_network(monkeypatch, calls)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")

    def download(repo_id, filename, *, local_files_only=False, **kwargs):
        calls.append((filename, local_files_only))
        if local_files_only:
            raise OSError("not cached")
        return f"/cache/{repo_id}/{filename}"

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    assert str(download_gpt2_safetensors("gpt2")) == "/cache/openai-community/gpt2/model.safetensors"
    assert calls == [("config.json", True), ("config.json", False), ("model.safetensors", False)]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": ["gpt2"]}, ValueError, "unknown GPT-2 checkpoint"),
        ({"name": "gpt2-small"}, ValueError, "unknown GPT-2 checkpoint 'gpt2-small'; choose one of"),
        ({"cache_dir": 5}, TypeError, "cache_dir must be a folder path"),
    ],
)
def test_download_bad_arguments(kwargs, error, match):
    from gpt_helpers.checkpoints.weights import download_gpt2_safetensors

    with pytest.raises(error, match=match):
        download_gpt2_safetensors(**kwargs)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: read_safetensors(None), TypeError, "path must be a str or pathlib.Path .* got NoneType"),
        (lambda: load_gpt2_safetensors(5), TypeError, "path must be a str or pathlib.Path .* got int"),
        (lambda: load_gpt2_safetensors("x", dtype="float16"), TypeError, "dtype must be a floating torch.dtype"),
        (lambda: load_gpt2_safetensors("x", dtype=torch.int8), TypeError, "dtype must be a floating torch.dtype"),
        (lambda: config_from_hf_state_dict([1]), TypeError, "state_dict must be a dict of name -> tensor"),
        (
            lambda: config_from_hf_state_dict({"wte.weight": torch.zeros(10), "wpe.weight": torch.zeros(4, 8)}),
            ValueError,
            r"'wte.weight' has shape \(10,\), expected 2-D",
        ),
        (lambda: hf_to_gpt_state_dict({}, {"n_layers": 1}), TypeError, "cfg must be a GPTConfig"),
        (lambda: load_hf_gpt2_weights("model", {}), TypeError, "model must be a GPTModel, got str"),
    ],
)
def test_wrong_types_and_shapes_in_one_line(call, error, match):
    """These used to end in Python's Path TypeError, AttributeError or an unpacking ValueError."""
    with pytest.raises(error, match=match) as info:
        call()
    assert "\n" not in str(info.value)
