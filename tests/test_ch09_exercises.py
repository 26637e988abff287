"""Chapter 9's self-checks reject wrong answers, accept float32 and float64 ones, and leave the learner's names alone.

The solutions notebook's first cell and solution cells run in a plain namespace (no kernel: get_ipython() is None,
so the one-line display is not installed); then a wrong answer is written over a solution and the exercise's
self-check must fail with a one-line message that names the problem. The structure of the exercise notebooks
(identical checks, blank state, order) is checked by tests/test_exercises.py.
"""

import pytest
from exercise_harness import run_source as run
from test_exercises import CHECK, SOLUTION, first_line, load, sections


def ch09_parts() -> tuple[str, dict[str, list[str]], dict[str, str]]:
    """The first code cell, the solution cells of each exercise, and each exercise's self-check."""
    nb = load("ch09", "solutions")
    setup = next(c.source for c in nb.cells if c.cell_type == "code")
    solutions, checks = {}, {}
    for ex_id, cells in sections(nb).items():
        solutions[ex_id] = [c.source for c in cells if c.cell_type == "code" and SOLUTION.match(first_line(c))]
        (checks[ex_id],) = [c.source for c in cells if c.cell_type == "code" and CHECK.match(first_line(c))]
    return setup, solutions, checks


@pytest.fixture(scope="module")
def solved():
    setup, solutions, checks = ch09_parts()
    namespace: dict = {}
    run(setup, namespace)
    for ex_id in sorted(solutions):
        for source in solutions[ex_id]:
            run(source, namespace)
    return namespace, checks


def test_checks_pass_in_any_order_and_keep_the_learners_names(solved):
    namespace, checks = solved
    namespace = dict(namespace)
    before = dict(namespace)
    for ex_id in ["9.4", "9.2", "9.1", "9.3", "9.2", "9.4"]:
        assert f"自检 {ex_id} 通过" in run(checks[ex_id], namespace)
    added = namespace.keys() - before.keys()
    assert all(name.startswith("_self_check_9_") for name in added), f"a self-check defined {sorted(added)}"
    changed = [name for name in before if namespace[name] is not before[name]]
    assert not changed, f"a self-check overwrote {changed}"


# Right answers written differently: in float64, in float32 tensors, as floats where ints are not asked for.
RIGHT = [
    (
        "9.1",
        "def rope_rotate(x, position, theta_base=10_000.0):\n"
        "    x = x.double()  # all in float64\n"
        "    d = x.shape[-1]\n"
        "    theta = theta_base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)\n"
        "    a, b, angle = x[: d // 2], x[d // 2 :], position * theta\n"
        "    return torch.cat((a * angle.cos() - b * angle.sin(), b * angle.cos() + a * angle.sin()))",
    ),
    (
        "9.1",
        "def rope_rotate(x, position, theta_base=10_000.0):\n"
        "    d = x.shape[-1]\n"
        "    out = x.clone()\n"
        "    for i in range(d // 2):  # one pair at a time, with math.cos in float64\n"
        "        phi = position * theta_base ** (-2 * i / d)\n"
        "        a, b = float(x[i]), float(x[i + d // 2])\n"
        "        c, s = math.cos(phi), math.sin(phi)\n"
        "        out[i], out[i + d // 2] = a * c - b * s, b * c + a * s\n"
        "    return out\n"
        "def rope_score(q, k, m, n):\n"
        "    return (rope_rotate(q, m) * rope_rotate(k, n)).sum()  # a 0-d tensor, not a float",
    ),
    (
        "9.2",
        "def kv_cache_bytes(cfg, tokens, batch_size=1, bytes_per_value=2):\n"
        "    kv = getattr(cfg, 'n_kv_heads', cfg.n_heads)\n"
        "    return float(2 * cfg.n_layers * kv * cfg.head_dim * tokens * batch_size * bytes_per_value)\n"
        "def longest_context(cfg, budget_gib, batch_size=1, bytes_per_value=2):\n"
        "    return math.floor(budget_gib * 1024**3 / kv_cache_bytes(cfg, 1, batch_size, bytes_per_value))\n"
        "qwen3_cache_mib = torch.tensor(kv_cache_bytes(qwen3, 32_768), dtype=torch.float32) / 1024**2\n"
        "qwen3_cache_mib_if_mha = torch.tensor(2 * qwen3_cache_mib.item(), dtype=torch.float32)",
    ),
    (
        "9.4",
        "_f32 = torch.float32\n"
        "param_change = float(torch.tensor(n_swiglu - n_gelu, dtype=_f32) / torch.tensor(n_gelu, dtype=_f32))",
    ),
    (  # a float32 ratio minus 1: off by 2.2e-8 (a 1e-9 tolerance rejected it)
        "9.4",
        "param_change = torch.tensor(n_swiglu, dtype=torch.float32) / torch.tensor(n_gelu, dtype=torch.float32) - 1",
    ),
    (
        "9.1",
        "def rope_rotate(x, position, theta_base=10_000.0):\n"
        "    d = x.shape[-1]  # as complex numbers, in float32\n"
        "    theta = theta_base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)\n"
        "    z = torch.complex(x[: d // 2], x[d // 2 :]) * torch.polar(torch.ones(d // 2), position * theta)\n"
        "    return torch.cat((z.real, z.imag))",
    ),
    (
        "9.2",
        "def longest_context(cfg, budget_gib, batch_size=1, bytes_per_value=2):\n"
        "    per_token = kv_cache_bytes(cfg, 1, batch_size, bytes_per_value)\n"
        "    return int(budget_gib * 2**30) // per_token  # integer floor division\n"
        "qwen3_cache_mib = 2 * qwen3.n_layers * qwen3.n_kv_heads * qwen3.head_dim * 2 * 32_768 // 2**20  # an int",
    ),
    (
        "9.4",
        "def swiglu_hidden_dim(emb_dim, multiple_of=64):\n"
        "    return -(-8 * emb_dim // (3 * multiple_of)) * multiple_of  # integer ceiling",
    ),
]


