"""Hugging Face Llama / Qwen3 / GPT-2 checkpoints: load_hf_checkpoint gives the same model as transformers.

Everything is offline: random models from transformers, saved with save_pretrained into tmp folders.
"""

import json
import shutil

import pytest
import torch
from helpers import hf_gpt2
from safetensors.torch import load_file, save_file

from gpt_helpers import GPTModel, count_parameters, generate, optimize_for_inference
from gpt_helpers.checkpoints.hf import (
    HF_CONFIGS,
    hf_to_llama_qwen_state_dict,
    llama_qwen_config_from_hf,
    load_hf_checkpoint,
    load_hf_tokenizer,
    model_from_hf_config,
    read_hf_state_dict,
)
from gpt_helpers.families.llama_qwen import LlamaQwenModel, llama_qwen_parameter_breakdown
from gpt_helpers.text.tokenizer import text_to_token_ids, token_ids_to_text

VOCAB = 211


def _quiet():
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def _randomise_norms(model):
    """Random init leaves every RMSNorm at 1; perturb them so a norm that is not loaded shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.2 * torch.randn_like(p))
    return model


def hf_llama(seed=0):
    """A random LlamaForCausalLM: GQA (4 query heads, 2 key/value heads), llama3 RoPE scaling, untied head."""
    from transformers import LlamaConfig, LlamaForCausalLM

    _quiet()
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        rope_theta=10_000.0,
        # wavelengths 6.3 .. 19,869 positions: some below 32 / 4 (kept), one in between (blended), most above 32
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32,
        },
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=1,
    )
    return _randomise_norms(LlamaForCausalLM(cfg).eval())


def hf_qwen3(seed=0, vocab_size=VOCAB):
    """A random Qwen3ForCausalLM: GQA, QK-norm, head_dim 32 != hidden 64 / 4 heads, tied head."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    _quiet()
    torch.manual_seed(seed)
    cfg = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=128,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=1,
    )
    return _randomise_norms(Qwen3ForCausalLM(cfg).eval())


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    folder = tmp_path_factory.mktemp("llama")
    hf = hf_llama()
    hf.save_pretrained(folder)
    return hf, folder


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory):
    """Saved in small shards, so model.safetensors.index.json is read."""
    folder = tmp_path_factory.mktemp("qwen3")
    hf = hf_qwen3()
    hf.save_pretrained(folder, max_shard_size="40KB")
    return hf, folder


@pytest.fixture(scope="module", params=["llama", "qwen3"])
def pair(request, llama, qwen3):
    hf, folder = {"llama": llama, "qwen3": qwen3}[request.param]
    return hf, load_hf_checkpoint(folder)


def test_saved_layouts(llama, qwen3):
    assert (llama[1] / "model.safetensors").is_file()
    index = json.loads((qwen3[1] / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 3  # really sharded
    assert "lm_head.weight" not in index["weight_map"]  # tied: the head is not stored


def test_config_read_from_config_json(llama, qwen3):
    lcfg, qcfg = load_hf_checkpoint(llama[1]).cfg, load_hf_checkpoint(qwen3[1]).cfg
    assert (lcfg.n_heads, lcfg.n_kv_heads, lcfg.head_dim, lcfg.qk_norm, lcfg.tie_weights) == (4, 2, 16, False, False)
    assert lcfg.rope_scaling.factor == 8.0 and lcfg.rope_scaling.original_context_length == 32
    assert (qcfg.n_heads, qcfg.n_kv_heads, qcfg.head_dim, qcfg.qk_norm, qcfg.tie_weights) == (4, 2, 32, True, True)
    assert qcfg.rope_scaling is None and qcfg.rope_theta == 1_000_000.0


def test_equal_logits(pair):
    hf, ours = pair
    assert isinstance(ours, LlamaQwenModel) and not ours.training
    ids = torch.randint(0, VOCAB, (2, 100))  # beyond original_max_position_embeddings=32: scaling matters
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-4, rtol=1e-4)


def test_tied_head_is_one_parameter(qwen3):
    ours = load_hf_checkpoint(qwen3[1])
    assert ours.out_head.weight is ours.tok_emb.weight
    assert count_parameters(ours) == sum(p.numel() for p in qwen3[0].parameters())


def test_equal_greedy_continuations_with_and_without_cache(pair):
    hf, ours = pair
    prompt = torch.randint(2, VOCAB, (2, 6))
    with torch.no_grad():
        expected = hf.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=40, do_sample=False, pad_token_id=0
        )
    assert expected.shape == (2, 46)
    assert torch.equal(generate(ours, prompt, 40), expected)
    assert torch.equal(generate(ours, prompt, 40, use_cache=False), expected)


