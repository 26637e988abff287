"""Our GPTModel is GPT-2: same weights give the same logits and text as Hugging Face."""

import pytest
import torch
from helpers import hf_gpt2

from gpt_helpers import GPTModel, generate, generate_text_simple
from gpt_helpers.checkpoints.weights import config_from_hf_state_dict, load_hf_gpt2_weights


@pytest.fixture(scope="module")
def pair():
    hf = hf_gpt2()
    cfg = config_from_hf_state_dict(hf.state_dict(), n_heads=hf.config.n_head)
    ours = load_hf_gpt2_weights(GPTModel(cfg).eval(), hf.state_dict())
    return hf, ours


def test_config_inferred(pair):
    hf, ours = pair
    cfg = ours.cfg
    assert (cfg.vocab_size, cfg.context_length, cfg.emb_dim, cfg.n_layers, cfg.n_heads) == (211, 32, 48, 3, 4)
    assert cfg.qkv_bias and cfg.tie_weights
    assert ours.out_head.weight is ours.tok_emb.weight


def test_equal_logits(pair):
    hf, ours = pair
    ids = torch.randint(0, 211, (3, 32))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=1e-5)


def test_equal_greedy_continuations(pair):
    hf, ours = pair
    prompt = torch.randint(0, 211, (2, 5))
    with torch.no_grad():
        expected = hf.generate(prompt, max_new_tokens=20, do_sample=False, use_cache=True, pad_token_id=0)
    assert torch.equal(generate_text_simple(ours, prompt, 20, context_size=32), expected)
    assert torch.equal(generate(ours, prompt, 20), expected)


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(1.0, None, None), (0.7, 20, None), (1.3, None, 0.8)])
def test_equal_sampled_text(pair, temperature, top_k, top_p):
    """Same RNG state, same warpers (temperature -> top-k -> top-p): the same samples as HF."""
    hf, ours = pair
    prompt = torch.randint(0, 211, (2, 4))
    torch.manual_seed(7)
    kwargs = {"temperature": temperature, "top_k": top_k or 0, "top_p": top_p or 1.0}
    with torch.no_grad():
        expected = hf.generate(prompt, max_new_tokens=15, do_sample=True, pad_token_id=0, **kwargs)
    torch.manual_seed(7)
    got = generate(ours, prompt, 15, temperature=temperature, top_k=top_k, top_p=top_p)
    assert torch.equal(got, expected)
