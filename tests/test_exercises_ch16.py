"""Chapter 16's exercises: the notebooks' shape (the checks of tests/test_exercises.py, for ch16), and self-checks
that accept right float32 answers, reject wrong ones and leave the learner's names alone."""

import contextlib
import io
import re

import pytest
import test_exercises as shape_checks
from test_exercises import (  # noqa: F401  (collected here with this module's `chapter` fixture: ch16)
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

CHAPTER = "ch16"


@pytest.fixture
def chapter():
    return CHAPTER


def test_exercises_are_numbered_in_order():
    ids = [ex_id for ex_id, _ in cells_matching(load(CHAPTER, "exercises"), STATEMENT, "markdown")]
    assert ids == [f"16.{i}" for i in range(1, len(ids) + 1)] and len(ids) >= 4, ids


def test_shape_checks_come_from_the_shared_module():
    """The imported checks are tests/test_exercises.py's own (not copies that could drift)."""
    assert test_statements_are_identical is shape_checks.test_statements_are_identical


# ---- running the solutions and the self-checks in a plain namespace (no kernel) ------------------------------


def cells(kind: str) -> tuple[list[str], dict[str, str]]:
    """The code cells that are not self-checks, in order, and the self-check cells by exercise id."""
    code, checks = [], {}
    for cell in load(CHAPTER, kind).cells:
        if cell.cell_type == "code":
            match = CHECK.match(first_line(cell))
            if match:
                checks[match.group(1)] = cell.source
            else:
                code.append(cell.source)
    return code, checks


def run_source(source: str, namespace: dict) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<notebook cell>", "exec"), namespace)
    return out.getvalue()


@pytest.fixture(scope="module")
def solved():
    code, checks = cells("solutions")
    namespace: dict = {}
    for source in code:
        run_source(source, namespace)
    return namespace, checks


def test_checks_pass_in_any_order_and_keep_the_learners_names(solved):
    namespace, checks = solved
    namespace = dict(namespace)
    before = {name: value for name, value in namespace.items() if not name.startswith("_")}
    for ex_id in ["16.4", "16.2", "16.3", "16.1"]:
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


# right answers computed in float32 (or as float32 numbers): a learner who does so must pass
FLOAT32 = {
    "16.1": "gflop_per_token = torch.tensor(2 * active_matrix_params(DEEPSEEK_V3_CONFIG) / 1e9, dtype=torch.float32)",
    "16.2": """
_right_prefill = prefill_flops
def prefill_flops(matrix_params, layers, heads, qk_dim, v_dim, n_tokens, causal=True):
    return torch.tensor(float(_right_prefill(matrix_params, layers, heads, qk_dim, v_dim, n_tokens, causal)),
                        dtype=torch.float32).item()
""",
    "16.3": """
_right_intensity = decode_intensity
def decode_intensity(batch, context):
    return torch.tensor(_right_intensity(batch, context), dtype=torch.float32)
limit_1024 = torch.tensor(limit_1024, dtype=torch.float32)
""",
    "16.4": """
def expected_experts(n_experts, top_k, n_tokens):
    return n_experts * (1 - (1 - torch.tensor(top_k / n_experts, dtype=torch.float32)) ** n_tokens)
""",
}


# right answers written another way, each must pass its self-check
OTHER_RIGHT = [
    (
        "16.1",
        "_right = active_matrix_params\n"
        "def active_matrix_params(config):\n"
        "    return float(_right(config))",  # a float count
    ),
    (
        "16.2",
        "def prefill_flops(matrix_params, layers, heads, qk_dim, v_dim, n_tokens, causal=True):\n"
        "    keys = sum(j + 1 for j in range(n_tokens)) if causal else n_tokens**2\n"
        "    return 2 * n_tokens * matrix_params + 2 * keys * layers * heads * (qk_dim + v_dim)",
    ),
    (
        "16.3",
        "def bound(intensity, peak_flops, bandwidth):\n"
        "    return ('compute', 'memory')[intensity * bandwidth < peak_flops]",
    ),
    (
        "16.4",
        "def expected_experts(n_experts, top_k, n_tokens):\n"
        "    return n_experts - n_experts * ((n_experts - top_k) / n_experts) ** n_tokens",
    ),
    ("16.4", "half_batch = int(math.ceil(math.log(0.5) / math.log(1 - 8 / 128)))"),
    # NumPy scalars and one-element tensors are numbers too
    (
        "16.1",
        "import numpy as np\n_right = active_matrix_params\n"
        "def active_matrix_params(config):\n    return np.int64(_right(config))",
    ),
    (
        "16.1",
        "_right = active_matrix_params\ndef active_matrix_params(config):\n    return torch.tensor(_right(config))",
    ),
    ("16.1", "gflop_per_token = 73.25"),  # the figure rounded to two decimals
    ("16.2", "import numpy as np\ncrossover = np.int64(crossover)"),
    ("16.4", "import numpy as np\nhalf_batch = np.int64(half_batch)"),
    (
        "16.4",  # exact by counting: an expert escapes a token's k-subset in C(E - 1, k) of C(E, k) cases
        "def expected_experts(n_experts, top_k, n_tokens):\n"
        "    return n_experts * (1 - (math.comb(n_experts - 1, top_k) / math.comb(n_experts, top_k)) ** n_tokens)",
    ),
]


@pytest.mark.parametrize(("ex_id", "right"), OTHER_RIGHT, ids=[f"{e}-{i}" for i, (e, _) in enumerate(OTHER_RIGHT)])
def test_right_answers_written_otherwise_pass(solved, ex_id, right):
    namespace, checks = solved
    namespace = dict(namespace)
    run_source(right, namespace)
    assert f"自检 {ex_id} 通过" in run_source(checks[ex_id], namespace)


@pytest.mark.parametrize("ex_id", sorted(FLOAT32))
def test_float32_answers_pass(solved, ex_id):
    namespace, checks = solved
    namespace = dict(namespace)
    run_source(FLOAT32[ex_id], namespace)
    assert f"自检 {ex_id} 通过" in run_source(checks[ex_id], namespace)


_WRAP_16_1 = "_right = active_matrix_params\ndef active_matrix_params(config):\n    return _right(config) {}"
_WRAP_16_2 = (
    "_right = prefill_flops\n"
    "def prefill_flops(matrix_params, layers, heads, qk_dim, v_dim, n_tokens, causal=True):\n"
    "    return {}"
)
_WRAP_16_3 = "_right = decode_intensity\ndef decode_intensity(batch, context):\n    return {}"

# (exercise, code that turns a right answer into a wrong one, the message the self-check must give)
WRONG = [
    # 16.1: the token embedding counted as compute
    ("16.1", _WRAP_16_1.format("+ config['vocab_size'] * config['hidden_size']"), "the token embedding is looked up"),
    # the shared expert forgotten
    (
        "16.1",
        _WRAP_16_1.format(
            "- 3 * config['hidden_size'] * config['moe_intermediate_size'] * config['n_shared_experts']"
            " * (config['num_hidden_layers'] - config['first_k_dense_replace'])"
        ),
        "every MoE layer also runs its shared experts",
    ),
    ("16.1", _WRAP_16_1.format("* 2"), "FLOPs, not parameters"),  # off by a factor of 2
    # the router forgotten
    (
        "16.1",
        _WRAP_16_1.format(
            "- config['hidden_size'] * config['n_routed_experts']"
            " * (config['num_hidden_layers'] - config['first_k_dense_replace'])"
        ),
        "wrong for the published config",
    ),
    # every routed expert counted, not the chosen ones
    (
        "16.1",
        _WRAP_16_1.format(
            "+ 3 * config['hidden_size'] * config['moe_intermediate_size']"
            " * (config['n_routed_experts'] - config['num_experts_per_tok'])"
            " * (config['num_hidden_layers'] - config['first_k_dense_replace'])"
        ),
        "wrong for the published config",
    ),
    # the output head forgotten
    ("16.1", _WRAP_16_1.format("- config['vocab_size'] * config['hidden_size']"), "wrong for the published config"),
    # the dense layers treated as MoE layers
    (
        "16.1",
        "_right = active_matrix_params\n"
        "def active_matrix_params(config):\n"
        "    return _right(config | {'first_k_dense_replace': 0})",
        "wrong for the published config",
    ),
    # the number of shared experts ignored (always one)
    (
        "16.1",
        "_right = active_matrix_params\n"
        "def active_matrix_params(config):\n"
        "    return _right(config | {'n_shared_experts': 1})",
        "wrong for 2 shared experts",
    ),
    ("16.1", "gflop_per_token = active_matrix_params(DEEPSEEK_V3_CONFIG) / 1e9", "gflop_per_token is wrong"),
    ("16.1", "gflop_per_token = 2 * 37e9 / 1e9", "gflop_per_token is wrong"),  # the model card's figure
    ("16.1", "gflop_per_token = None", "part 2 is missing"),
    # 16.2
    (
        "16.2",
        _WRAP_16_2.format(
            "_right(matrix_params, layers, heads, qk_dim, v_dim, n_tokens, causal) - matrix_params * n_tokens"
        ),
        "prefill_flops(1000, 2, 4, 16, 16, 24, True) 不对",  # one FLOP per weight
    ),
    ("16.2", _WRAP_16_2.format("2 * matrix_params * n_tokens"), "is wrong"),  # no attention
    (
        "16.2",
        _WRAP_16_2.format("_right(matrix_params, layers, heads, qk_dim, v_dim, n_tokens, not causal)"),
        "is wrong",  # causal and full swapped
    ),
    (
        "16.2",
        _WRAP_16_2.format(
            "2 * matrix_params * n_tokens + layers * 2 * heads * (qk_dim + v_dim) * "
            "(n_tokens**2 // 2 if causal else n_tokens**2)"
        ),
        "is wrong",  # T^2 / 2 instead of T (T + 1) / 2
    ),
    ("16.2", _WRAP_16_2.format("_right(matrix_params, layers, heads, qk_dim, qk_dim, n_tokens, causal)"), "is wrong"),
    ("16.2", _WRAP_16_2.format("_right(matrix_params, layers, heads, qk_dim, v_dim, n_tokens, True)"), "is wrong"),
    ("16.2", "crossover = crossover + 1", "not the shortest"),
    ("16.2", "crossover = crossover - 1", "is too short"),
    ("16.2", "crossover = float(crossover)", "should be an int"),
    ("16.2", "crossover = None", "part 2 is missing"),
    ("16.2", "crossover = 1024", "is too short"),
    ("16.2", "crossover = 6703", "count the keys causally"),  # the full T x T square, not the causal count
    ("16.2", "crossover = 0", "should be a positive int"),
    # the token's own key left out of the causal count: j keys, not j + 1
    (
        "16.2",
        _WRAP_16_2.format(
            "_right(matrix_params, layers, heads, qk_dim, v_dim, n_tokens, causal)"
            " - (layers * 2 * heads * (qk_dim + v_dim) * n_tokens if causal else 0)"
        ),
        "prefill_flops(1000, 2, 4, 16, 16, 24, True) 不对",
    ),
    ("16.2", _WRAP_16_2.format("None"), "prefill_flops(1000, 2, 4, 16, 16, 24, True) 不对"),  # no return
    # 16.3
    (
        "16.3",
        _WRAP_16_3.format("batch * forward_flops(_matrix, _gpt2, 1, context) / _weight_bytes"),
        "decode_intensity(1, 1024) 不对",  # the KV cache forgotten
    ),
    (
        "16.3",
        _WRAP_16_3.format(
            "batch * forward_flops(_matrix, _gpt2, 1, context) / (_weight_bytes + context * _kv_bytes_per_position)"
        ),
        "decode_intensity(8, 100) 不对",  # the cache read once for all sequences
    ),
    ("16.3", _WRAP_16_3.format("_right(batch, context) / 2"), "decode_intensity(1, 0) 不对"),  # one FLOP per weight
    (
        "16.3",
        _WRAP_16_3.format("batch * 2 * _matrix / (_weight_bytes + batch * context * _kv_bytes_per_position)"),
        "decode_intensity(1, 0) 不对",  # attention forgotten (even the token's own key)
    ),
    (
        "16.3",
        "def bound(intensity, peak_flops, bandwidth):\n"
        "    return 'compute' if intensity < peak_flops / bandwidth else 'memory'",
        "should be 'memory'",
    ),
    (
        "16.3",
        "def bound(intensity, peak_flops, bandwidth):\n"
        "    return 'memory' if intensity < bandwidth / peak_flops else 'compute'",
        "should be 'memory'",
    ),
    ("16.3", "def bound(intensity, peak_flops, bandwidth):\n    return 'memory'", "should be 'compute'"),
    ("16.3", "limit_1024 = 2 * _matrix / (1024 * _kv_bytes_per_position)", "limit_1024 is wrong"),
    ("16.3", "limit_1024 = decode_intensity(64, 1024)", "limit_1024 is wrong"),
    ("16.3", "limit_1024 = None", "part 3 is missing"),
    ("16.3", _WRAP_16_3.format("None"), "should be a number, got NoneType"),  # no return
    (
        "16.3",
        _WRAP_16_3.format(
            "batch * forward_flops(_matrix, _gpt2, 1, context)"
            " / (4 * 124_439_808 + batch * context * _kv_bytes_per_position)"
        ),
        "decode_intensity(1, 0) 不对",  # the position table counted as read
    ),
    (
        "16.3",
        _WRAP_16_3.format(
            "batch * forward_flops(_matrix, _gpt2, 1, max(context - 1, 0))"
            " / (_weight_bytes + batch * context * _kv_bytes_per_position)"
        ),
        "decode_intensity(1, 1024) 不对",  # the new token's own key left out
    ),
    (
        "16.3",
        "def bound(intensity, peak_flops, bandwidth):\n"
        "    return 'Memory' if intensity < peak_flops / bandwidth else 'Compute'",
        "should be 'memory', got 'Memory'",
    ),
    # 16.4
    (
        "16.4",
        "def expected_experts(n_experts, top_k, n_tokens):\n    return min(n_experts, top_k * n_tokens)",
        "should be",  # no overlap between tokens
    ),
    (
        "16.4",
        "def expected_experts(n_experts, top_k, n_tokens):\n"
        "    return n_experts * (1 - (1 - 1 / n_experts) ** (top_k * n_tokens))",
        "should be",  # the k choices of a token drawn with replacement
    ),
    (
        "16.4",
        "def expected_experts(n_experts, top_k, n_tokens):\n"
        "    return n_experts * (1 - (top_k / n_experts) ** n_tokens)",
        "expected_experts(128, 8, 1) 不对",  # right on the 4-expert example by chance, wrong elsewhere
    ),
    ("16.4", "half_batch = half_batch + 1", "not the smallest"),
    ("16.4", "half_batch = half_batch - 1", "is too small"),
    ("16.4", "half_batch = 8", "is too small"),  # k * B = 64 without overlap
    ("16.4", "half_batch = 12", "not the smallest"),  # with replacement
    ("16.4", "half_batch = 11.0", "should be an int"),
    ("16.4", "half_batch = None", "part 2 is missing"),
    (
        "16.4",
        "def expected_experts(n_experts, top_k, n_tokens):\n    return 1 - (1 - top_k / n_experts) ** n_tokens",
        "should be 3.0",  # the share of the experts, not their number
    ),
    ("16.4", "def expected_experts(n_experts, top_k, n_tokens):\n    pass", "should be a number, got NoneType"),
    ("16.1", "gflop_per_token = active_matrix_params(DEEPSEEK_V3_CONFIG) / 1e9", "2 FLOPs"),
    ("16.1", "gflop_per_token = 2 * active_matrix_params(DEEPSEEK_V3_CONFIG)", "billions of FLOPs"),
    ("16.1", "gflop_per_token = 73.2", "gflop_per_token is wrong"),  # rounded too far (73.25 is right)
    ("16.1", "gflop_per_token = 2 * 37.55", "gflop_per_token is wrong"),  # the embedding counted
    ("16.1", "gflop_per_token = '73.25'", "should be a number, got str"),
]


@pytest.mark.parametrize(("ex_id", "wrong", "message"), WRONG, ids=[f"{e}-{i}" for i, (e, _, _) in enumerate(WRONG)])
def test_wrong_answers_are_rejected(solved, ex_id, wrong, message):
    namespace, checks = solved
    namespace = dict(namespace)
    run_source(wrong, namespace)
    with pytest.raises(AssertionError, match=re.escape(message)):
        run_source(checks[ex_id], namespace)


def test_statement_figures_are_gpt2s():
    """The GPT-2 figures the statements of 16.2 and 16.3 give are the counts of the course's formula."""
    from gpt_helpers import parameter_formula
    from gpt_helpers.checkpoints.hf import HF_CONFIGS

    counts = parameter_formula(HF_CONFIGS["openai-community/gpt2"])
    assert counts["active_matrix"] == 123_532_032
    assert counts["total"] == 124_439_808 and counts["embedding"] == 1024 * 768
    statements = dict(cells_matching(load(CHAPTER, "exercises"), STATEMENT, "markdown"))
    assert "123,532,032" in statements["16.2"] and "123,532,032" in statements["16.3"]
    assert "124,439,808 − 1024 · 768" in statements["16.3"]