def test_optimize_for_inference_on_loaded_model(llama):
    hf, folder = llama
    ours = load_hf_checkpoint(folder)
    ids = torch.randint(0, VOCAB, (1, 20))
    with torch.no_grad():
        reference = ours(ids)
        optimize_for_inference(ours)
        torch.testing.assert_close(ours(ids), reference)
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-4, rtol=1e-4)


def test_sharded_and_single_file_hold_the_same_tensors(llama, tmp_path):
    hf, folder = llama
    hf.save_pretrained(tmp_path, max_shard_size="40KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    single, sharded = read_hf_state_dict(folder), read_hf_state_dict(tmp_path)
    assert single.keys() == sharded.keys()
    assert all(torch.equal(single[k], sharded[k]) for k in single)
    # the index file itself, or the folder: the same checkpoint
    a = load_hf_checkpoint(tmp_path / "model.safetensors.index.json").state_dict()
    b = load_hf_checkpoint(folder / "model.safetensors").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bfloat16_checkpoint_loads_into_float32(tmp_path):
    hf = hf_qwen3().to(torch.bfloat16)
    hf.save_pretrained(tmp_path)
    ours = load_hf_checkpoint(tmp_path)
    assert ours.tok_emb.weight.dtype == torch.float32
    assert torch.equal(ours.tok_emb.weight, hf.model.embed_tokens.weight.float())
    assert load_hf_checkpoint(tmp_path, dtype=torch.bfloat16).tok_emb.weight.dtype == torch.bfloat16


# ---- GPT-2 through the same entry point ----------------------------------------------------------------------


def test_gpt2_folder(tmp_path):
    hf = hf_gpt2()
    hf.save_pretrained(tmp_path)
    ours = load_hf_checkpoint(tmp_path)
    assert isinstance(ours, GPTModel) and ours.cfg.n_heads == 4 and ours.cfg.tie_weights
    ids = torch.randint(0, 211, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=1e-5)
    # a lone GPT-2 model.safetensors (no config.json) still loads: the shapes tell the size
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(tmp_path / "model.safetensors", lone / "model.safetensors")
    with pytest.raises(ValueError, match="cannot tell the number of heads"):
        load_hf_checkpoint(lone)  # emb_dim 48 is no GPT-2 size, so n_heads is unknown: said in one line


# ---- parameter counts of the real configurations, on the meta device ----------------------------------------


@pytest.mark.parametrize("name", ["Qwen/Qwen3-0.6B", "meta-llama/Llama-3.2-1B", "openai-community/gpt2"])
def test_parameter_counts_equal_transformers(name):
    from transformers import AutoConfig, AutoModelForCausalLM

    _quiet()
    config = HF_CONFIGS[name]
    hf_config = AutoConfig.for_model(**config)
    with torch.device("meta"):
        hf = AutoModelForCausalLM.from_config(hf_config)
    ours = model_from_hf_config(config, device="meta")
    assert all(p.is_meta for p in ours.parameters())
    assert count_parameters(ours) == sum(p.numel() for p in hf.parameters())
    if name != "openai-community/gpt2":
        # every tensor of the real checkpoint has a place of the same shape in our model, and vice versa
        converted = hf_to_llama_qwen_state_dict(hf.state_dict(), ours.cfg)
        assert converted.keys() == ours.state_dict().keys() - ({"out_head.weight"} if ours.cfg.tie_weights else set())


def test_published_sizes():
    """Qwen3-0.6B and Llama-3.2-1B tie their output head; their totals as published."""
    qwen = llama_qwen_parameter_breakdown(llama_qwen_config_from_hf(HF_CONFIGS["Qwen/Qwen3-0.6B"]))
    llama = llama_qwen_parameter_breakdown(llama_qwen_config_from_hf(HF_CONFIGS["meta-llama/Llama-3.2-1B"]))
    assert qwen["output_head"] == llama["output_head"] == 0
    assert qwen["total"] == 596_049_920
    assert llama["total"] == 1_235_814_400


# ---- errors: one line, naming the problem and the fix --------------------------------------------------------


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message


def _copy(folder, tmp_path):
    target = tmp_path / "ckpt"
    shutil.copytree(folder, target)
    return target


def _edit_config(folder, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_unsupported_model_type(llama, tmp_path):
    folder = _copy(llama[1], tmp_path)
    _edit_config(folder, model_type="mistral")
    with pytest.raises(ValueError, match=r"model_type 'mistral' is not supported; gpt_helpers loads gpt2, llama"):
        load_hf_checkpoint(folder)
    with pytest.raises(ValueError, match="model_type 'mistral' is not supported") as excinfo:
        model_from_hf_config({"model_type": "mistral"})
    _one_line(excinfo)


def test_missing_shard(qwen3, tmp_path):
    folder = _copy(qwen3[1], tmp_path)
    shard = sorted(folder.glob("model-*.safetensors"))[1]
    shard.unlink()
    with pytest.raises(ValueError, match=rf"shard {shard.name} listed in model.safetensors.index.json is missing"):
        load_hf_checkpoint(folder)


def test_index_names_a_tensor_its_shard_lacks(qwen3, tmp_path):
    folder = _copy(qwen3[1], tmp_path)
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"]["model.layers.9.mlp.up_proj.weight"] = sorted(set(index["weight_map"].values()))[0]
    index_path.write_text(json.dumps(index))
    with pytest.raises(ValueError, match=r"'model.layers.9.mlp.up_proj.weight' is in .* that shard does not hold it"):
        load_hf_checkpoint(folder)


def _resave(folder, change):
    path = folder / "model.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


def test_missing_key(llama, tmp_path):
    folder = _copy(llama[1], tmp_path)
    _resave(folder, lambda sd: sd.pop("model.layers.1.post_attention_layernorm.weight"))
    with pytest.raises(ValueError, match=r"checkpoint is missing \['model.layers.1.post_attention_layernorm.weight'\]"):
        load_hf_checkpoint(folder)


def test_unexpected_key(llama, tmp_path):
    folder = _copy(llama[1], tmp_path)
    _resave(folder, lambda sd: sd.update({"model.layers.0.self_attn.q_norm.weight": torch.ones(16)}))
    with pytest.raises(ValueError, match=r"unexpected tensors \['model.layers.0.self_attn.q_norm.weight'\]") as e:
        load_hf_checkpoint(folder)
    assert "model_type" in _one_line(e)  # q_norm in a llama file: the hint points at config.json


def test_config_with_fewer_layers_than_the_weights(llama, tmp_path):
    folder = _copy(llama[1], tmp_path)
    _edit_config(folder, num_hidden_layers=2)
    with pytest.raises(ValueError, match=r"unexpected tensors \['model.layers.2\..*\(9 in all\)\]"):
        load_hf_checkpoint(folder)


def test_shape_mismatch(llama, tmp_path):
    folder = _copy(llama[1], tmp_path)
    _edit_config(folder, intermediate_size=160)
    with pytest.raises(ValueError, match=r"shape mismatch for 'model.layers.0.mlp.gate_proj.weight': .*\(176, 64") as e:
        load_hf_checkpoint(folder)
    assert "(160, 64)" in _one_line(e)


def test_unsupported_rope_scaling(llama, tmp_path):
    folder = _copy(llama[1], tmp_path)
    _edit_config(folder, rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0})
    with pytest.raises(ValueError, match="RoPE scaling type 'yarn' in config.json is not supported") as e:
        load_hf_checkpoint(folder)
    _one_line(e)


def test_older_config_layout_with_rope_scaling():
    """config.json files written before transformers 5 keep rope_theta and rope_scaling at the top level."""
    cfg = llama_qwen_config_from_hf(HF_CONFIGS["meta-llama/Llama-3.2-1B"])
    assert cfg.rope_theta == 500000.0 and cfg.rope_scaling.factor == 32.0
    assert cfg.rope_scaling.original_context_length == 8192
    broken = {**HF_CONFIGS["meta-llama/Llama-3.2-1B"], "rope_scaling": {"rope_type": "llama3", "factor": 32.0}}
    with pytest.raises(ValueError, match="llama3 RoPE scaling has no 'low_freq_factor'"):
        llama_qwen_config_from_hf(broken)


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"attention_bias": True}, "attention_bias=true"),
        ({"mlp_bias": True}, "mlp_bias=true"),
        ({"hidden_act": "gelu"}, "hidden_act='gelu'"),
        ({"num_key_value_heads": 3}, r"n_heads \(16\) must be a multiple of n_kv_heads \(3\)"),
        ({"hidden_size": None}, "config.json has no 'hidden_size'"),
        # bad values: a one-line error naming config.json, never a silent fallback or a raw library error
        ({"num_key_value_heads": 0}, "valid qwen3 model: LlamaQwenConfig.n_kv_heads must be positive, got 0"),
        ({"head_dim": 0}, "valid qwen3 model: LlamaQwenConfig.head_dim must be positive, got 0"),
        ({"vocab_size": "151936"}, "valid qwen3 model: LlamaQwenConfig.vocab_size must be an int, got str"),
        ({"tie_word_embeddings": "false"}, "tie_word_embeddings must be true or false, got 'false'"),
        ({"rope_theta": "1e6"}, "rope_theta must be a number, got '1e6'"),
        ({"rope_theta": float("nan")}, "rope_theta must be a positive finite number, got nan"),
        ({"rms_norm_eps": -1e-6}, "norm_eps must be a positive finite number"),
        ({"num_attention_heads": "16", "head_dim": None}, "hidden_size and num_attention_heads must be positive ints"),
        (
            {"rope_scaling": {**HF_CONFIGS["meta-llama/Llama-3.2-1B"]["rope_scaling"], "factor": float("nan")}},
            "llama3 RoPE scaling is invalid: Llama3RopeScaling.factor must be a positive finite number, got nan",
        ),
    ],
)
def test_config_problems(change, pattern):
    with pytest.raises(ValueError, match=pattern) as e:
        model_from_hf_config({**HF_CONFIGS["Qwen/Qwen3-0.6B"], **change}, device="meta")
    _one_line(e)


