"""Chapter 11's exercises: notebook shape, and self-checks that reject wrong answers and accept float32 ones.

The shape checks are tests/test_exercises.py's, applied to ch11. The solutions notebook's code runs in a plain
namespace (no kernel: get_ipython() is None), then each self-check; a wrong answer written over the solution
must make the self-check fail with its own one-line message.
"""

import re

import pytest
import test_exercises as base  # the shared helpers; its tests are not collected again through this module
from exercise_harness import run_source as run
from exercise_harness import solve

CHAPTER = "ch11"
MIN_EXERCISES = 4  # the cache formula, absorbing W_UK / W_UV by hand, YaRN's ramp and temperature, R_t^T R_s


def test_exercises_are_numbered_in_order():
    ids = [ex_id for ex_id, _ in base.cells_matching(base.load(CHAPTER, "exercises"), base.STATEMENT, "markdown")]
    assert ids == [f"11.{i}" for i in range(1, len(ids) + 1)], ids
    assert len(ids) >= MIN_EXERCISES


def test_statements_and_checks_are_identical():
    for pattern, kind in [(base.STATEMENT, "markdown"), (base.CHECK, "code")]:
        exercises = base.cells_matching(base.load(CHAPTER, "exercises"), pattern, kind)
        solutions = base.cells_matching(base.load(CHAPTER, "solutions"), pattern, kind)
        assert exercises == solutions


@pytest.mark.parametrize("kind", ["exercises", "solutions"])
def test_every_exercise_has_one_check_after_its_code(kind):
    nb = base.load(CHAPTER, kind)
    code_pattern = base.LEARNER if kind == "exercises" else base.SOLUTION
    assert len(base.cells_matching(nb, base.CHECK, "code")) == len(base.sections(nb))
    for ex_id, cells in base.sections(nb).items():
        code_cells = [c for c in cells if c.cell_type == "code"]
        checks = [i for i, c in enumerate(code_cells) if base.CHECK.match(base.first_line(c))]
        assert len(checks) == 1, f"{kind}: exercise {ex_id} needs exactly one self-check"
        assert base.CHECK.match(base.first_line(code_cells[checks[0]])).group(1) == ex_id
        own = [c for c in code_cells[: checks[0]] if code_pattern.match(base.first_line(c))]
        assert own and all(code_pattern.match(base.first_line(c)).group(1) == ex_id for c in own)
        assert "check(" in code_cells[checks[0]].source, f"self-check {ex_id} checks nothing"


def test_learner_cells_are_blank():
    for ex_id, cells in base.sections(base.load(CHAPTER, "exercises")).items():
        (learner,) = [c for c in cells if c.cell_type == "code" and base.LEARNER.match(base.first_line(c))]
        assert any(p in learner.source for p in base.PLACEHOLDERS), f"exercise {ex_id}: no placeholder"


def test_blank_checks_fail_with_one_line_and_nothing_else_fails():
    for cell in base.load(CHAPTER, "exercises").cells:
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if base.CHECK.match(base.first_line(cell)):
            (error,) = errors  # the blank notebook's self-check failed ...
            assert "raises-exception" in base.tags(cell)
            assert error.ename == "SelfCheckError"  # ... with its own message, shown as one line
            assert error.traceback == [f"SelfCheckError: {error.evalue}"], error.traceback
        else:
            assert not errors and "raises-exception" not in base.tags(cell), base.first_line(cell)


def test_solutions_store_no_errors_and_run_in_order():
    for kind in ["exercises", "solutions"]:
        nb = base.load(CHAPTER, kind)
        counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
        assert counts == list(range(1, len(counts) + 1)), counts
    for cell in base.load(CHAPTER, "solutions").cells:
        if cell.cell_type == "code":
            assert not [o for o in cell.outputs if o.output_type == "error"], base.first_line(cell)
            assert "raises-exception" not in base.tags(cell)


def test_no_synced_cells():
    for kind in ["exercises", "solutions"]:
        for cell in base.load(CHAPTER, kind).cells:
            assert not (cell.cell_type == "code" and base.first_line(cell).startswith("# Same code as gpt_helpers/"))


# ---- the self-checks themselves


