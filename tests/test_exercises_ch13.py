"""Chapter 13's exercises: the notebooks' shape (the checks of tests/test_exercises.py, for ch13), and self-checks
that accept right float32 answers, reject wrong ones and leave the learner's names alone."""

import re

import pytest
import test_exercises as shape_checks
from exercise_harness import code_and_checks, run_source, solve
from test_exercises import (  # noqa: F401  (collected here with this module's `chapter` fixture: ch13)
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

CHAPTER = "ch13"


@pytest.fixture
def chapter():
    return CHAPTER


def test_exercises_are_numbered_in_order():
    ids = [ex_id for ex_id, _ in cells_matching(load(CHAPTER, "exercises"), STATEMENT, "markdown")]
    assert ids == [f"13.{i}" for i in range(1, len(ids) + 1)] and len(ids) >= 4, ids


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
    for ex_id in ["13.4", "13.2", "13.3", "13.1"]:
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
    "13.1": """
S_by_hand = delta_step(torch.tensor([[2.0, 0.0], [1.0, 1.0]]), torch.tensor([0.6, 0.8]), torch.tensor([1.0, -1.0]), 0.5)
S_by_hand = S_by_hand.tolist()  # float32 numbers
shrink = torch.tensor(0.5, dtype=torch.float32)
""",
    "13.2": "ratio_128k = torch.tensor(ratio_128k, dtype=torch.float32).item()",
    "13.3": """
def half_life(alpha):
    return float(torch.log(torch.tensor(0.5)) / torch.log(torch.tensor(float(alpha))))

head_half_life = float(torch.log(torch.tensor(0.5)) / torch.log(decay(torch.tensor(math.log(4.0)), torch.tensor(1.0),
                                                                      torch.tensor(-3.0))))
kept_after_100 = torch.tensor(0.99) ** 100
""",
    "13.4": """
def conv_step(past, x_t, weight):
    window = torch.cat((past, x_t[:, :, None]), dim=-1).float()
    return F.silu(torch.einsum("bck,ck->bc", window, weight.float())), window[:, :, 1:]
""",
}


