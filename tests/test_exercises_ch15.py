"""Chapter 15's exercises: the notebooks' shape (the checks of tests/test_exercises.py, for ch15), and self-checks
that accept right float32 answers, reject wrong ones and leave the learner's names alone."""

import re

import pytest
import test_exercises as shape_checks
from exercise_harness import code_and_checks, run_source, solve
from test_exercises import (  # noqa: F401  (collected here with this module's `chapter` fixture: ch15)
    CHECK,
    STATEMENT,
    cells_matching,
    first_line,
    load,
    test_check_cells_are_identical,
    test_checks_fail_in_the_blank_state,
    test_every_exercise_has_one_check_after_its_code,
    test_execution_counts_run_in_order,
    test_learner_cells_are_blank,
    test_no_synced_cells,
    test_solutions_store_no_errors,
    test_statements_are_identical,
)

CHAPTER = "ch15"


@pytest.fixture
def chapter():
    return CHAPTER


def test_exercises_are_numbered_in_order():
    ids = [ex_id for ex_id, _ in cells_matching(load(CHAPTER, "exercises"), STATEMENT, "markdown")]
    assert ids == [f"15.{i}" for i in range(1, len(ids) + 1)] and len(ids) >= 4, ids


def test_shape_checks_come_from_the_shared_module():
    """The imported checks are tests/test_exercises.py's own (not copies that could drift)."""
    assert test_statements_are_identical is shape_checks.test_statements_are_identical


# ---- running the solutions and the self-checks in a plain namespace (no kernel: tests/exercise_harness.py) ------


def cells(kind: str) -> tuple[list[str], dict[str, str]]:
    """The code cells that are not self-checks, in order, and the self-check cells by exercise id."""
    return code_and_checks(CHAPTER, kind)


@pytest.fixture(scope="module")
def solved():
    return solve(CHAPTER)


def test_checks_pass_in_any_order_and_keep_the_learners_names(solved):
    namespace, checks = solved
    namespace = dict(namespace)
    before = {name: value for name, value in namespace.items() if not name.startswith("_")}
    for ex_id in ["15.4", "15.2", "15.3", "15.1"]:
        assert f"自检 {ex_id} 通过" in run_source(checks[ex_id], namespace)
    after = {name: value for name, value in namespace.items() if not name.startswith("_")}
    assert after.keys() == before.keys(), f"a self-check defined {sorted(after.keys() - before.keys())}"
    changed = [name for name in before if after[name] is not before[name]]
    assert not changed, f"a self-check overwrote {changed}"


def test_blank_learner_cells_fail_their_checks():
    code, checks = cells("exercises")
    namespace: dict = {}
    for source in code:
        run_source(source, namespace)
    for check in checks.values():
        with pytest.raises(NotImplementedError):
            run_source(check, dict(namespace))


# right answers computed in float32 (or as float32 numbers): a learner who does so must pass
FLOAT32 = {
    "15.1": """
def route_topk(logits, k, renormalize):
    p = torch.softmax(logits.float(), dim=-1)
    w, e = torch.topk(p, k, dim=-1)
    return (w / w.sum(-1, keepdim=True) if renormalize else w), e

kept_share = torch.tensor([2.0, 1.0, 0.0, -1.0]).softmax(-1).topk(2).values.sum()  # a float32 tensor
kept_share_renorm = torch.tensor(1.0)
""",
    "15.2": "candidates_v3 = torch.tensor(128).item()",
    "15.3": """
def grouped_forward(experts_module, x, weights, experts):
    out = torch.zeros(x.shape, dtype=torch.float32)
    for e in sorted(set(experts.flatten().tolist())):
        mask = experts == e  # (N, k)
        rows = mask.any(dim=1).nonzero().flatten()
        w = (weights * mask).sum(dim=1)[rows]  # each token chooses an expert at most once
        out[rows] += w[:, None] * experts_module.expert(e, x[rows])
    return out
""",
    "15.4": """
def aux_loss(router_logits, k):
    p = router_logits.float().softmax(-1)
    one_hot = torch.zeros_like(p).scatter_(1, p.topk(k, -1).indices, 1.0)
    return p.shape[1] * (one_hot.mean(0).detach() * p.mean(0)).sum()

def bias_step(bias, load, rate):
    mean = load.float().mean()
    return torch.where(load > mean, bias - rate, torch.where(load < mean, bias + rate, bias))

aux_collapsed = torch.tensor(16.0, dtype=torch.float32)
""",
}