@pytest.fixture(scope="module")
def solved():
    """The namespace after every code cell of the solutions notebook but the self-checks, and the self-checks."""
    return solve(CHAPTER)


def test_checks_pass_in_any_order_and_keep_the_learners_names(solved):
    namespace, checks = solved
    namespace = dict(namespace)
    before = {name: value for name, value in namespace.items() if not name.startswith("_")}
    for ex_id in sorted(checks, reverse=True):
        assert f"自检 {ex_id} 通过" in run(checks[ex_id], namespace)
    after = {name: value for name, value in namespace.items() if not name.startswith("_")}
    assert after.keys() == before.keys(), f"a self-check defined {sorted(after.keys() - before.keys())}"
    assert not [name for name in before if after[name] is not before[name]], "a self-check overwrote a name"


# other right answers: computed in float32, or written another way
RIGHT = {
    "11.1": """
v3_kib_per_token = (torch.tensor(mla_cache_bytes(DEEPSEEK_V3_CONFIG, 1), dtype=torch.float32) / 1024).item()
v3_ratio = (torch.tensor(mha_cache_bytes(DEEPSEEK_V3_CONFIG, 1), dtype=torch.float32)
            / torch.tensor(mla_cache_bytes(DEEPSEEK_V3_CONFIG, 1), dtype=torch.float32)).item()
""",
    "11.2": """
def absorbed_scores(att, q_nope, q_rope, entries):
    # one matmul: (W_UK^T q_nope, q_rope) against the cached (latent, RoPE key) as they are
    b, h, t, _ = q_nope.shape
    w_uk = att.W_key_up.weight.reshape(h, att.qk_nope_head_dim, att.kv_lora_rank)
    q = torch.cat([torch.matmul(q_nope.unsqueeze(-2), w_uk.unsqueeze(1)).squeeze(-2), q_rope], dim=-1)
    return att.softmax_scale * torch.matmul(q, entries.transpose(1, 2).unsqueeze(1))
""",
    "11.3": """
def yarn_temperature(factor, coefficient=1.0):
    if factor <= 1:
        return 1.0
    return float(0.1 * coefficient * torch.log(torch.tensor(float(factor), dtype=torch.float32)) + 1)
v3_softmax_scale = float(torch.tensor(192.0).rsqrt() * torch.tensor(yarn_temperature(40)) ** 2)
""",
    "11.4": """
def rotation_matrix(head_dim, position, theta_base=10_000.0):
    # float32, one pair at a time
    R = torch.zeros(head_dim, head_dim)
    half = head_dim // 2
    for i, f in enumerate(rope_frequencies(head_dim, theta_base).tolist()):
        c, s = math.cos(position * f), math.sin(position * f)
        R[i, i], R[i, i + half], R[i + half, i], R[i + half, i + half] = c, -s, s, c
    return R
def between(head_dim, t, s):
    return rotation_matrix(head_dim, s - t)
""",
}


@pytest.mark.parametrize("ex_id", sorted(RIGHT))
def test_checks_accept_other_right_answers(solved, ex_id):
    namespace, checks = solved
    namespace = dict(namespace)
    run(RIGHT[ex_id], namespace)
    assert f"自检 {ex_id} 通过" in run(checks[ex_id], namespace)


