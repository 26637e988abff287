"""Mixture-of-experts pieces (families/moe.py) against transformers' routers, expert layers and balance loss."""

from __future__ import annotations

import pytest
import torch

from gpt_helpers.families.moe import (
    MoEFeedForward,
    SwiGLUExperts,
    check_routing_sizes,
    deepseek_routing,
    expert_load,
    load_balancing_loss,
    softmax_topk_routing,
    stack_hf_experts,
    update_routing_bias_,
)

C, H, E = 16, 8, 8  # emb_dim, expert hidden size, experts


def _quiet():
    from transformers.utils import logging

    logging.set_verbosity_error()


def skewed_tokens(n=12, seed=0):
    """Tokens whose first feature is large and positive: a router row along it wins for every token."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, C, generator=g)
    x[:, 0] = x[:, 0].abs() + 3.0
    return x


def skew_router_(weight: torch.Tensor, winner: int = 0, loser: int = E - 1) -> None:
    """Make expert `winner` every token's first choice and expert `loser` nobody's (for skewed_tokens)."""
    with torch.no_grad():
        weight.mul_(0.1)
        weight[winner, 0] = 5.0
        weight[loser, 0] = -5.0


def sets(experts: torch.Tensor) -> list[set[int]]:
    return [set(row.tolist()) for row in experts]


# ---------------------------------------------------------------------------------------------------------------
# routing


@pytest.mark.parametrize("norm", [True, False])
def test_softmax_routing_equals_qwen3_moe_router(norm):
    from transformers import Qwen3MoeConfig
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeTopKRouter

    torch.manual_seed(0)
    router = Qwen3MoeTopKRouter(
        Qwen3MoeConfig(hidden_size=C, num_experts=E, num_experts_per_tok=3, norm_topk_prob=norm)
    )
    torch.nn.init.normal_(router.weight)
    x = torch.randn(20, C)
    logits, hf_weights, hf_experts = router(x)
    weights, experts = softmax_topk_routing(logits, 3, norm_topk_prob=norm)
    assert torch.equal(experts, hf_experts)
    torch.testing.assert_close(weights, hf_weights)
    assert torch.allclose(weights.sum(-1), torch.ones(20)) == norm  # renormalised weights sum to 1


def test_softmax_routing_on_small_numbers():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    weights, experts = softmax_topk_routing(logits, 2, norm_topk_prob=False)
    probs = torch.softmax(logits, -1)
    assert experts.tolist() == [[0, 1]]
    torch.testing.assert_close(weights, probs[:, :2])
    weights, _ = softmax_topk_routing(logits, 2, norm_topk_prob=True)
    torch.testing.assert_close(weights, probs[:, :2] / probs[:, :2].sum())


@pytest.mark.parametrize(("n_group", "topk_group", "norm"), [(1, 1, True), (4, 2, True), (4, 1, False), (2, 2, True)])
def test_deepseek_routing_equals_transformers_router(n_group, topk_group, norm):
    from transformers import DeepseekV3Config
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3TopkRouter

    torch.manual_seed(1)
    cfg = DeepseekV3Config(
        hidden_size=C,
        n_routed_experts=E,
        num_experts_per_tok=2,
        n_group=n_group,
        topk_group=topk_group,
        norm_topk_prob=norm,
        routed_scaling_factor=2.5,
    )
    router = DeepseekV3TopkRouter(cfg)
    torch.nn.init.normal_(router.weight)
    router.e_score_correction_bias.copy_(0.5 * torch.randn(E))  # perturbed: it must change the choice
    x = torch.randn(30, C)
    logits, hf_weights, hf_experts = router(x)
    weights, experts = deepseek_routing(logits, router.e_score_correction_bias, 2, n_group, topk_group, 2.5, norm)
    assert sets(experts) == sets(hf_experts)  # transformers does not sort its top-k
    order = experts.argsort(-1)
    hf_order = hf_experts.argsort(-1)
    torch.testing.assert_close(weights.gather(-1, order), hf_weights.gather(-1, hf_order))


def test_deepseek_bias_changes_the_choice_not_the_weights():
    logits = torch.tensor([[1.0, 0.5, 0.0, -0.5]])
    scores = torch.sigmoid(logits)
    weights, experts = deepseek_routing(logits, None, 1, norm_topk_prob=False)
    assert experts.tolist() == [[0]]
    bias = torch.tensor([0.0, 0.0, 0.0, 1.0])  # lifts expert 3 above all others
    weights, experts = deepseek_routing(logits, bias, 1, norm_topk_prob=False)
    assert experts.tolist() == [[3]]
    torch.testing.assert_close(weights, scores[:, 3:])  # its weight is its score, without the bias


def test_group_limit_drops_experts_of_weak_groups():
    # groups {0, 1}, {2, 3}: group 0 scores 0.9 + 0.1, group 1 scores 0.6 + 0.6; one group kept
    scores = torch.tensor([[0.9, 0.1, 0.6, 0.6]])
    logits = torch.logit(scores)
    _, experts = deepseek_routing(logits, None, 2, n_group=2, topk_group=1)
    assert sorted(experts[0].tolist()) == [2, 3]  # expert 0 is the best alone, but its group loses
    _, experts = deepseek_routing(logits, None, 2, n_group=2, topk_group=2)
    assert sorted(experts[0].tolist()) == [0, 2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((8, 9), "top_k (9) must be at most the number of experts (8)"),
        ((8, 0), "top_k must be a positive int"),
        ((8, 2, 3, 1), "n_group (3) must divide"),
        ((8, 2, 4, 5), "topk_group (5) must be at most n_group (4)"),
        ((8, 2, 8, 2), "at least 2 experts"),
        ((8, 3, 4, 1), "top_k (3) is more than the 2 experts"),
    ],
)
def test_bad_routing_sizes_get_one_line_errors(args, message):
    with pytest.raises(ValueError, match=r"^[^\n]*$") as err:
        check_routing_sizes(*args)
    assert message in str(err.value)


def test_bad_moe_layer_arguments():
    with pytest.raises(ValueError, match="routing must be"):
        MoEFeedForward(C, H, E, 2, routing="sinkhorn")
    with pytest.raises(ValueError, match="need routing='deepseek'"):
        MoEFeedForward(C, H, E, 2, n_group=2)
    with pytest.raises(ValueError, match="needs a shared expert"):
        MoEFeedForward(C, H, E, 2, shared_expert_gate=True)
    with pytest.raises(ValueError, match="must be at most the number of experts"):
        MoEFeedForward(C, H, E, E + 1)
    with pytest.raises(ValueError, match="bias must have shape"):
        deepseek_routing(torch.zeros(2, E), torch.zeros(E + 1), 2)
    experts = SwiGLUExperts(E, C, H)
    with pytest.raises(ValueError, match="flatten"):
        experts(torch.zeros(2, 3, C), torch.ones(2, 3, 1), torch.zeros(2, 3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"expert indices must lie in \[0, 7\]"):
        experts(torch.zeros(2, C), torch.ones(2, 1), torch.full((2, 1), E))


# ---------------------------------------------------------------------------------------------------------------
# experts: grouped forward = naive loop = transformers' layers


def skewed_routing(n=12, k=2, seed=0):
    """Every token chooses expert 0; the rest spread over experts 1..3; experts 4..7 get no token."""
    g = torch.Generator().manual_seed(seed)
    experts = torch.stack([torch.zeros(n, dtype=torch.long), torch.randint(1, 4, (n,), generator=g)], dim=1)
    weights = torch.rand(n, k, generator=g)
    return weights, experts


def test_grouped_forward_equals_naive_loop():
    torch.manual_seed(0)
    experts = SwiGLUExperts(E, C, H)
    x = torch.randn(12, C)
    weights, chosen = skewed_routing()
    assert expert_load(chosen, E)[4:].sum() == 0 and expert_load(chosen, E)[0] == 12  # none and all
    torch.testing.assert_close(experts(x, weights, chosen), experts.forward_naive(x, weights, chosen))
    # the naive loop is what the formula says, token by token
    expected = sum(weights[3, j] * experts.expert(int(chosen[3, j]), x[3:4])[0] for j in range(2))
    torch.testing.assert_close(experts.forward_naive(x, weights, chosen)[3], expected)


def test_grouped_forward_gradients_equal_naive_loop():
    torch.manual_seed(0)
    experts = SwiGLUExperts(E, C, H)
    x = torch.randn(12, C)
    weights, chosen = skewed_routing()
    grads = []
    for forward in (experts.forward, experts.forward_naive):
        w = weights.clone().requires_grad_(True)
        experts.zero_grad()
        forward(x, w, chosen).square().sum().backward()
        grads.append((w.grad, experts.gate.grad.clone(), experts.down.grad.clone()))
    for grouped, naive in zip(*grads, strict=True):
        torch.testing.assert_close(grouped, naive)


def test_grouped_forward_with_one_token_and_with_no_token():
    torch.manual_seed(0)
    experts = SwiGLUExperts(E, C, H)
    x = torch.randn(1, C)  # decoding: one token runs only its k experts
    weights, chosen = torch.tensor([[0.7, 0.3]]), torch.tensor([[5, 2]])
    torch.testing.assert_close(experts(x, weights, chosen), experts.forward_naive(x, weights, chosen))
    empty = experts(torch.zeros(0, C), torch.zeros(0, 2), torch.zeros(0, 2, dtype=torch.long))
    assert empty.shape == (0, C)


def copy_hf_experts_(ours: SwiGLUExperts, hf_experts) -> None:
    """transformers keeps gate and up fused: gate_up_proj (E, 2 * hidden, C)."""
    with torch.no_grad():
        gate, up = hf_experts.gate_up_proj.chunk(2, dim=1)
        ours.gate.copy_(gate)
        ours.up.copy_(up)
        ours.down.copy_(hf_experts.down_proj)


def _init_hf_(module):
    torch.manual_seed(2)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.3)


@pytest.mark.parametrize("norm", [True, False])
def test_qwen3_moe_layer_equals_transformers(norm):
    from transformers import Qwen3MoeConfig
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    _quiet()
    cfg = Qwen3MoeConfig(
        hidden_size=C, moe_intermediate_size=H, num_experts=E, num_experts_per_tok=2, norm_topk_prob=norm
    )
    hf = Qwen3MoeSparseMoeBlock(cfg).eval()
    _init_hf_(hf)
    skew_router_(hf.gate.weight)
    ours = MoEFeedForward(C, H, E, 2, norm_topk_prob=norm)
    with torch.no_grad():
        ours.router.weight.copy_(hf.gate.weight)
    copy_hf_experts_(ours.experts, hf.experts)
    x = skewed_tokens(12).view(2, 6, C)
    with torch.no_grad():
        expected = hf(x)
        load = expert_load(ours.route(x.view(-1, C))[2], E)
        assert load[0] == 12 and load[E - 1] == 0  # one expert gets every token, one gets none
        torch.testing.assert_close(ours(x), expected)
        _, weights, chosen = ours.route(x.view(-1, C))
        torch.testing.assert_close(ours.experts.forward_naive(x.view(-1, C), weights, chosen).view_as(x), expected)


def test_deepseek_v3_layer_equals_transformers():
    from transformers import DeepseekV3Config
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE

    _quiet()
    cfg = DeepseekV3Config(
        hidden_size=C,
        moe_intermediate_size=H,
        n_routed_experts=E,
        num_experts_per_tok=2,
        n_group=4,
        topk_group=2,
        n_shared_experts=2,
        routed_scaling_factor=2.5,
        norm_topk_prob=True,
    )
    hf = DeepseekV3MoE(cfg).eval()
    _init_hf_(hf)
    skew_router_(hf.gate.weight)
    hf.gate.e_score_correction_bias.copy_(0.2 * torch.randn(E))
    hf.gate.e_score_correction_bias[E - 1] = -1.0  # keeps the loser out whatever its group
    ours = MoEFeedForward(
        C, H, E, 2, routing="deepseek", n_group=4, topk_group=2, routed_scaling_factor=2.5, shared_hidden_dim=2 * H
    )
    with torch.no_grad():
        ours.router.weight.copy_(hf.gate.weight)
        ours.e_score_correction_bias.copy_(hf.gate.e_score_correction_bias)
        for name in ("gate", "up", "down"):
            getattr(ours.shared_expert, name).weight.copy_(getattr(hf.shared_experts, f"{name}_proj").weight)
    copy_hf_experts_(ours.experts, hf.experts)
    x = skewed_tokens(12).view(3, 4, C)
    with torch.no_grad():
        expected = hf(x)
        load = expert_load(ours.route(x.view(-1, C))[2], E)
        assert load[0] == 12 and load[E - 1] == 0
        torch.testing.assert_close(ours(x), expected)


def test_qwen3_next_layer_equals_transformers():
    from transformers import Qwen3NextConfig
    from transformers.models.qwen3_next.modeling_qwen3_next import Qwen3NextSparseMoeBlock

    _quiet()
    cfg = Qwen3NextConfig(
        hidden_size=C,
        moe_intermediate_size=H,
        num_experts=E,
        num_experts_per_tok=3,
        shared_expert_intermediate_size=12,
        norm_topk_prob=True,
    )
    hf = Qwen3NextSparseMoeBlock(cfg).eval()
    _init_hf_(hf)
    skew_router_(hf.gate.weight)
    ours = MoEFeedForward(C, H, E, 3, shared_hidden_dim=12, shared_expert_gate=True)
    with torch.no_grad():
        ours.router.weight.copy_(hf.gate.weight)
        ours.shared_expert_gate.weight.copy_(hf.shared_expert_gate.weight)
        for name in ("gate", "up", "down"):
            getattr(ours.shared_expert, name).weight.copy_(getattr(hf.shared_expert, f"{name}_proj").weight)
    copy_hf_experts_(ours.experts, hf.experts)
    x = skewed_tokens(10).view(2, 5, C)
    with torch.no_grad():
        expected = hf(x)
        load = expert_load(ours.route(x.view(-1, C))[2], E)
        assert load[0] == 10 and load[E - 1] == 0
        torch.testing.assert_close(ours(x), expected)


def test_moe_layer_keeps_the_last_routing():
    torch.manual_seed(0)
    layer = MoEFeedForward(C, H, E, 2)
    layer(torch.randn(2, 5, C))
    assert layer.last_router_logits.shape == (10, E) and layer.last_experts.shape == (10, 2)
    assert expert_load(layer.last_experts, E).sum() == 20


# ---------------------------------------------------------------------------------------------------------------
# load balance


def test_load_balancing_loss_equals_transformers():
    from transformers.models.qwen3_moe.modeling_qwen3_moe import load_balancing_loss_func

    torch.manual_seed(0)
    layers = tuple(torch.randn(24, E) for _ in range(3))
    torch.testing.assert_close(load_balancing_loss(layers, 2), load_balancing_loss_func(layers, E, 2))
    torch.testing.assert_close(load_balancing_loss(layers[0], 2), load_balancing_loss_func(layers[:1], E, 2))


def test_load_balancing_loss_is_lowest_when_balanced():
    balanced = torch.eye(E) * 0.01  # token i prefers expert i: each expert gets one token, probabilities ~1/E
    collapsed = torch.zeros(E, E)
    collapsed[:, 0] = 10.0  # every token on expert 0
    assert load_balancing_loss(balanced, 1).item() == pytest.approx(1.0, abs=1e-3)  # top_k at perfect balance
    assert load_balancing_loss(collapsed, 1).item() > 0.99 * E
    logits = (collapsed * 0.3).requires_grad_(True)
    load_balancing_loss(logits, 1).backward()
    assert logits.grad[:, 0].gt(0).all()  # gradient descent lowers the crowded expert's logits
    assert logits.grad[:, 1:].lt(0).all()  # and raises the others'


def test_expert_load_counts_tokens():
    experts = torch.tensor([[0, 1], [0, 3], [0, 1]])
    assert expert_load(experts, 5).tolist() == [3, 2, 0, 1, 0]
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        expert_load(experts, 3)


def test_routing_bias_update_moves_toward_balance():
    bias = torch.zeros(4)
    load = torch.tensor([10, 2, 4, 0])  # mean 4
    update_routing_bias_(bias, load, 0.01)
    torch.testing.assert_close(bias, torch.tensor([-0.01, 0.01, 0.0, 0.01]))
    with pytest.raises(ValueError, match="one entry per expert"):
        update_routing_bias_(bias, torch.zeros(3), 0.01)


def test_bias_update_rebalances_a_skewed_router():
    # tokens all prefer expert 0; a few bias steps spread them without touching the router
    torch.manual_seed(0)
    logits = torch.randn(64, E) * 0.1
    logits[:, 0] += 1.0
    bias = torch.zeros(E)
    before = expert_load(deepseek_routing(logits, bias, 2)[1], E)
    for _ in range(100):
        update_routing_bias_(bias, expert_load(deepseek_routing(logits, bias, 2)[1], E), 0.01)
    after = expert_load(deepseek_routing(logits, bias, 2)[1], E)
    assert before.max() == 64 and after.max() < 32


def test_stack_hf_experts_both_layouts():
    torch.manual_seed(0)
    per_expert = {
        f"mlp.experts.{e}.{name}_proj.weight": torch.randn(C if name == "down" else H, H if name == "down" else C)
        for e in range(3)
        for name in ("gate", "up", "down")
    }
    stacked = stack_hf_experts(dict(per_expert), "mlp.experts", 3)
    assert stacked["gate"].shape == (3, H, C) and stacked["down"].shape == (3, C, H)
    torch.testing.assert_close(stacked["up"][2], per_expert["mlp.experts.2.up_proj.weight"])
    fused = {
        "mlp.experts.gate_up_proj": torch.cat([stacked["gate"], stacked["up"]], dim=1),
        "mlp.experts.down_proj": stacked["down"],
    }
    again = stack_hf_experts(fused, "mlp.experts", 3)
    assert not fused  # popped
    for name in ("gate", "up", "down"):
        torch.testing.assert_close(again[name], stacked[name])
    del per_expert["mlp.experts.1.up_proj.weight"]
    with pytest.raises(ValueError, match="missing 'mlp.experts.1.up_proj.weight'"):
        stack_hf_experts(per_expert, "mlp.experts", 3)