# right answers written another way, each must pass its self-check
OTHER_RIGHT = [
    ("15.1", "import math\nkept_share = (math.e**2 + math.e) / sum(math.e**i for i in (2, 1, 0, -1))"),
    ("15.1", "kept_share_renorm = 1"),
    ("15.2", "candidates_v3 = 4 * 32"),
    (
        "15.2",
        "def deepseek_choose(logits, bias, k, n_group, topk_group):\n"
        "    choice = torch.sigmoid(logits) + bias\n"
        "    g = choice.unflatten(1, (n_group, -1))\n"
        "    s = g.sort(dim=-1, descending=True).values[..., :2].sum(-1)\n"
        "    keep = s.argsort(dim=-1, descending=True)[:, :topk_group]\n"
        "    mask = torch.zeros_like(s, dtype=torch.bool).scatter(1, keep, True)\n"
        "    return choice.where(mask.repeat_interleave(g.shape[-1], dim=1), -1e9).argsort(-1, descending=True)[:, :k]",
    ),
    ("15.4", "aux_collapsed = 16"),
    ("15.1", "import math\nkept_share = 1 / (1 + math.exp(-2))"),  # (e^2 + e) / (e^2 + e + 1 + 1/e) = sigmoid(2)
    (
        "15.2",
        "def deepseek_choose(logits, bias, k, n_group, topk_group):\n"  # a plain Python loop over tokens
        "    c = logits.sigmoid() + bias\n"
        "    per = c.shape[1] // n_group\n"
        "    rows = []\n"
        "    for row in c.tolist():\n"
        "        groups = [sum(sorted(row[g * per : (g + 1) * per])[-2:]) for g in range(n_group)]\n"
        "        keep = sorted(range(n_group), key=lambda g: -groups[g])[:topk_group]\n"
        "        pool = [i for g in keep for i in range(g * per, (g + 1) * per)]\n"
        "        rows.append(sorted(pool, key=lambda i: -row[i])[:k])\n"
        "    return torch.tensor(rows)",
    ),
    (
        "15.3",
        "def grouped_forward(experts_module, x, weights, experts):\n"  # masks, out[rows] += (a token picks e once)
        "    out = torch.zeros_like(x)\n"
        "    for e in torch.unique(experts).tolist():\n"
        "        m = experts == e\n"
        "        rows = m.any(1)\n"
        "        out[rows] += (weights * m).sum(1)[rows, None] * experts_module.expert(e, x[rows])\n"
        "    return out",
    ),
    (
        "15.4",
        "def aux_loss(router_logits, k):\n"  # float64 and one_hot
        "    p = router_logits.double().softmax(-1)\n"
        "    mask = F.one_hot(p.topk(k, -1).indices, p.shape[1]).sum(1).double()\n"
        "    return p.shape[1] * (mask.mean(0) * p.mean(0)).sum()\n"
        "def bias_step(bias, load, rate):\n"
        "    out = bias.clone()\n"
        "    m = load.double().mean()\n"
        "    out[load > m] -= rate\n"
        "    out[load < m] += rate\n"
        "    return out",
    ),
]


@pytest.mark.parametrize(("ex_id", "right"), OTHER_RIGHT, ids=[f"{e}-{i}" for i, (e, _) in enumerate(OTHER_RIGHT)])
def test_right_answers_written_otherwise_pass(solved, ex_id, right):
    namespace, checks = solved
    namespace = dict(namespace)
    run_source(right, namespace)
    assert f"自检 {ex_id} 通过" in run_source(checks[ex_id], namespace)


def test_checks_leave_the_global_random_state_alone(solved):
    """A self-check that seeds torch for its own data must not change the learner's next random numbers."""
    namespace, checks = solved
    namespace = dict(namespace)
    import torch

    for ex_id in sorted(checks):
        torch.manual_seed(7)
        expected = torch.rand(3)
        torch.manual_seed(7)
        run_source(checks[ex_id], namespace)
        assert torch.equal(torch.rand(3), expected), f"self-check {ex_id} changed torch's global random state"


@pytest.mark.parametrize("ex_id", sorted(FLOAT32))
def test_float32_answers_pass(solved, ex_id):
    namespace, checks = solved
    namespace = dict(namespace)
    run_source(FLOAT32[ex_id], namespace)
    assert f"自检 {ex_id} 通过" in run_source(checks[ex_id], namespace)