MLA_ARGS = "config, tokens, batch_size=1, bytes_per_value=2"
TEMPERATURE = "def yarn_temperature(factor, coefficient=1.0):"
WRONG = [
    ("11.1", "v3_kib_per_token = None", "compute both"),
    (
        "11.1",
        f"def mla_cache_bytes({MLA_ARGS}):\n"
        "    return config['num_hidden_layers'] * batch_size * tokens * config['kv_lora_rank'] * bytes_per_value",
        "mla_cache_bytes is wrong for DeepSeek-V3",
    ),
    (
        "11.1",
        f"_right = mla_cache_bytes\ndef mla_cache_bytes({MLA_ARGS}):\n"
        "    return config['num_attention_heads'] * _right(config, tokens, batch_size, bytes_per_value)",
        "mla_cache_bytes is wrong",
    ),
    (
        "11.1",
        f"_right = mla_cache_bytes\ndef mla_cache_bytes({MLA_ARGS}):\n"
        "    return _right(config, tokens, 1, bytes_per_value)",
        "batch 3",
    ),
    (
        "11.1",
        f"def mha_cache_bytes({MLA_ARGS}):\n"
        "    per = config['num_attention_heads'] * (config['qk_nope_head_dim'] + config['v_head_dim'])\n"
        "    return config['num_hidden_layers'] * batch_size * tokens * per * bytes_per_value",
        "mha_cache_bytes is wrong",
    ),
    ("11.1", "v3_kib_per_token = v3_kib_per_token * 1024 / 1000", "v3_kib_per_token"),
    ("11.1", "v3_ratio = 1 / v3_ratio", "v3_ratio"),
    (
        "11.2",
        "_right = absorbed_scores\ndef absorbed_scores(att, q_nope, q_rope, entries):\n"
        "    return _right(att, q_nope, q_rope, entries) / att.softmax_scale",
        "absorbed_scores differs",
    ),
    (
        "11.2",
        "def absorbed_scores(att, q_nope, q_rope, entries):\n"
        "    w_uk = att.W_key_up.weight.view(att.qk_nope_head_dim, att.n_heads, -1).transpose(0, 1)\n"
        "    q_latent = torch.einsum('bhtn,hnr->bhtr', q_nope, w_uk)\n"
        "    r = att.kv_lora_rank\n"
        "    s = q_latent @ entries[..., :r].unsqueeze(1).transpose(-1, -2)\n"
        "    s = s + q_rope @ entries[..., r:].unsqueeze(1).transpose(-1, -2)\n"
        "    return s * att.softmax_scale",
        "absorbed_scores differs",
    ),
    (
        "11.2",
        "def absorbed_scores(att, q_nope, q_rope, entries):\n"
        "    w_uk = att.W_key_up.weight.view(att.n_heads, att.qk_nope_head_dim, -1)\n"
        "    q_latent = torch.einsum('bhtn,hnr->bhtr', q_nope, w_uk)\n"
        "    s = q_latent @ entries[..., : att.kv_lora_rank].unsqueeze(1).transpose(-1, -2)\n"
        "    return s * att.softmax_scale",
        "absorbed_scores differs",
    ),
    (
        "11.2",
        "def absorbed_scores(att, q_nope, q_rope, entries):\n"
        "    r = att.kv_lora_rank\n"
        "    b, s, _ = entries.shape\n"
        "    keys = att.W_key_up(entries[..., :r]).view(b, s, att.n_heads, -1).transpose(1, 2)\n"
        "    scores = q_nope @ keys.transpose(-1, -2) + q_rope @ entries[..., r:].unsqueeze(1).transpose(-1, -2)\n"
        "    return scores * att.softmax_scale",
        "called an up-projection",
    ),
    (
        "11.2",
        "def absorbed_values(att, weights, entries):\n"
        "    mixed = weights @ entries[..., : att.kv_lora_rank].unsqueeze(1)\n"
        "    w_uv = att.W_value_up.weight.view(att.v_head_dim, att.n_heads, -1).transpose(0, 1)\n"
        "    return torch.einsum('bhtr,hvr->bhtv', mixed, w_uv)",
        "absorbed_values differs",
    ),
    (
        "11.2",
        "def absorbed_values(att, weights, entries):\n"
        "    b, s, _ = entries.shape\n"
        "    values = att.W_value_up(entries[..., : att.kv_lora_rank]).view(b, s, att.n_heads, -1).transpose(1, 2)\n"
        "    return weights @ values",
        "called an up-projection",
    ),
    ("11.3", f"{TEMPERATURE}\n    return 0.1 * coefficient * math.log10(factor) + 1", "(40"),
    ("11.3", f"{TEMPERATURE}\n    return 0.1 * coefficient * math.log(factor) + 1", "(0.5"),
    (
        "11.3",
        "_right = ramp_bounds\ndef ramp_bounds(head_dim, theta_base, original_length, beta_fast=32, beta_slow=1):\n"
        "    low, high = _right(head_dim, theta_base, original_length, beta_slow, beta_fast)\n"
        "    return min(low, high), max(low, high)",
        "ramp_bounds(",
    ),
    (
        "11.3",
        "def ramp_bounds(head_dim, theta_base, original_length, beta_fast=32, beta_slow=1):\n"
        "    def turn(n):\n"
        "        return head_dim * math.log(original_length / (n * 2 * math.pi)) / (2 * math.log(theta_base))\n"
        "    return max(round(turn(beta_fast)), 0), min(round(turn(beta_slow)), head_dim - 1)",
        "ramp_bounds(",
    ),
    (
        "11.3",
        "def ramp_bounds(head_dim, theta_base, original_length, beta_fast=32, beta_slow=1):\n"
        "    def turn(n):\n"
        "        return head_dim * math.log(original_length / (n * 2 * math.pi)) / (2 * math.log(theta_base))\n"
        "    return math.floor(turn(beta_fast)), math.ceil(turn(beta_slow))",
        "ramp_bounds(16",
    ),
    (
        "11.3",
        "_right = ramp_bounds\ndef ramp_bounds(*args):\n    return tuple(float(b) for b in _right(*args))",
        "tuple of two ints",
    ),
    ("11.3", "v3_softmax_scale = 192**-0.5 * yarn_temperature(40)", "v3_softmax_scale"),
    ("11.3", "v3_softmax_scale = 128**-0.5 * yarn_temperature(40) ** 2", "v3_softmax_scale"),
    ("11.3", "v3_softmax_scale = None", "compute v3_softmax_scale"),
    (
        "11.4",
        "_right = rotation_matrix\ndef rotation_matrix(head_dim, position, theta_base=10_000.0):\n"
        "    return _right(head_dim, position, theta_base).T",
        "rotation_matrix(8, 5, 10000.0) @ x differs",
    ),
    (
        "11.4",
        "_right = rotation_matrix\ndef rotation_matrix(head_dim, position, theta_base=10_000.0):\n"
        "    order = torch.arange(head_dim).view(2, -1).T.flatten()  # pairs (2i, 2i + 1)\n"
        "    return _right(head_dim, position, theta_base)[order][:, order]",
        "rotation_matrix(8, 5, 10000.0) @ x differs",
    ),
    (
        "11.4",
        "def between(head_dim, t, s):\n    return rotation_matrix(head_dim, t) @ rotation_matrix(head_dim, s).T",
        "is not the rotated score",
    ),
    ("11.4", "distance_only = False", "distance_only: compare"),
    ("11.4", "distance_only = torch.tensor(True)", "should be True or False"),
    ("11.4", "distance_only = None", "answer distance_only"),
]