# right answers written another way (still float32 where it matters), each must pass its self-check
OTHER_RIGHT = [
    ("13.2", "crossover = -(-_state // _per_position)"),  # ceiling division of ints
    ("13.2", "crossover = int(torch.tensor(_state / _per_position).ceil())"),
    ("13.3", "kept_after_100 = float(torch.tensor(0.99, dtype=torch.float32).pow(100))"),
    (
        "13.4",
        "def conv_step(past, x_t, weight):\n"
        "    y = F.silu((past * weight[:, :-1]).sum(-1) + x_t * weight[:, -1])\n"
        "    return y, torch.cat((past[:, :, 1:], x_t[:, :, None]), dim=-1)",
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
    ("13.1", "def delta_step(S, k, v, beta):\n    return S + beta * torch.outer(v, k)", "differs from the delta rule"),
    ("13.1", "def delta_step(S, k, v, beta):\n    return S + beta * torch.outer(S @ k - v, k)", "differs from"),
    ("13.1", "def delta_step(S, k, v, beta):\n    return S - torch.outer(S @ k - v, k)", "differs from"),
    ("13.1", "def delta_step(S, k, v, beta):\n    return (1 - beta) * S + beta * torch.outer(v, k)", "differs from"),
    ("13.1", "def delta_step(S, k, v, beta):\n    S -= beta * torch.outer(S @ k - v, k)\n    return S", "must not"),
    ("13.1", "S_by_hand = [[1.94, -0.08], [0.28, 0.4]]", "entries of S_by_hand are wrong: [(1, 1)]"),
    ("13.1", "S_by_hand = [[1.94, 0.08], [0.28, 0.04]]", "entries of S_by_hand are wrong: [(0, 1)]"),
    ("13.1", "S_by_hand = None", "parts 2 and 3 are missing"),
    ("13.1", "shrink = 0.5**2", "the error shrinks by 0.5000"),
    ("13.1", "shrink = 0.51", "the error shrinks by"),
    (
        "13.2",
        "_right = qwen3_next_cache_bytes\n"
        "def qwen3_next_cache_bytes(config, positions, batch_size=1, value_bytes=2, state_bytes=4):\n"
        "    return _right(config, positions, batch_size, value_bytes, state_bytes=2)",  # the state in bfloat16
        "wrong for 4096 positions, batch 1 (the published config)",
    ),
    (
        "13.2",
        "_right = qwen3_next_cache_bytes\n"
        "def qwen3_next_cache_bytes(config, positions, batch_size=1, value_bytes=2, state_bytes=4):\n"
        "    return _right(config, positions, 1, value_bytes, state_bytes)",  # batch_size ignored
        "batch 3",
    ),
    (
        "13.2",
        "_right = qwen3_next_cache_bytes\n"
        "def qwen3_next_cache_bytes(config, positions, batch_size=1, value_bytes=2, state_bytes=4):\n"
        "    k = config['linear_conv_kernel_dim']\n"  # without the convolution's past inputs
        "    return _right(config | {'linear_conv_kernel_dim': 1}, positions, batch_size, value_bytes, state_bytes)",
        "wrong for 4096",
    ),
    (
        "13.2",
        "_right = qwen3_next_cache_bytes\n"
        "def qwen3_next_cache_bytes(config, positions, batch_size=1, value_bytes=2, state_bytes=4):\n"
        "    return _right(config | {'full_attention_interval': 1}, positions, batch_size, value_bytes, state_bytes)",
        "wrong for 4096",  # every layer counted as full attention
    ),
    (
        "13.2",
        "_right = qwen3_next_cache_bytes\n"
        "def qwen3_next_cache_bytes(config, positions, batch_size=1, value_bytes=2, state_bytes=4):\n"
        "    return _right(config, positions, batch_size, 2, state_bytes)",  # value_bytes ignored
        "value_bytes=4",
    ),
    ("13.2", "crossover = crossover - 1", "fewest positions"),
    ("13.2", "crossover = crossover + 1", "fewest positions"),
    ("13.2", "crossover = float(crossover)", "crossover should be an int"),
    ("13.2", "crossover = True", "crossover should be an int"),
    ("13.2", "crossover = round(_state / _per_position / 4)", "fewest positions"),  # a quarter of the layers
    ("13.2", "ratio_128k = 1 / ratio_128k", "ratio_128k is wrong"),  # the ratio upside down
    ("13.2", "ratio_128k = 4.0", "ratio_128k is wrong"),
    ("13.2", "ratio_128k = None", "parts 2 and 3 are missing"),
    (
        "13.3",
        "def decay(A_log, dt_bias, a):\n    return torch.exp(A_log.exp() * F.softplus(a + dt_bias))",
        "alpha must lie in (0, 1]",
    ),
    (
        "13.3",
        "def decay(A_log, dt_bias, a):\n    return torch.exp(-A_log.exp() * torch.exp(a + dt_bias))",
        "alpha must lie in (0, 1]",  # exp instead of softplus: large steps underflow to exactly 0
    ),
    (
        "13.3",
        "def decay(A_log, dt_bias, a):\n    return torch.exp(-A_log * F.softplus(a + dt_bias))",
        "alpha must lie in (0, 1]",  # A_log used as A: a negative A_log makes alpha > 1
    ),
    (
        "13.3",
        "def decay(A_log, dt_bias, a):\n    return torch.exp(-A_log.exp() * torch.relu(a + dt_bias))",
        "differs from the formula",  # relu instead of softplus: alpha = 1 for every negative step
    ),
    ("13.3", "def half_life(alpha):\n    return 1 / (1 - alpha)", "half_life(0.5) is wrong"),
    ("13.3", "def half_life(alpha):\n    return math.log(2) / math.log(alpha)", "half_life(0.5) is wrong"),
    (
        "13.3",
        "head_half_life = half_life(float(decay(torch.tensor(4.0), torch.tensor(1.0), torch.tensor(-3.0))))",
        "head",
    ),
    (
        "13.3",
        "head_half_life = half_life(float(decay(torch.tensor(math.log(4.0)), torch.tensor(0.0), torch.tensor(-3.0))))",
        "head",
    ),
    ("13.3", "kept_after_100 = 0.99 * 100", "kept_after_100 is wrong"),
    ("13.3", "kept_after_100 = 0.99**99", "kept_after_100 is wrong"),
    ("13.3", "kept_after_100 = None", "parts 3 and 4 are missing"),
    (
        "13.4",
        "def conv_step(past, x_t, weight):\n"
        "    window = torch.cat((past, x_t[:, :, None]), dim=-1)\n"
        "    return (window * weight).sum(-1), window[:, :, 1:]",  # no SiLU
        "output at position 0 off by",
    ),
    (
        "13.4",
        "def conv_step(past, x_t, weight):\n"
        "    window = torch.cat((past, x_t[:, :, None]), dim=-1)\n"
        "    return F.silu((window * weight.flip(-1)).sum(-1)), window[:, :, 1:]",  # the taps reversed
        "off by",
    ),
    (
        "13.4",
        "def conv_step(past, x_t, weight):\n"
        "    window = torch.cat((past, x_t[:, :, None]), dim=-1)\n"
        "    return F.silu((window * weight).sum(-1)), window[:, :, :-1]",  # keeps the oldest, drops the newest
        "output at position 1 off by",
    ),
    (
        "13.4",
        "def conv_step(past, x_t, weight):\n"
        "    window = torch.cat((past, x_t[:, :, None]), dim=-1)\n"
        "    past.copy_(window[:, :, 1:])\n"
        "    return F.silu((window * weight).sum(-1)), past",
        "must not change the past",
    ),
    (
        "13.4",
        "def conv_step(past, x_t, weight):\n"
        "    window = torch.cat((x_t[:, :, None], past), dim=-1)\n"  # the newest input first
        "    return F.silu((window * weight).sum(-1)), window[:, :, :-1]",
        "output at position 0 off by",
    ),
    (
        "13.4",
        "def conv_step(past, x_t, weight):\n"
        "    window = torch.cat((past, x_t[:, :, None]), dim=-1)\n"
        "    return F.silu((window * weight).sum(-1)), window[:, :, 1:] * 0",  # forgets the past
        "output at position 1 off by",
    ),
]


@pytest.mark.parametrize(("ex_id", "wrong", "message"), WRONG, ids=[f"{e}-{i}" for i, (e, _, _) in enumerate(WRONG)])
def test_wrong_answers_are_rejected(solved, ex_id, wrong, message):
    namespace, checks = solved
    namespace = dict(namespace)
    run_source(wrong, namespace)
    with pytest.raises(AssertionError, match=re.escape(message)):
        run_source(checks[ex_id], namespace)