def test_missing_model_type():
    with pytest.raises(ValueError, match="config.json has no 'model_type'"):
        model_from_hf_config({"hidden_size": 8})


def test_tied_head_that_differs(qwen3, tmp_path):
    hf = hf_qwen3()
    hf.save_pretrained(tmp_path)
    _resave(tmp_path, lambda sd: sd.update({"lm_head.weight": torch.randn(VOCAB, 64)}))
    with pytest.raises(ValueError, match="lm_head.weight differs from model.embed_tokens.weight"):
        load_hf_checkpoint(tmp_path)
    _resave(tmp_path, lambda sd: sd.update({"lm_head.weight": sd["model.embed_tokens.weight"].clone()}))
    assert load_hf_checkpoint(tmp_path).out_head.weight is not None  # an equal copy of the tied head is fine


def test_missing_or_damaged_files(llama, tmp_path):
    folder = _copy(llama[1], tmp_path)
    (folder / "config.json").write_text('{"model_type": "llama",')
    with pytest.raises(ValueError, match=r"config.json is not valid JSON; download config.json again"):
        load_hf_checkpoint(folder)
    (folder / "config.json").unlink()
    (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
    (folder / "model.safetensors.index.json").write_text('{"weight_map": {}}')
    with pytest.raises(FileNotFoundError, match="no config.json in .*; load_hf_checkpoint needs it"):
        load_hf_checkpoint(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="is a folder without model.safetensors or model.safetensors.index.json"):
        load_hf_checkpoint(empty)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_hf_checkpoint(tmp_path / "nowhere")
    (empty / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match="only safetensors checkpoints are read"):
        load_hf_checkpoint(empty / "pytorch_model.bin")


def test_damaged_shard_is_reported_by_read_safetensors(qwen3, tmp_path):
    folder = _copy(qwen3[1], tmp_path)
    shard = sorted(folder.glob("model-*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(ValueError, match=rf"{shard.name} is truncated") as e:
        load_hf_checkpoint(folder)
    _one_line(e)


# ---- tokenizer.json ------------------------------------------------------------------------------------------

TEXTS = [
    "Hello, I am a small model.",
    "你好，世界。小模型也能说中文。",
    "The quick brown fox jumps over the lazy dog.",
    "分组查询注意力让多个查询头共用一组键和值。",
]


def build_tokenizer(folder):
    """A byte-level BPE tokenizer trained here on four sentences, saved as folder/tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(TEXTS, trainer=trainer)
    tokenizer.save(str(folder / "tokenizer.json"))
    return tokenizer.get_vocab_size()


@pytest.fixture(scope="module")
def with_tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qwen3_tok")
    n_vocab = build_tokenizer(folder)
    hf = hf_qwen3(vocab_size=n_vocab)
    hf.save_pretrained(folder, max_shard_size="40KB")  # sharded, with tokenizer.json beside the shards
    return hf, folder


def test_tokenizer_round_trip(with_tokenizer):
    hf, folder = with_tokenizer
    tok = load_hf_tokenizer(folder)
    assert tok.byte_level and tok.n_vocab == hf.config.vocab_size and tok.eos_id == 1
    for text in TEXTS + ["没见过的字：龘", "<|endoftext|>"]:
        ids = text_to_token_ids(text, tok)
        assert ids.shape[0] == 1 and token_ids_to_text(ids, tok) == text
        assert tok.decode_bytes(ids[0].tolist()) == text.encode("utf-8")
    assert text_to_token_ids("<|endoftext|>", tok).tolist() == [[0]]  # a special token stays one id


def test_tokenizer_bytes_split_inside_a_character(with_tokenizer):
    """A Chinese character is 3 bytes; an unmerged one spans 3 tokens, and only the last completes it."""
    tok = load_hf_tokenizer(with_tokenizer[1])
    ids = tok.encode("龘")
    assert len(ids) == 3
    with pytest.raises(UnicodeDecodeError):
        tok.decode_bytes(ids[:2]).decode("utf-8")
    assert tok.decode_bytes(ids).decode("utf-8") == "龘"


def test_tokenizer_drives_the_loaded_model(with_tokenizer):
    hf, folder = with_tokenizer
    model, tok = load_hf_checkpoint(folder), load_hf_tokenizer(folder)
    ids = text_to_token_ids("你好，世界", tok)
    out = generate(model, ids, 10)
    with torch.no_grad():
        expected = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False)
    assert torch.equal(out, expected)
    assert isinstance(token_ids_to_text(out, tok), str)


def test_tokenizer_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer.json in"):
        load_hf_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"version": "1.0", "model": 3}')
    with pytest.raises(ValueError, match="could not be read as a tokenizer.json") as e:
        load_hf_tokenizer(tmp_path)
    _one_line(e)


# ---- the command line ----------------------------------------------------------------------------------------


def test_cli_generates_with_a_qwen3_folder_and_its_tokenizer(with_tokenizer, capsys):
    from gpt_helpers.cli import main

    hf, folder = with_tokenizer
    assert (folder / "model.safetensors.index.json").is_file()
    prompt = "你好，世界"
    assert main(["generate", prompt, "--max-new-tokens", "12", "--weights", str(folder)]) == 0
    tok = load_hf_tokenizer(folder)
    ids = text_to_token_ids(prompt, tok)
    with torch.no_grad():
        expected = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False)
    out = capsys.readouterr().out
    assert out == prompt + tok.decode(expected[0, ids.shape[1] :].tolist()) + "\n"


def test_cli_stops_at_the_checkpoints_eos(with_tokenizer, capsys):
    from gpt_helpers.cli import main

    hf, folder = with_tokenizer
    tok = load_hf_tokenizer(folder)
    assert tok.eos_id == hf.config.eos_token_id == 1
    assert main(["generate", "Hello", "--max-new-tokens", "3", "--weights", str(folder), "--stop-at-eos"]) == 0


def test_cli_reports_a_vocabulary_smaller_than_the_tokenizer(qwen3, capsys):
    from gpt_helpers.cli import main

    assert main(["generate", "Hi", "--weights", str(qwen3[1] / "model.safetensors.index.json")]) == 2
    err = capsys.readouterr().err
    assert "error: the checkpoint's vocabulary (211) is smaller than the tokenizer's (50257)" in err


def test_cli_one_line_error_for_unsupported_model_type(llama, tmp_path, capsys):
    from gpt_helpers.cli import main

    folder = _copy(llama[1], tmp_path)
    _edit_config(folder, model_type="mistral")
    assert main(["generate", "Hi", "--weights", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: model_type 'mistral' is not supported; "
        "gpt_helpers loads gpt2, llama, qwen3, deepseek_v3, gemma3_text, qwen3_moe, qwen3_next"
    )


def test_integer_weights_are_refused(llama, tmp_path):
    """An int8 tensor (a quantized checkpoint) would be cast to float silently by copy_: refuse it instead."""
    folder = _copy(llama[1], tmp_path)
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["model.layers.0.mlp.up_proj.weight"] = tensors["model.layers.0.mlp.up_proj.weight"].to(torch.int8)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"'model.layers.0.mlp.up_proj.weight' has dtype torch.int8: quantized") as e:
        load_hf_checkpoint(folder)
    _one_line(e)


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: llama_qwen_config_from_hf([1]), TypeError, "config must be the dict of a config.json, got list"),
        (lambda: llama_qwen_config_from_hf(None), TypeError, "config must be the dict of a config.json, got NoneType"),
        (lambda: model_from_hf_config(HF_CONFIGS["Qwen/Qwen3-0.6B"], device="nope"), ValueError, "not a torch device"),
        (
            lambda: model_from_hf_config(HF_CONFIGS["Qwen/Qwen3-0.6B"], dtype=torch.int8),
            TypeError,
            "floating torch.dtype",
        ),
        (
            lambda: model_from_hf_config(HF_CONFIGS["Qwen/Qwen3-0.6B"], dtype="bfloat16"),
            TypeError,
            "floating torch.dtype",
        ),
        (
            lambda: hf_to_llama_qwen_state_dict([1], llama_qwen_config_from_hf(HF_CONFIGS["Qwen/Qwen3-0.6B"])),
            TypeError,
            "state_dict must be a dict of tensors",
        ),  # fmt: skip
        (
            lambda: hf_to_llama_qwen_state_dict({"a": [1]}, llama_qwen_config_from_hf(HF_CONFIGS["Qwen/Qwen3-0.6B"])),
            TypeError,
            "state_dict must be a dict of tensors",
        ),  # fmt: skip
        (
            lambda: hf_to_llama_qwen_state_dict({}, HF_CONFIGS["Qwen/Qwen3-0.6B"]),
            TypeError,
            "cfg must be a LlamaQwenConfig",
        ),
        (lambda: load_hf_checkpoint(5), TypeError, "path must be a folder or file path"),
        (lambda: load_hf_checkpoint(None), TypeError, "path must be a folder or file path"),
    ],
)
def test_bad_arguments(call, error, pattern):
    with pytest.raises(error, match=pattern) as e:
        call()
    _one_line(e)


def test_cuda_device_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")  # the error is only for machines without it
    with pytest.raises(ValueError, match="no usable CUDA; use 'cpu'") as e:
        model_from_hf_config(HF_CONFIGS["Qwen/Qwen3-0.6B"], device="cuda")
    _one_line(e)


@pytest.mark.parametrize("dtype", [torch.int64, "float32"])
def test_load_with_a_bad_dtype(qwen3, dtype):
    with pytest.raises(TypeError, match="dtype must be a floating torch.dtype") as e:
        load_hf_checkpoint(qwen3[1], dtype=dtype)
    _one_line(e)


def test_shapes_are_checked_before_memory_is_taken(llama, tmp_path):
    """A config.json far too large for its weights fails on the shapes, not in the allocator."""
    folder = _copy(llama[1], tmp_path)
    _edit_config(folder, vocab_size=10**12)
    with pytest.raises(ValueError, match="shape mismatch for 'model.embed_tokens.weight'") as e:
        load_hf_checkpoint(folder)
    _one_line(e)