@pytest.mark.parametrize(("ex_id", "wrong", "message"), WRONG, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG)])
def test_checks_reject_wrong_answers(solved, ex_id, wrong, message):
    namespace, checks = solved
    namespace = dict(namespace)
    run(wrong, namespace)
    with pytest.raises(namespace["SelfCheckError"], match=re.escape(message)):
        run(checks[ex_id], namespace)


# the outside read (issue 18): more right answers, written another way in float32, and more wrong ones
RIGHT_MORE = [
    (
        "11.1",
        f"def mla_cache_bytes({MLA_ARGS}):\n"
        "    import math\n"
        "    keys = ('num_hidden_layers', 'kv_lora_rank', 'qk_rope_head_dim')\n"
        "    layers, rank, rope = (config[k] for k in keys)\n"
        "    return math.prod([layers, rank + rope, tokens, batch_size, bytes_per_value])\n"
        "v3_kib_per_token = float(torch.tensor(61 * 576 * 2, dtype=torch.float32) / 1024)\n"
        "v3_ratio = float(torch.tensor(128 * 320, dtype=torch.float32) / 576)",
    ),
    (
        "11.2",
        "def absorbed_values(att, weights, entries):\n"
        "    # float32, per head: (weights @ c) @ W_UV^(i)^T\n"
        "    c = entries[..., : att.kv_lora_rank]\n"
        "    w = att.W_value_up.weight\n"
        "    v = att.v_head_dim\n"
        "    heads = [(weights[:, i] @ c) @ w[v * i : v * (i + 1)].T for i in range(att.n_heads)]\n"
        "    return torch.stack(heads, dim=1)",
    ),
    (
        "11.4",
        "def rotation_matrix(head_dim, position, theta_base=10_000.0):\n"
        "    # float32: cos on the diagonal, -sin / +sin on the two off-diagonal blocks\n"
        "    angle = position * rope_frequencies(head_dim, theta_base)\n"
        "    c, s = torch.diag(torch.cos(angle)), torch.diag(torch.sin(angle))\n"
        "    return torch.cat([torch.cat([c, -s], dim=1), torch.cat([s, c], dim=1)], dim=0)\n"
        "def between(head_dim, t, s):\n"
        "    return torch.linalg.solve(rotation_matrix(head_dim, t), rotation_matrix(head_dim, s))",
    ),
]