@pytest.mark.parametrize(("ex_id", "right"), RIGHT, ids=[f"{r[0]}-{i}" for i, r in enumerate(RIGHT)])
def test_checks_accept_other_right_answers(solved, ex_id, right):
    namespace, checks = solved
    namespace = dict(namespace)
    run(right, namespace)
    assert f"自检 {ex_id} 通过" in run(checks[ex_id], namespace)


ROPE = (
    "def rope_rotate(x, position, theta_base=10_000.0):\n"
    "    d = x.shape[-1]\n"
    "    theta = {theta}\n"
    "    a, b, angle = {pairs}, position * theta\n"
    "    return torch.cat(({first}, {second}))"
)
RIGHT_ROPE = {
    "theta": "1.0 / theta_base ** (torch.arange(0, d, 2) / d)",
    "pairs": "x[: d // 2], x[d // 2 :]",
    "first": "a * angle.cos() - b * angle.sin()",
    "second": "b * angle.cos() + a * angle.sin()",
}
NOT_APPLY_ROPE = "differs from gpt_helpers.apply_rope"

WRONG = [
    # 9.1
    ("9.1", ROPE.format(**RIGHT_ROPE | {"pairs": "x[0::2], x[1::2]"}), NOT_APPLY_ROPE),  # adjacent pairs, half order
    (
        "9.1",
        ROPE.format(
            **RIGHT_ROPE | {"first": "a * angle.cos() + b * angle.sin()", "second": "b * angle.cos() - a * angle.sin()"}
        ),
        NOT_APPLY_ROPE,
    ),  # fmt: skip
    ("9.1", ROPE.format(**RIGHT_ROPE | {"theta": "1.0 / 10_000.0 ** (torch.arange(0, d, 2) / d)"}), NOT_APPLY_ROPE),
    ("9.1", ROPE.format(**RIGHT_ROPE | {"theta": "1.0 / theta_base ** (torch.arange(0, d // 2) / d)"}), NOT_APPLY_ROPE),
    ("9.1", "def rope_rotate(x, position, theta_base=10_000.0):\n    return x.view(-1, 2)", "same shape as x"),
    (
        "9.1",
        ROPE.format(**RIGHT_ROPE | {"theta": "1.0 / theta_base ** (torch.arange(2, d + 2, 2) / d)"}),
        NOT_APPLY_ROPE,
    ),
    (
        "9.1",
        "_solved_rope_rotate = rope_rotate\n"
        "def rope_rotate(x, position, theta_base=10_000.0):\n"
        "    return _solved_rope_rotate(x, position + 1, theta_base)  # off by one position",
        NOT_APPLY_ROPE,
    ),
    (
        "9.1",
        "_solved_rope_rotate = rope_rotate\n"
        "def rope_rotate(x, position, theta_base=10_000.0):\n"
        "    return _solved_rope_rotate(x, position, theta_base).round()  # rounded to whole numbers",
        NOT_APPLY_ROPE,
    ),
    (
        "9.1",
        "_solved_rope_rotate = rope_rotate\n"
        "def rope_rotate(x, position, theta_base=10_000.0):\n"
        "    x.copy_(_solved_rope_rotate(x, position, theta_base))  # rotated in place\n"
        "    return x",
        "changed its input x in place",
    ),
    ("9.1", "def rope_score(q, k, m, n):\n    return float(rope_rotate(q, n) @ rope_rotate(k, m))", "dot product"),
    ("9.1", "def rope_score(q, k, m, n):\n    return float(q @ k)", "rope_score should be the dot product"),
    ("9.1", "def absolute_score(q, k, m, n, pos_table):\n    return float(q @ k)", "absolute_score should add row m"),
    (
        "9.1",
        "def absolute_score(q, k, m, n, pos_table):\n    return float((q + pos_table[n]) @ (k + pos_table[m]))",
        "absolute_score should add row m",
    ),
    # 9.2
    (
        "9.2",
        "def kv_cache_bytes(cfg, tokens, batch_size=1, bytes_per_value=2):\n"
        "    return cfg.n_layers * batch_size * cfg.n_kv_heads * tokens * cfg.head_dim * bytes_per_value",
        "kv_cache_bytes is wrong for Qwen/Qwen3-0.6B",  # keys only, no values
    ),
    (
        "9.2",
        "def kv_cache_bytes(cfg, tokens, batch_size=1, bytes_per_value=2):\n"
        "    return 2 * cfg.n_layers * batch_size * cfg.n_heads * tokens * cfg.head_dim * bytes_per_value",
        "kv_cache_bytes is wrong for Qwen/Qwen3-0.6B",  # query heads instead of key/value heads
    ),
    (
        "9.2",
        "def kv_cache_bytes(cfg, tokens, batch_size=1, bytes_per_value=2):\n"
        "    kv = getattr(cfg, 'n_kv_heads', cfg.n_heads)\n"
        "    return 2 * cfg.n_layers * kv * tokens * cfg.head_dim * bytes_per_value",
        "(1000 tokens, batch 3, torch.float32)",  # batch forgotten
    ),
    (
        "9.2",
        "def longest_context(cfg, budget_gib, batch_size=1, bytes_per_value=2):\n"
        "    return round(budget_gib * 1024**3 / kv_cache_bytes(cfg, 1, batch_size, bytes_per_value))",
        "longest_context(0.3 GiB, batch 1) = 2809: that cache does not fit (round down)",
    ),
    (
        "9.2",
        "def longest_context(cfg, budget_gib, batch_size=1, bytes_per_value=2):\n"
        "    return math.ceil(budget_gib * 1024**3 / kv_cache_bytes(cfg, 1, batch_size, bytes_per_value)) - 1",
        "longest_context(0.875 GiB, batch 1) = 8191: 8192 tokens fit too",
    ),
    (
        "9.2",
        "def longest_context(cfg, budget_gib, batch_size=1, bytes_per_value=2):\n"
        "    return budget_gib * 1024**3 // kv_cache_bytes(cfg, 1, batch_size, bytes_per_value)",
        "longest_context should return an int, got float",
    ),
    ("9.2", "qwen3_cache_mib = qwen3_cache_mib / 1024", "qwen3_cache_mib is not the size"),  # GiB, not MiB
    ("9.2", "qwen3_cache_mib = kv_cache_bytes(qwen3, 32_768) / 1e6", "qwen3_cache_mib is not the size"),  # MB, not MiB
    (
        "9.2",
        "def longest_context(cfg, budget_gib, batch_size=1, bytes_per_value=2):\n"
        "    return int(budget_gib * 1e9 // kv_cache_bytes(cfg, 1, batch_size, bytes_per_value))",  # GB, not GiB
        "tokens fit too",
    ),
    (
        "9.2",
        "def longest_context(cfg, budget_gib, batch_size=1, bytes_per_value=2):\n"
        "    return int(budget_gib * 1024**3 // kv_cache_bytes(cfg, 1, batch_size, bytes_per_value)) + 1",  # off by one
        "that cache does not fit",
    ),
    ("9.2", "qwen3_cache_mib_if_mha = qwen3_cache_mib", "qwen3_cache_mib_if_mha is not that size"),
    ("9.2", "qwen3_cache_mib = None", "先算出 qwen3_cache_mib"),
    # 9.3
    (
        "9.3",
        "def norm_parameters(model):\n"
        "    return sum(count_parameters(m) for m in model.modules() if isinstance(m, LayerNorm))",
        "should count RMSNorm too",
    ),
    (
        "9.3",
        "_solved_with_rms_norm = with_rms_norm\n"
        "def with_rms_norm(model):\n"
        "    import copy\n"
        "    return _solved_with_rms_norm(copy.deepcopy(model))",
        "should change the model in place",
    ),
    (
        "9.3",
        "def with_rms_norm(model):\n"
        "    for parent in list(model.modules()):\n"
        "        for name, child in list(parent.named_children()):\n"
        "            if isinstance(child, LayerNorm):\n"
        "                setattr(parent, name, RMSNorm(child.scale.shape[0]))  # eps left at RMSNorm's default\n"
        "    return model",
        "keep the eps of the LayerNorms",
    ),
    (
        "9.3",
        "def with_rms_norm(model):\n"
        "    for block in model.trf_blocks:  # the final norm is forgotten\n"
        "        block.norm1 = RMSNorm(block.norm1.scale.shape[0], eps=block.norm1.eps)\n"
        "        block.norm2 = RMSNorm(block.norm2.scale.shape[0], eps=block.norm2.eps)\n"
        "    return model",
        "a LayerNorm is left",
    ),
    (
        "9.3",
        "def norm_param_formula(n_layers, emb_dim, kind):\n"
        "    return 2 * n_layers * {'layer': 2 * emb_dim, 'rms': emb_dim}[kind]",
        "layer formula wrong",
    ),
    (
        "9.3",
        "def norm_param_formula(n_layers, emb_dim, kind):\n    return (2 * n_layers + 1) * 2 * emb_dim",
        "rms formula",
    ),
    # 9.4
    (
        "9.4",
        "def swiglu_hidden_dim(emb_dim, multiple_of=64):\n"
        "    return multiple_of * math.ceil((8 * emb_dim // 3) / multiple_of)  # floor first, then round up",
        "swiglu_hidden_dim(100, 2) = 266 is below 8 * emb_dim / 3",
    ),
    (
        "9.4",
        "def swiglu_hidden_dim(emb_dim, multiple_of=64):\n"
        "    return multiple_of * math.ceil(round(8 * emb_dim / 3) / multiple_of)  # rounded first",
        "swiglu_hidden_dim(50, 1) = 133 is below 8 * emb_dim / 3",
    ),
    (
        "9.4",
        "def swiglu_hidden_dim(emb_dim, multiple_of=64):\n"
        "    return multiple_of * (8 * emb_dim // 3 // multiple_of + 1)",
        "swiglu_hidden_dim(768, 64) = 2112 is not the smallest multiple",
    ),
    (
        "9.4",
        "def swiglu_hidden_dim(emb_dim, multiple_of=64):\n"
        "    return multiple_of * math.ceil(8 * emb_dim / 3 / multiple_of) * 1.0",
        "is no int multiple",
    ),
    (
        "9.4",
        "class SwiGLUTransformerBlock(TransformerBlock):\n    pass",
        "block.ff should be SwiGLU",
    ),
    (
        "9.4",
        "def swiglu_gpt(cfg):\n    return GPTModel(cfg)",
        "every block should be SwiGLU",
    ),
    (
        "9.4",
        "with torch.device('meta'):\n"
        "    _tied = GPTConfig(tie_weights=True)\n"
        "    _n = count_parameters(GPTModel(_tied))\n"
        "    param_change = (count_parameters(swiglu_gpt(_tied)) - _n) / _n",
        "param_change is not",
    ),
    ("9.4", "param_change = 100 * param_change  # in percent", "param_change is not"),
    ("9.4", "param_change = -param_change  # the sign flipped", "param_change is not"),
    ("9.4", "param_change = round(param_change, 5)  # -0.00028: 1% off", "param_change is not"),
    (
        "9.4",
        "def swiglu_hidden_dim(emb_dim, multiple_of=64):\n"
        "    return multiple_of * (8 * emb_dim // (3 * multiple_of))  # rounded down",
        "is below 8 * emb_dim / 3",
    ),
    (
        "9.3",
        "def norm_param_formula(n_layers, emb_dim, kind):\n"
        "    return (2 * n_layers + 2) * {'layer': 2 * emb_dim, 'rms': emb_dim}[kind]  # one norm too many",
        "layer formula wrong",
    ),
    ("9.4", "param_change = None", "先算出 param_change"),
]


@pytest.mark.parametrize(("ex_id", "wrong", "message"), WRONG, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG)])
def test_checks_reject_wrong_answers(solved, ex_id, wrong, message):
    namespace, checks = solved
    namespace = dict(namespace)
    run(wrong, namespace)
    with pytest.raises(AssertionError) as failed:
        run(checks[ex_id], namespace)
    assert message in str(failed.value), f"{ex_id}: expected {message!r}, got {failed.value}"
    assert "\n" not in str(failed.value), "the self-check's message should be one line"


def test_intended_failures_show_one_line():
    """The blank notebook stores each self-check's error as its message alone, not a traceback of the check."""
    for cell in load("ch09", "exercises").cells:
        if cell.cell_type == "code" and CHECK.match(first_line(cell)):
            (error,) = [o for o in cell.outputs if o.output_type == "error"]
            assert error.ename in {"AssertionError", "NotImplementedError"}
            assert error.traceback == [f"{error.ename}: {error.evalue}"], error.traceback
            assert "\n" not in error.evalue