# (exercise, code that turns a right answer into a wrong one, the message the self-check must give)
WRONG = [
    # 15.1
    (
        "15.1",
        "_r = route_topk\ndef route_topk(logits, k, renormalize):\n    return _r(logits, k, not renormalize)",
        "weights off",
    ),
    (
        "15.1",
        "def route_topk(logits, k, renormalize):\n"
        "    w, e = logits.topk(k, -1)\n"
        "    return (w / w.sum(-1, keepdim=True) if renormalize else w), e",
        "weights off",
    ),  # no softmax
    (
        "15.1",
        "def route_topk(logits, k, renormalize):\n"
        "    w, e = logits.softmax(-1).topk(k, -1, largest=False)\n"
        "    return w, e",
        "chosen experts are wrong",
    ),
    (
        "15.1",
        "def route_topk(logits, k, renormalize):\n"
        "    w, e = logits.softmax(-1).topk(k, -1)\n"
        "    return w.flip(-1), e.flip(-1)",
        "best first",
    ),
    (
        "15.1",
        "def route_topk(logits, k, renormalize):\n"
        "    logits -= logits.max(-1, keepdim=True).values\n"
        "    w, e = logits.softmax(-1).topk(k, -1)\n"
        "    return (w / w.sum(-1, keepdim=True) if renormalize else w), e",
        "must not change the logits",
    ),
    (
        "15.1",
        "def route_topk(logits, k, renormalize):\n"
        "    w, e = logits.softmax(0).topk(k, -1)\n"
        "    return (w / w.sum(-1, keepdim=True) if renormalize else w), e",
        "wrong",
    ),  # softmax over tokens
    ("15.1", "kept_share = 1.0", "kept_share is wrong"),
    ("15.1", "kept_share = float(torch.tensor([2.0, 1.0, 0.0, -1.0]).softmax(-1)[0])", "kept_share is wrong"),  # k = 1
    ("15.1", "kept_share_renorm = kept_share", "kept_share_renorm is wrong"),
    ("15.1", "kept_share = None", "parts 2 and 3 are missing"),
    # 15.2
    (
        "15.2",
        "def deepseek_choose(logits, bias, k, n_group, topk_group):\n"
        "    return (logits.sigmoid() + bias).topk(k, -1).indices",
        "choose other experts (E = 16, n_group = 4",
    ),  # no groups
    (
        "15.2",
        "def deepseek_choose(logits, bias, k, n_group, topk_group):\n    return logits.sigmoid().topk(k, -1).indices",
        "choose other experts",
    ),  # bias ignored
    (
        "15.2",
        "def deepseek_choose(logits, bias, k, n_group, topk_group):\n"
        "    choice = logits.sigmoid() + bias\n"
        "    n, e = choice.shape\n"
        "    g = choice.view(n, n_group, e // n_group)\n"
        "    keep = g.max(-1).values.topk(topk_group, -1).indices\n"  # the best one, not the best two
        "    mask = torch.zeros(n, n_group, dtype=torch.bool).scatter(1, keep, True)\n"
        "    return g.masked_fill(~mask[:, :, None], float('-inf')).view(n, e).topk(k, -1).indices",
        "choose other experts",
    ),
    (
        "15.2",
        "def deepseek_choose(logits, bias, k, n_group, topk_group):\n"
        "    choice = logits.sigmoid() + bias\n"
        "    n, e = choice.shape\n"
        "    g = choice.view(n, e // n_group, n_group).transpose(1, 2)\n"  # experts dealt out round-robin
        "    keep = g.topk(2, -1).values.sum(-1).topk(topk_group, -1).indices\n"
        "    mask = torch.zeros(n, n_group, dtype=torch.bool).scatter(1, keep, True)\n"
        "    return g.masked_fill(~mask[:, :, None], float('-inf')).transpose(1, 2).reshape(n, e).topk(k, -1).indices",
        "choose other experts",
    ),
    (
        "15.2",
        "_c = deepseek_choose\n"
        "def deepseek_choose(logits, bias, k, n_group, topk_group):\n"
        "    bias += 0\n"
        "    logits.sigmoid_()\n"
        "    return _c(logits, bias, k, n_group, topk_group)",
        "must not change its inputs",
    ),
    ("15.2", "candidates_v3 = 256", "candidates_v3 is wrong"),
    ("15.2", "candidates_v3 = 8 * 4", "candidates_v3 is wrong"),
    ("15.2", "candidates_v3 = None", "part 2 is missing"),
    # 15.3
    (
        "15.3",
        "def grouped_forward(experts_module, x, weights, experts):\n"
        "    return experts_module.forward_naive(x, weights, experts)",
        "do not call forward_naive",
    ),
    (
        "15.3",
        "def grouped_forward(experts_module, x, weights, experts):\n    return experts_module(x, weights, experts)",
        "do not call forward",
    ),
    (
        "15.3",
        "def grouped_forward(experts_module, x, weights, experts):\n"
        "    out = torch.zeros_like(x)\n"
        "    for e in range(experts_module.n_experts):\n"  # every expert, also those no token chose
        "        tokens, slots = (experts == e).nonzero(as_tuple=True)\n"
        "        out.index_add_(0, tokens, experts_module.expert(e, x[tokens]) * weights[tokens, slots, None])\n"
        "    return out",
        "should run once for each of",
    ),
    (
        "15.3",
        "def grouped_forward(experts_module, x, weights, experts):\n"
        "    out = torch.zeros_like(x)\n"
        "    for n in range(x.shape[0]):\n"  # the naive loop, one call per (token, expert)
        "        for j in range(experts.shape[1]):\n"
        "            e = int(experts[n, j])\n"
        "            out[n] += weights[n, j] * experts_module.expert(e, x[n : n + 1])[0]\n"
        "    return out",
        "should run once for each of",
    ),
    (
        "15.3",
        "def grouped_forward(experts_module, x, weights, experts):\n"
        "    out = torch.zeros_like(x)\n"
        "    for e in experts.unique().tolist():\n"
        "        tokens, slots = (experts == e).nonzero(as_tuple=True)\n"
        "        out.index_add_(0, tokens, experts_module.expert(e, x[tokens]))\n"  # weights forgotten
        "    return out",
        "off by",
    ),
    (
        "15.3",
        "def grouped_forward(experts_module, x, weights, experts):\n"
        "    out = torch.zeros_like(x)\n"
        "    for e in experts.unique().tolist():\n"
        "        tokens, slots = (experts == e).nonzero(as_tuple=True)\n"
        "        out[tokens] = experts_module.expert(e, x[tokens]) * weights[tokens, slots, None]\n"  # overwrites
        "    return out",
        "case 'random': off by",
    ),
    (
        "15.3",
        "def grouped_forward(experts_module, x, weights, experts):\n"
        "    out = torch.zeros_like(x)\n"
        "    for e in experts.unique().tolist():\n"
        "        tokens, slots = (experts == e).nonzero(as_tuple=True)\n"
        "        out.index_add_(0, tokens, experts_module.expert(e, x[tokens]) * weights[tokens, 0, None])\n"  # slot 0
        "    return out",
        "off by",
    ),
    # 15.4
    (
        "15.4",
        "_a = aux_loss\ndef aux_loss(router_logits, k):\n    return _a(router_logits, k) / router_logits.shape[1]",
        "aux_loss is",
    ),  # no factor E
    (
        "15.4",
        "def aux_loss(router_logits, k):\n"
        "    n, e = router_logits.shape\n"
        "    p = router_logits.softmax(-1)\n"
        "    f = torch.zeros_like(p).scatter(1, p.topk(k, -1).indices, 1.0).mean(0)\n"  # f keeps its graph: no effect
        "    return e * (f * p.mean(0)).sum() * 0 + e * (p.mean(0) * p.mean(0)).sum()",  # P_e * P_e in place of f_e
        "aux_loss is",
    ),
    (
        "15.4",
        "def aux_loss(router_logits, k):\n"
        "    n, e = router_logits.shape\n"
        "    p = router_logits.softmax(-1)\n"
        "    f = torch.bincount(p.topk(k, -1).indices.flatten(), minlength=e) / n\n"
        "    return e * (f * p.mean(0)).sum() / k",  # divided by k
        "k = 2",
    ),
    (
        "15.4",
        "def aux_loss(router_logits, k):\n"
        "    n, e = router_logits.shape\n"
        "    p = router_logits.softmax(-1)\n"
        "    f = torch.bincount(p.topk(k, -1).indices.flatten(), minlength=e) / n\n"
        "    return e * (f * p.mean(0).detach()).sum()",  # the right value, but P_e detached: no gradient at all
        "carries no gradient",
    ),
    (
        "15.4",
        "def aux_loss(router_logits, k):\n"
        "    n, e = router_logits.shape\n"
        "    p = router_logits.softmax(-1)\n"
        "    f = torch.bincount(p.topk(k, -1).indices.flatten(), minlength=e) / n\n"
        "    f = f + p.mean(0) - p.mean(0).detach()\n"  # the right value, but f_e now carries P_e's gradient
        "    return e * (f * p.mean(0)).sum()",
        "the gradient is off",
    ),
    (
        "15.4",
        "def bias_step(bias, load, rate):\n    return bias - rate * torch.sign(load.float().mean() - load)",
        "wrong bias for load [10, 2, 4, 0]",
    ),  # the wrong way
    (
        "15.4",
        "def bias_step(bias, load, rate):\n    return bias + rate * (load.float().mean() - load)",
        "wrong bias",
    ),  # not the sign
    (
        "15.4",
        "def bias_step(bias, load, rate):\n    return bias + rate * torch.where(load > load.float().mean(), -1.0, 1.0)",
        "wrong bias for load [10, 2, 4, 0]",  # load 4 is the mean there: its bias must not move
    ),
    (
        "15.4",
        "def bias_step(bias, load, rate):\n    bias += rate * torch.sign(load.float().mean() - load)\n    return bias",
        "must not change the bias",
    ),
    ("15.4", "aux_collapsed = 1.0", "aux_collapsed is wrong"),
    ("15.4", "aux_collapsed = 256", "aux_collapsed is wrong"),
    ("15.4", "aux_collapsed = None", "part 3 is missing"),
    # found by an outside read
    (
        "15.1",
        "def route_topk(logits, k, renormalize):\n    w, e = logits.topk(k, -1)\n    return w.softmax(-1), e",
        "weights off",
    ),  # softmax over the k best logits only: right when renormalised, wrong when not
    (
        "15.1",
        "def route_topk(logits, k, renormalize):\n"
        "    w, e = logits.log_softmax(-1).topk(k, -1)\n"
        "    return (w / w.sum(-1, keepdim=True) if renormalize else w), e",
        "weights off",
    ),
    (
        "15.1",
        "def route_topk(logits, k, renormalize):\n"
        "    w, e = logits.softmax(-1).topk(k, -1)\n"
        "    return (w / w.sum() if renormalize else w), e",  # one sum over the whole batch
        "weights off",
    ),
    (
        "15.1",
        "def route_topk(logits, k, renormalize):\n"
        "    w, e = logits.softmax(-1).topk(k, -1)\n"
        "    return (w / w.sum(-1, keepdim=True) if renormalize else w), e.tolist()",
        "should both be tensors",
    ),
    ("15.1", "kept_share = 0.88", "kept_share is wrong"),  # rounded too far
    (
        "15.2",
        "def deepseek_choose(logits, bias, k, n_group, topk_group):\n"
        "    s = logits.sigmoid()\n"
        "    n, e = s.shape\n"
        "    keep = s.view(n, n_group, -1).topk(2, -1).values.sum(-1).topk(topk_group, -1).indices\n"  # no bias
        "    mask = torch.zeros(n, n_group, dtype=torch.bool).scatter(1, keep, True)\n"
        "    c = (s + bias).view(n, n_group, -1).masked_fill(~mask[:, :, None], float('-inf'))\n"
        "    return c.view(n, e).topk(k, -1).indices",
        "choose other experts",
    ),
    (
        "15.2",
        "def deepseek_choose(logits, bias, k, n_group, topk_group):\n"
        "    g = (logits.sigmoid() + bias).view(logits.shape[0], n_group, -1)\n"
        "    keep = g.sum(-1).topk(topk_group, -1).indices\n"  # a group's score: all of its experts
        "    mask = torch.zeros(logits.shape[0], n_group, dtype=torch.bool).scatter(1, keep, True)\n"
        "    return g.masked_fill(~mask[:, :, None], float('-inf')).flatten(1).topk(k, -1).indices",
        "choose other experts",
    ),
    (
        "15.2",
        "def deepseek_choose(logits, bias, k, n_group, topk_group):\n"
        "    g = (logits.sigmoid() + bias).view(logits.shape[0], n_group, -1)\n"
        "    keep = g.topk(2, -1).values.sum(-1).topk(topk_group, -1).indices\n"
        "    mask = torch.zeros(logits.shape[0], n_group, dtype=torch.bool).scatter(1, keep, True)\n"
        "    return g.masked_fill(~mask[:, :, None], 0.0).flatten(1).topk(k, -1).indices",  # 0 where -inf belongs
        "choose other experts",
    ),
    (
        "15.2",
        "def deepseek_choose(logits, bias, k, n_group, topk_group):\n"
        "    g = (logits + bias).view(logits.shape[0], n_group, -1)\n"  # no sigmoid
        "    keep = g.topk(2, -1).values.sum(-1).topk(topk_group, -1).indices\n"
        "    mask = torch.zeros(logits.shape[0], n_group, dtype=torch.bool).scatter(1, keep, True)\n"
        "    return g.masked_fill(~mask[:, :, None], float('-inf')).flatten(1).topk(k, -1).indices",
        "choose other experts",
    ),
    ("15.2", "candidates_v3 = 32", "candidates_v3 is wrong"),  # one group
    (
        "15.3",
        "def grouped_forward(experts_module, x, weights, experts):\n"
        "    out = torch.zeros_like(x)\n"
        "    for j in range(experts.shape[1]):\n"  # per slot: an expert runs once for each slot it appears in
        "        for e in experts[:, j].unique().tolist():\n"
        "            rows = (experts[:, j] == e).nonzero().flatten()\n"
        "            out[rows] += weights[rows, j, None] * experts_module.expert(e, x[rows])\n"
        "    return out",
        "should run once for each of",
    ),
    (
        "15.3",
        "def grouped_forward(experts_module, x, weights, experts):\n"
        "    out = torch.zeros_like(x)\n"
        "    for e in experts.unique().tolist():\n"
        "        tokens, slots = (experts == e).nonzero(as_tuple=True)\n"
        "        out.index_add_(0, tokens, experts_module.expert(e, x[tokens] * weights[tokens, slots, None]))\n"
        "    return out",  # the weight scales the input, not the output
        "off by",
    ),
    (
        "15.4",
        "def aux_loss(router_logits, k):\n"
        "    n, e = router_logits.shape\n"
        "    p = router_logits.softmax(-1)\n"
        "    w, idx = p.topk(k, -1)\n"
        "    f = torch.bincount(idx.flatten(), minlength=e) / n\n"
        "    return e * (f * torch.zeros_like(p).scatter(1, idx, w).mean(0)).sum()",  # P_e over the chosen only
        "aux_loss is",
    ),
    (
        "15.4",
        "def aux_loss(router_logits, k):\n"
        "    n, e = router_logits.shape\n"
        "    p = router_logits.softmax(0)\n"  # softmax over the tokens
        "    f = torch.bincount(p.topk(k, -1).indices.flatten(), minlength=e) / n\n"
        "    return e * (f * p.mean(0)).sum()",
        "aux_loss is",
    ),
    (
        "15.4",
        "def aux_loss(router_logits, k):\n"
        "    n, e = router_logits.shape\n"
        "    p = router_logits.softmax(-1)\n"
        "    f = torch.bincount(p.topk(k, -1).indices.flatten(), minlength=e) / n\n"
        "    return e * (f * p.sum(0)).sum()",  # P_e summed, not averaged
        "aux_loss is",
    ),
    (
        "15.4",
        "def bias_step(bias, load, rate):\n    return bias + rate * torch.sign(load.float().median() - load)",
        "wrong bias for load [10, 2, 4, 0]",
    ),  # the median, not the mean
    (
        "15.4",
        "def bias_step(bias, load, rate):\n    return (bias + rate * torch.sign(load.float().mean() - load)).tolist()",
        "should return a tensor shaped like bias",
    ),
    ("15.4", "aux_collapsed = 15.0", "aux_collapsed is wrong"),
]


@pytest.mark.parametrize(("ex_id", "wrong", "message"), WRONG, ids=[f"{e}-{i}" for i, (e, _, _) in enumerate(WRONG)])
def test_wrong_answers_are_rejected(solved, ex_id, wrong, message):
    namespace, checks = solved
    namespace = dict(namespace)
    run_source(wrong, namespace)
    with pytest.raises(AssertionError, match=re.escape(message)):
        run_source(checks[ex_id], namespace)