@pytest.mark.parametrize(("ex_id", "right"), RIGHT_MORE, ids=[f"{r[0]}-{i}" for i, r in enumerate(RIGHT_MORE)])
def test_checks_accept_more_right_answers(solved, ex_id, right):
    namespace, checks = solved
    namespace = dict(namespace)
    run(right, namespace)
    assert f"自检 {ex_id} 通过" in run(checks[ex_id], namespace)


WRONG_MORE = [
    (
        "11.1",
        f"_right = mla_cache_bytes\ndef mla_cache_bytes({MLA_ARGS}):\n"
        "    return _right(config, tokens, batch_size, 2)  # bytes_per_value ignored",
        "torch.float32",
    ),
    ("11.1", "v3_ratio = 61 * 128 * (128 + 128) * 2 / mla_cache_bytes(DEEPSEEK_V3_CONFIG, 1)", "v3_ratio"),
    ("11.1", "v3_kib_per_token = mla_cache_bytes(DEEPSEEK_V3_CONFIG, 1, bytes_per_value=4) / 1024", "v3_kib_per_token"),
    (
        "11.2",
        "def absorbed_values(att, weights, entries):\n"
        "    return weights @ entries[..., : att.kv_lora_rank].unsqueeze(1)",
        "absorbed_values should return a tensor of shape",
    ),
    (
        "11.2",
        "_right = absorbed_scores\ndef absorbed_scores(att, q_nope, q_rope, entries):\n"
        "    rope = q_rope @ entries[..., att.kv_lora_rank :].unsqueeze(1).transpose(-1, -2)\n"
        "    return _right(att, q_nope, q_rope, entries) + rope * (1 - att.softmax_scale)  # RoPE part unscaled",
        "absorbed_scores differs",
    ),
    (
        "11.3",
        f"{TEMPERATURE}\n    return 1.0 if factor <= 1 else (0.1 * coefficient * math.log(factor) + 1) ** 2",
        "(40",
    ),
    (
        "11.3",
        "def ramp_bounds(head_dim, theta_base, original_length, beta_fast=32, beta_slow=1):\n"
        "    def turn(n):  # log10 instead of ln in the base\n"
        "        return head_dim * math.log(original_length / (n * 2 * math.pi)) / (2 * math.log10(theta_base))\n"
        "    return max(math.floor(turn(beta_fast)), 0), min(math.ceil(turn(beta_slow)), head_dim - 1)",
        "ramp_bounds(",
    ),
    (
        "11.4",
        "_right = rotation_matrix\ndef rotation_matrix(head_dim, position, theta_base=10_000.0):\n"
        "    return _right(head_dim, position)  # theta_base ignored",
        "rotation_matrix(6, 3, 500.0)",
    ),
    (
        "11.4",
        "def between(head_dim, t, s):\n    return rotation_matrix(head_dim, t - s)",
        "is not the rotated score",
    ),
]


@pytest.mark.parametrize(
    ("ex_id", "wrong", "message"), WRONG_MORE, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG_MORE)]
)
def test_checks_reject_more_wrong_answers(solved, ex_id, wrong, message):
    namespace, checks = solved
    namespace = dict(namespace)
    run(wrong, namespace)
    with pytest.raises(namespace["SelfCheckError"], match=re.escape(message)):
        run(checks[ex_id], namespace)
