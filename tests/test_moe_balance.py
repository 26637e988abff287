"""gpt_helpers/training/moe_balance.py: the small MoE model on the Zen of Python and its three balancing modes."""

import pytest
import torch

from gpt_helpers import get_gpt2_tokenizer
from gpt_helpers.families.moe import MoEFeedForward
from gpt_helpers.training import moe_balance
from gpt_helpers.training.moe_balance import moe_zen_model, train_moe_balance, zen_token_ids
from gpt_helpers.training.zen import zen_of_python

SHORT = dict(num_steps=3, batch_size=2)  # a few steps: enough to see the wiring, fast on a loaded machine


def test_zen_token_ids_renumber_the_poem():
    ids, vocab = zen_token_ids()
    assert ids.shape == (206,) and len(vocab) == 112 and vocab == sorted(vocab)
    assert int(ids.min()) == 0 and int(ids.max()) == 111
    assert get_gpt2_tokenizer().decode([vocab[i] for i in ids.tolist()]) == zen_of_python()


def test_model_has_float64_moe_layers_and_leaves_the_rng_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    model = moe_zen_model(112, routing="deepseek")
    assert torch.equal(torch.rand(3), expected)
    layers = [block.ff for block in model.trf_blocks]
    assert all(isinstance(m, MoEFeedForward) for m in layers) and len(layers) == 2
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert layers[0].e_score_correction_bias.dtype == torch.float64
    assert (layers[0].n_experts, layers[0].top_k, layers[0].norm_topk_prob) == (16, 1, False)
    same = moe_zen_model(112, routing="deepseek")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values(), strict=True))


def test_run_is_deterministic_and_counts_every_token():
    threads = torch.get_num_threads()
    a = train_moe_balance("none", **SHORT)
    b = train_moe_balance("none", **SHORT)
    assert torch.get_num_threads() == threads
    assert a.losses == b.losses and torch.equal(a.final_load, b.final_load)
    assert a.step_loads.shape == (3, 2, 16) and a.step_loads.sum(dim=2).eq(2 * 32).all()
    assert a.final_load.shape == (2, 16) and a.final_load.sum(dim=1).tolist() == [174 * 32, 174 * 32]
    assert not a.model.training


def test_aux_loss_changes_training_only_through_its_coefficient():
    none = train_moe_balance("none", **SHORT)
    zero = train_moe_balance("aux_loss", aux_coef=0.0, **SHORT)
    some = train_moe_balance("aux_loss", aux_coef=0.1, **SHORT)
    assert zero.losses == none.losses  # the same run when the loss term weighs nothing
    assert some.losses[0] == none.losses[0] and some.losses[1:] != none.losses[1:]  # the first step's update differs


def test_bias_mode_moves_each_bias_by_the_rate_towards_the_mean_load():
    run = train_moe_balance("bias", routing="deepseek", bias_rate=0.01, num_steps=1, batch_size=2)
    load = run.step_loads[0]  # (layers, E) of the one step
    for layer, block in zip(load, run.model.trf_blocks, strict=True):
        expected = 0.01 * torch.sign(layer.double().mean() - layer.double())
        torch.testing.assert_close(block.ff.e_score_correction_bias, expected, rtol=0, atol=1e-12)
    fixed = train_moe_balance("none", routing="deepseek", num_steps=1, batch_size=2)
    assert all(block.ff.e_score_correction_bias.eq(0).all() for block in fixed.model.trf_blocks)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(balance="loss"), ValueError, "balance must be one of"),
        (dict(balance="bias"), ValueError, "use routing='deepseek'"),
        (dict(num_steps=0), ValueError, "num_steps must be >= 1"),
        (dict(batch_size=2.0), TypeError, "batch_size must be an int"),
        (dict(aux_coef=-1.0), ValueError, "aux_coef"),
        (dict(bias_rate=float("nan")), ValueError, "bias_rate"),
        (dict(n_experts=0), ValueError, "n_experts"),
    ],
)
def test_bad_arguments_get_one_line_errors(kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        train_moe_balance(**kwargs)
    assert "\n" not in str(info.value)


def test_public_names():
    assert set(moe_balance.__all__) == {
        "BALANCE_MODES",
        "BalanceRun",
        "zen_token_ids",
        "moe_zen_model",
        "train_moe_balance",
    }
