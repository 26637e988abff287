"""The exercise notebooks and their solutions stay in step.

Each exercise has a statement (a Markdown cell starting with "## 练习 4.x"), code to write and a
self-check cell whose first line is "# Self-check 4.x". The exercises notebook is stored blank, so
every self-check there fails (tagged `raises-exception`, error output stored for strict nbval);
the solutions notebook carries the same self-checks, all passing.
"""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXERCISE_DIR = ROOT / "notebooks" / "exercises"
CHAPTERS = ["ch04", "ch09", "ch10"]
# exercises each chapter must pose: chapter 4 the three set ones and three more; chapter 9 the four of issue 10;
# chapter 10 the two of issue 11 (a previous-token or induction head, the logit lens's first right depth) and two more
MIN_EXERCISES = {"ch04": 6, "ch09": 4, "ch10": 4}

STATEMENT = re.compile(r"^## 练习 (\d+\.\d+)")
CHECK = re.compile(r"^# Self-check (\d+\.\d+)$")
LEARNER = re.compile(r"^# Exercise (\d+\.\d+) - your code$")
SOLUTION = re.compile(r"^# Solution (\d+\.\d+)$")
PLACEHOLDERS = ('raise NotImplementedError("在这里写你的代码 / write your code here")', "= None")


def load(chapter: str, kind: str) -> nbformat.NotebookNode:
    path = EXERCISE_DIR / f"{chapter}_{kind}.ipynb"
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    return nbformat.read(path, as_version=4)


def first_line(cell) -> str:
    return cell.source.split("\n", 1)[0].strip()


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def cells_matching(nb, pattern: re.Pattern, cell_type: str) -> list[tuple[str, str]]:
    """(exercise id, source) of the cells of `cell_type` whose first line matches `pattern`, in order."""
    found = []
    for cell in nb.cells:
        if cell.cell_type == cell_type:
            match = pattern.match(first_line(cell))
            if match:
                found.append((match.group(1), cell.source))
    return found


def sections(nb) -> dict[str, list]:
    """The cells of each exercise: from its statement up to the next statement (or the end)."""
    result, current = {}, None
    for cell in nb.cells:
        if cell.cell_type == "markdown" and STATEMENT.match(first_line(cell)):
            current = STATEMENT.match(first_line(cell)).group(1)
            assert current not in result, f"exercise {current} is stated twice"
            result[current] = []
        elif current is not None:
            result[current].append(cell)
    return result


@pytest.fixture(params=CHAPTERS)
def chapter(request):
    return request.param


def test_exercises_are_numbered_in_order(chapter):
    """Exercises N.1, N.2, ... with no gaps; at least the chapter's minimum."""
    ids = [ex_id for ex_id, _ in cells_matching(load(chapter, "exercises"), STATEMENT, "markdown")]
    number = chapter.removeprefix("ch").lstrip("0")
    assert ids == [f"{number}.{i}" for i in range(1, len(ids) + 1)], ids
    assert len(ids) >= MIN_EXERCISES[chapter]


def test_statements_are_identical(chapter):
    """Both notebooks pose the same exercises in the same words."""
    exercises = cells_matching(load(chapter, "exercises"), STATEMENT, "markdown")
    solutions = cells_matching(load(chapter, "solutions"), STATEMENT, "markdown")
    assert exercises == solutions


def test_check_cells_are_identical(chapter):
    """The self-checks of the solutions are exactly the ones the learner runs, in the same order."""
    exercises = cells_matching(load(chapter, "exercises"), CHECK, "code")
    solutions = cells_matching(load(chapter, "solutions"), CHECK, "code")
    assert [ex_id for ex_id, _ in exercises] == [ex_id for ex_id, _ in solutions]
    for (ex_id, ex_source), (_, sol_source) in zip(exercises, solutions, strict=True):
        assert ex_source == sol_source, f"self-check {ex_id} differs between the two notebooks"


@pytest.mark.parametrize("kind", ["exercises", "solutions"])
def test_every_exercise_has_one_check_after_its_code(chapter, kind):
    """Within each exercise: the code to write (or the solution) comes first, then exactly one self-check."""
    nb = load(chapter, kind)
    code_pattern = LEARNER if kind == "exercises" else SOLUTION
    assert len(cells_matching(nb, CHECK, "code")) == len(sections(nb)), f"{kind}: need one self-check per exercise"
    for ex_id, cells in sections(nb).items():
        code_cells = [c for c in cells if c.cell_type == "code"]
        checks = [i for i, c in enumerate(code_cells) if CHECK.match(first_line(c))]
        assert len(checks) == 1, f"{kind}: exercise {ex_id} needs exactly one '# Self-check {ex_id}' cell"
        assert CHECK.match(first_line(code_cells[checks[0]])).group(1) == ex_id, f"{kind}: check of {ex_id} misnumbered"
        own = [c for c in code_cells[: checks[0]] if code_pattern.match(first_line(c))]
        assert own, f"{kind}: exercise {ex_id} has no '{code_pattern.pattern}' cell before its self-check"
        assert all(code_pattern.match(first_line(c)).group(1) == ex_id for c in own), f"{kind}: misnumbered cell"
        check_source = code_cells[checks[0]].source
        assert "assert" in check_source or "check(" in check_source, f"self-check {ex_id} asserts nothing"


def test_learner_cells_are_blank(chapter):
    """The exercises notebook gives placeholders, not answers."""
    for ex_id, cells in sections(load(chapter, "exercises")).items():
        (learner,) = [c for c in cells if c.cell_type == "code" and LEARNER.match(first_line(c))]
        assert any(p in learner.source for p in PLACEHOLDERS), f"exercise {ex_id}: no placeholder to fill in"


def test_checks_fail_in_the_blank_state(chapter):
    """Every self-check of the stored (blank) exercises notebook raised, and is tagged so nbval expects it."""
    nb = load(chapter, "exercises")
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if CHECK.match(first_line(cell)):
            assert errors, f"'{first_line(cell)}' passes on the blank notebook: it checks nothing the learner writes"
            assert "raises-exception" in tags(cell), f"'{first_line(cell)}' must be tagged raises-exception"
        else:
            # only self-checks may fail: the learner's cells and the imports must run as given
            assert not errors, f"cell '{first_line(cell)}' stores an error"
            assert "raises-exception" not in tags(cell), f"cell '{first_line(cell)}' should not be expected to fail"


def test_solutions_store_no_errors(chapter):
    """Every cell of the solutions notebook ran cleanly, and none is allowed to fail."""
    for cell in load(chapter, "solutions").cells:
        if cell.cell_type == "code":
            assert not [o for o in cell.outputs if o.output_type == "error"], f"'{first_line(cell)}' stores an error"
            assert "raises-exception" not in tags(cell), f"'{first_line(cell)}' is tagged raises-exception"


@pytest.mark.parametrize("kind", ["exercises", "solutions"])
def test_execution_counts_run_in_order(chapter, kind):
    """Outputs come from one fresh top-to-bottom run (strict nbval compares them)."""
    nb = load(chapter, kind)
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), counts


def test_no_synced_cells(chapter):
    """Exercise notebooks import gpt_helpers; they do not re-teach its code in synced cells."""
    for kind in ["exercises", "solutions"]:
        for cell in load(chapter, kind).cells:
            assert not (cell.cell_type == "code" and first_line(cell).startswith("# Same code as gpt_helpers/"))


# ---- chapter 4: the self-checks reject wrong answers, accept float32 ones and leave the learner's names alone
# Each exercise's solution cells run in a plain namespace (no kernel: IPython's get_ipython() is None, so the
# one-line display is not installed), then the self-check; a wrong answer written over the solution must fail.


def ch04_parts() -> tuple[str, dict[str, list[str]], dict[str, str]]:
    """The first code cell, the solution cells of each exercise, and each exercise's self-check."""
    nb = load("ch04", "solutions")
    setup = next(c.source for c in nb.cells if c.cell_type == "code")
    solutions, checks = {}, {}
    for ex_id, cells in sections(nb).items():
        solutions[ex_id] = [c.source for c in cells if c.cell_type == "code" and SOLUTION.match(first_line(c))]
        (checks[ex_id],) = [c.source for c in cells if c.cell_type == "code" and CHECK.match(first_line(c))]
    return setup, solutions, checks


def ch04_run(source: str, namespace: dict) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<notebook cell>", "exec"), namespace)
    return out.getvalue()


@pytest.fixture(scope="module")
def ch04_solved():
    """A namespace in which the first cell and every solution ran, and the self-checks by exercise id."""
    setup, solutions, checks = ch04_parts()
    namespace: dict = {}
    ch04_run(setup, namespace)
    for ex_id in sorted(solutions):
        for source in solutions[ex_id]:
            ch04_run(source, namespace)
    return namespace, checks


def test_ch04_checks_pass_in_any_order_and_keep_the_learners_names(ch04_solved):
    namespace, checks = ch04_solved
    namespace = dict(namespace)
    before = dict(namespace)
    for ex_id in ["4.7", "4.5", "4.3", "4.1", "4.6", "4.2", "4.4", "4.5"]:
        assert f"自检 {ex_id} 通过" in ch04_run(checks[ex_id], namespace)
    added = namespace.keys() - before.keys()
    assert all(name.startswith("_self_check_4_") for name in added), f"a self-check defined {sorted(added)}"
    changed = [name for name in before if namespace[name] is not before[name]]
    assert not changed, f"a self-check overwrote {changed}"


# float32 versions of right answers: a learner who computes in float32 must pass
CH04_FLOAT32 = {
    "4.1": "ratio = (torch.tensor(ff_params, dtype=torch.float32) / torch.tensor(att_params, dtype=torch.float32))",
    "4.2": """
for name in results:
    n = torch.tensor(results[name]["params"], dtype=torch.float32)
    results[name]["size_mib"] = (n * 4 / 2**20).item()
""",
    "4.4": """
class RMSNorm(nn.Module):
    def __init__(self, emb_dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))

    def forward(self, x):
        return self.scale * (x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + self.eps))


with torch.no_grad():
    max_diff_zero_mean = torch.tensor(max_diff_zero_mean, dtype=torch.float32)
""",
    "4.5": """
grad_norms_pre = [torch.cat([p.grad.flatten() for p in b.parameters()]).norm() for b in pre_ln.trf_blocks]
grad_norms_post = [torch.cat([p.grad.flatten() for p in b.parameters()]).norm() for b in post_ln.trf_blocks]
""",
    "4.6": """
xs32 = xs.float()
error32 = (F.gelu(xs32) - GELU()(xs32)).abs()
max_err = error32.max().item()
x_at_max = xs32[error32.argmax()].item()
p32 = torch.tensor([-5.0], requires_grad=True)
(g32,) = torch.autograd.grad(F.gelu(p32).sum(), p32)
grad_at_minus_5 = g32.item()
""",
    "4.7": "embedding_share = torch.tensor(38_597_376, dtype=torch.float32) / torch.tensor(124_412_160.0)",
}


@pytest.mark.parametrize("ex_id", sorted(CH04_FLOAT32))
def test_ch04_checks_accept_float32_answers(ch04_solved, ex_id):
    namespace, checks = ch04_solved
    namespace = dict(namespace)
    ch04_run(CH04_FLOAT32[ex_id], namespace)
    assert f"自检 {ex_id} 通过" in ch04_run(checks[ex_id], namespace)


# (exercise, code that turns the right answer into a wrong one, part of the message the self-check must give)
CH04_WRONG = [
    ("4.1", "ff_params = None", "compute ff_params, att_params and ratio first"),
    ("4.1", "ff_params, att_params = att_params, ff_params", "is not the parameter count of block.ff"),
    ("4.1", "att_params = att_params - 768", "is not the count of block.att"),
    ("4.1", "ratio = att_params / ff_params", "ratio should be ff_params / att_params"),
    ("4.1", "ratio = round(ff_params / att_params, 2)", "ratio should be ff_params / att_params"),
    ("4.1", "def ff_param_formula(d):\n    return 8 * d * d + 4 * d", "ff_param_formula is wrong for d = 768"),
    ("4.1", "def att_param_formula(d):\n    return 4 * d * d + 4 * d", "att_param_formula is wrong for d = 768"),
    (
        "4.1",
        "def att_param_formula(d):\n    return {768: 2_360_064}.get(d, 0)",
        "att_param_formula is wrong for d = 1024",
    ),
    ("4.2", "results = None", "fill in configs and results first"),
    ("4.2", "del results['774M']", "configs and results need the keys"),
    ("4.2", "configs['355M'] = configs['355M'].with_(tie_weights=True)", "355M: use emb_dim=1024"),
    ("4.2", "results['1558M'] = {'params': 1}", "should be a dict with the keys"),
    ("4.2", "results['774M']['params'] = results['774M']['params_tied']", "774M: results['774M']['params'] is not"),
    ("4.2", "results['1558M']['size_mib'] = results['1558M']['params'] * 4 / 1e6", "size_mib should be params x 4"),
    ("4.2", "results['355M']['params_tied'] = results['355M']['params']", "355M: params_tied is not the count"),
    (
        "4.2",
        "def build_on_meta(cfg):\n    with torch.device('meta'):\n        return GPTModel(cfg.with_(n_layers=1))",
        "build_on_meta builds a different model",
    ),
    ("4.3", "DropoutGPTConfig = GPTConfig", "is missing the fields"),
    (
        "4.3",
        "class DropoutGPTModel(GPTModel):\n"
        "    def __init__(self, cfg):\n"
        "        super().__init__(cfg)\n"
        "        self.drop_emb = nn.Dropout(cfg.drop_rate_emb)\n"
        "        for block in self.trf_blocks:\n"
        "            block.drop_shortcut = nn.Dropout(cfg.drop_rate_shortcut)",
        "attention dropout should use drop_rate_attn",
    ),
    (
        "4.3",
        "class DropoutGPTModel(GPTModel):\n"
        "    def __init__(self, cfg):\n"
        "        super().__init__(cfg)\n"
        "        self.drop_emb = nn.Dropout(cfg.drop_rate_emb)\n"
        "        for block in self.trf_blocks:\n"
        "            block.att.dropout = cfg.drop_rate_attn\n"
        "            block.drop_shortcut = nn.Dropout(cfg.drop_rate_emb)",
        "the shortcut dropout should use drop_rate_shortcut",
    ),
    (
        "4.3",
        "class DropoutGPTModel(GPTModel):\n"
        "    def __init__(self, cfg):\n"
        "        super().__init__(cfg)\n"
        "        self.emb_dropout = nn.Dropout(cfg.drop_rate_emb)",
        "the embedding dropout should use drop_rate_emb",
    ),
    ("4.4", "max_diff_shifted = None", "compute both differences"),
    (
        "4.4",
        "class RMSNorm(LayerNorm):\n    pass",
        "RMSNorm has one learned scale per feature and no shift",
    ),
    (
        "4.4",
        "class RMSNorm(nn.Module):\n"
        "    def __init__(self, emb_dim, eps=1e-5):\n"
        "        super().__init__()\n"
        "        self.eps, self.scale = eps, nn.Parameter(torch.ones(emb_dim))\n"
        "    def forward(self, x):\n"
        "        x = x - x.mean(dim=-1, keepdim=True)\n"
        "        return self.scale * x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)",
        "RMSNorm(x) differs from torch.nn.RMSNorm",
    ),
    (
        "4.4",
        "class RMSNorm(nn.Module):\n"
        "    def __init__(self, emb_dim, eps=1e-5):\n"
        "        super().__init__()\n"
        "        self.eps, self.scale = eps, nn.Parameter(torch.ones(emb_dim))\n"
        "    def forward(self, x):\n"
        "        return self.scale * x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True))",  # no eps
        "RMSNorm(x) differs from torch.nn.RMSNorm",
    ),
    ("4.4", "max_diff_shifted = max_diff_shifted / 3", "max_diff_shifted is not max |RMSNorm(x0 + 3)"),
    ("4.4", "max_diff_zero_mean = 1e-5", "max_diff_zero_mean is not max |RMSNorm(x0)"),
    ("4.5", "grad_norms_post = None", "write PostLNBlock, build both models, measure the gradients"),
    ("4.5", "grad_norms_pre = grad_norms_pre[::-1]", "grad_norms_pre does not match the gradients left in .grad"),
    ("4.5", "grad_norms_post = [n**2 for n in grad_norms_post]", "grad_norms_post does not match the gradients"),
    ("4.5", "grad_norms_pre = grad_norms_pre[:-1]", "one gradient norm per block"),
    ("4.5", "pre_ln.zero_grad()", "run one backward pass through each model"),
    ("4.5", "post_ln.trf_blocks[3].att.W_query.weight.data += 1", "load pre_ln's weights into post_ln"),
    ("4.5", "post_ln.trf_blocks[0] = TransformerBlock(SMALL)", "post_ln.trf_blocks should hold PostLNBlock modules"),
    (
        "4.5",
        "class PostLNBlock(TransformerBlock):\n"
        "    def forward(self, x, kv_cache=None):\n"
        "        x = self.norm1(x + self.att(x, kv_cache=kv_cache))\n"
        "        return self.norm2(x) + self.ff(self.norm2(x))",
        "PostLNBlock should compute x = norm1(x + att(x)), then norm2(x + ff(x))",
    ),
    ("4.6", "x_at_max = None", "compute max_err and x_at_max"),
    ("4.6", "max_err = (F.gelu(xs) - GELU()(xs)).max().item()", "is not the largest |exact GELU - tanh GELU|"),
    ("4.6", "max_err = (F.gelu(xs, approximate='tanh') - GELU()(xs)).abs().max().item()", "is not the largest"),
    ("4.6", "x_at_max = float((F.gelu(xs) - GELU()(xs)).abs().argmax())", "x_at_max should be a point of the grid"),
    ("4.6", "x_at_max = 2.6", "is not the largest one"),
    ("4.6", "x_at_max = 1.0", "is not the largest one"),
    ("4.6", "x_grad_zero = -x_grad_zero", "does not cross 0 at x_grad_zero"),
    ("4.6", "x_grad_zero = -0.5", "does not cross 0 at x_grad_zero"),
    ("4.6", "grad_at_minus_5 = F.gelu(torch.tensor(-5.0)).item()", "is not the derivative of the exact GELU"),
    ("4.6", "grad_at_minus_5 = -grad_at_minus_5", "is not the derivative of the exact GELU"),
    (
        "4.6",
        "p = torch.tensor([-5.0], dtype=torch.float64, requires_grad=True)\n"
        "grad_at_minus_5 = torch.autograd.grad(GELU()(p).sum(), p)[0].item()",  # the tanh form's derivative
        "is not the derivative of the exact GELU",
    ),
    ("4.7", "tied_difference = None", "compute both numbers"),
    (
        "4.7",
        "def shared_parameter_names(model):\n    return [[n] for n, _ in model.named_parameters()]",
        "without tying nothing is shared",
    ),
    (
        "4.7",
        "def shared_parameter_names(model):\n"
        "    return [['tok_emb.weight', 'out_head.weight']] if model.cfg.tie_weights else []",
        "exactly the output head and the token embedding are one Parameter",
    ),
    ("4.7", "tied_difference = count_parameters(tied_124m)", "tied_difference is not"),
    ("4.7", "embedding_share = 38_597_376 / 163_009_536", "embedding_share is not"),
    ("4.7", "embedding_share = round(embedding_share, 2)", "embedding_share is not"),
    # an outside reader's wrong answers (issue 17): integer division, a float off by a bias, KiB for MiB, ...
    ("4.1", "ratio = ff_params // att_params", "ratio should be ff_params / att_params"),
    ("4.1", "ff_params = float(ff_params) + 768", "is not the parameter count of block.ff"),
    ("4.2", "results['355M']['size_mib'] = results['355M']['params'] * 4 / 1024", "size_mib should be params x 4"),
    ("4.2", "def build_on_meta(cfg):\n    return GPTModel(cfg.with_(n_layers=1, emb_dim=8, n_heads=1))", "not on meta"),
    (
        "4.3",
        "class DropoutGPTModel(GPTModel):\n"
        "    def __init__(self, cfg):\n"
        "        super().__init__(cfg)\n"
        "        self.drop_emb = nn.Dropout(cfg.drop_rate_emb)\n"
        "        for block in self.trf_blocks:\n"
        "            block.att.dropout = cfg.drop_rate_shortcut\n"  # the two block rates swapped
        "            block.drop_shortcut = nn.Dropout(cfg.drop_rate_attn)",
        "attention dropout should use drop_rate_attn",
    ),
    (
        "4.4",
        "class RMSNorm(nn.Module):\n"
        "    def __init__(self, emb_dim, eps=1e-5):\n"
        "        super().__init__()\n"
        "        self.eps, self.scale = eps, nn.Parameter(torch.ones(emb_dim))\n"
        "    def forward(self, x):\n"
        "        return self.scale * x / (x.pow(2).mean(dim=-1, keepdim=True).sqrt() + self.eps)",  # eps outside
        "RMSNorm(x) differs from torch.nn.RMSNorm",
    ),
    (
        "4.4",
        "class RMSNorm(nn.Module):\n"
        "    def __init__(self, emb_dim, eps=1e-5):\n"
        "        super().__init__()\n"
        "        self.eps, self.scale = eps, nn.Parameter(torch.ones(emb_dim))\n"
        "    def forward(self, x):\n"
        "        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)",  # gamma never used
        "RMSNorm(x) differs from torch.nn.RMSNorm",
    ),
    ("4.5", "grad_norms_post = list(grad_norms_pre)", "grad_norms_post does not match the gradients"),
    ("4.5", "grad_norms_pre, grad_norms_post = grad_norms_post, grad_norms_pre", "grad_norms_pre does not match"),
    ("4.6", "x_grad_zero = -0.75", "does not cross 0 at x_grad_zero"),
    ("4.6", "max_err = float((F.gelu(xs) - GELU()(xs)).abs().mean())", "is not the largest |exact GELU - tanh GELU|"),
    (
        "4.6",  # the smallest |derivative| on the whole negative half is at x = -6, not at the minimum
        "_g = torch.autograd.grad(F.gelu(_x := xs.clone().requires_grad_(True)).sum(), _x)[0]\n"
        "x_grad_zero = xs[xs < 0][_g[xs < 0].abs().argmin()].item()",
        "does not cross 0 at x_grad_zero",
    ),
    (
        "4.7",
        "embedding_share = (tied_124m.tok_emb.weight.numel() + tied_124m.pos_emb.weight.numel())"
        " / count_parameters(tied_124m)",
        "embedding_share is not",
    ),
    (
        "4.7",  # same shape is not the same Parameter
        "def shared_parameter_names(model):\n"
        "    by_shape = {}\n"
        "    for n, p in model.named_parameters(remove_duplicate=False):\n"
        "        by_shape.setdefault(tuple(p.shape), []).append(n)\n"
        "    return sorted(sorted(v) for v in by_shape.values() if len(v) > 1)",
        "without tying nothing is shared",
    ),
]

# right answers written differently from the solutions (float32, other formulas): the self-checks must accept them
CH04_RIGHT_OTHERWISE = [
    ("4.1", "import numpy as np\nratio = np.float32(ff_params) / np.float32(att_params)"),
    ("4.1", "def ff_param_formula(d):\n    return count_parameters(FeedForward(GPTConfig(emb_dim=d, n_heads=1)))"),
    (
        "4.4",
        "class RMSNorm(nn.Module):\n"
        "    def __init__(self, emb_dim, eps=1e-5):\n"
        "        super().__init__()\n"
        "        self.eps = eps\n"
        "        self.scale = nn.Parameter(torch.ones(emb_dim))\n"
        "    def forward(self, x):\n"
        "        mean_square = torch.linalg.vector_norm(x, dim=-1, keepdim=True) ** 2 / x.shape[-1]\n"
        "        return x / torch.sqrt(mean_square + self.eps) * self.scale",
    ),
    (
        "4.5",
        "grad_norms_pre = [\n"
        "    torch.sqrt(sum((p.grad**2).sum() for p in b.parameters())).item() for b in pre_ln.trf_blocks\n"
        "]\n"
        "grad_norms_post = [\n"
        "    torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in b.parameters()])).item()\n"
        "    for b in post_ln.trf_blocks\n"
        "]",
    ),
    (
        "4.6",  # float32 throughout, the zero searched near the minimum, the tanh form written out
        "x32 = xs.float().requires_grad_(True)\n"
        "(g32,) = torch.autograd.grad(F.gelu(x32).sum(), x32)\n"
        "near = (x32.detach() > -2) & (x32.detach() < 0)\n"
        "x_grad_zero = x32.detach()[near][g32[near].abs().argmin()].item()\n"
        "t = x32.detach()\n"
        "err32 = (F.gelu(t) - 0.5 * t * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (t + 0.044715 * t**3)))).abs()\n"
        "max_err, x_at_max = err32.max().item(), xs[err32.argmax()].item()",
    ),
    (
        "4.7",
        "def shared_parameter_names(model):\n"
        "    seen = {}\n"
        "    for n, p in model.named_parameters(remove_duplicate=False):\n"
        "        seen.setdefault(p, []).append(n)  # a Parameter hashes by identity\n"
        "    return sorted(sorted(v) for v in seen.values() if len(v) > 1)\n"
        "embedding_share = torch.tensor(50257 * 768, dtype=torch.float32) / count_parameters(tied_124m)",
    ),
]


@pytest.mark.parametrize(("ex_id", "right"), CH04_RIGHT_OTHERWISE)
def test_ch04_checks_accept_right_answers_written_otherwise(ch04_solved, ex_id, right):
    namespace, checks = ch04_solved
    namespace = dict(namespace)
    for source in ch04_parts()[1][ex_id]:
        ch04_run(source, namespace)
    ch04_run(right, namespace)
    assert f"自检 {ex_id} 通过" in ch04_run(checks[ex_id], namespace)


@pytest.mark.parametrize(("ex_id", "wrong", "message"), CH04_WRONG)
def test_ch04_checks_reject_wrong_answers(ch04_solved, ex_id, wrong, message):
    namespace, checks = ch04_solved
    namespace = dict(namespace)
    for source in ch04_parts()[1][ex_id]:  # fresh answers: some wrong ones change dicts or gradients in place
        ch04_run(source, namespace)
    ch04_run(wrong, namespace)
    with pytest.raises(AssertionError) as failed:
        ch04_run(checks[ex_id], namespace)
    assert message in str(failed.value), f"{ex_id}: expected {message!r}, got {failed.value}"
    assert "\n" not in str(failed.value), "the self-check's message should be one line"


def test_ch04_intended_failures_show_one_line():
    """The blank notebook stores each self-check's error as its message alone, not a traceback of the check."""
    for cell in load("ch04", "exercises").cells:
        if cell.cell_type == "code" and CHECK.match(first_line(cell)):
            (error,) = [o for o in cell.outputs if o.output_type == "error"]
            assert error.ename in {"AssertionError", "NotImplementedError"}
            assert error.traceback == [f"{error.ename}: {error.evalue}"], error.traceback
            assert "\n" not in error.evalue


# ---- chapter 10: the self-checks reject wrong answers, accept float32 ones and leave the learner's names alone
# The solutions notebook's code runs in a plain namespace (no kernel) on a model trained for a few steps only;
# the self-checks compute their references from whatever model they are given, so any model will do.

CH10_STEPS = 30  # enough for the heads and losses to differ clearly; about 3 s of training


def ch10_cells(kind: str) -> tuple[list[str], dict[str, str]]:
    """The code cells that are not self-checks, in order, and the self-check cells by exercise id."""
    code, checks = [], {}
    for cell in load("ch10", kind).cells:
        if cell.cell_type == "code":
            match = CHECK.match(first_line(cell))
            if match:
                checks[match.group(1)] = cell.source
            else:  # without the solutions' asserts of the figures they print: those hold for notebook 08's model only
                code.append("\n".join(line for line in cell.source.splitlines() if not line.startswith("assert ")))
    return code, checks


def run_source(source: str, namespace: dict) -> None:
    exec(compile(source, "<notebook cell>", "exec"), namespace)


@pytest.fixture(scope="module")
def ch10_solved():
    """The namespace of the solutions notebook after every solution cell ran, and the self-checks."""
    import contextlib
    import io

    import gpt_helpers

    real_train, poem = gpt_helpers.train_zen_model, gpt_helpers.zen_of_python()
    code, checks = ch10_cells("solutions")
    namespace: dict = {}
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(io.StringIO()):
        mp.setattr(gpt_helpers, "train_zen_model", lambda **kwargs: real_train(num_steps=CH10_STEPS))
        # the poem's first lines only (57 tokens, 26 windows instead of 175), so each check takes about a second
        mp.setattr(gpt_helpers, "zen_of_python", lambda: poem[: poem.index("Readability")])
        for source in code:
            run_source(source, namespace)
    return namespace, checks


def run_check(namespace: dict, checks: dict, ex_id: str) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run_source(checks[ex_id], namespace)
    return out.getvalue()


def test_ch10_checks_pass_in_any_order_and_keep_the_learners_names(ch10_solved):
    namespace, checks = ch10_solved
    namespace = dict(namespace)
    before = {name: value for name, value in namespace.items() if not name.startswith("_")}
    for ex_id in ["10.4", "10.3", "10.2", "10.1"]:  # 10.2 used to overwrite 10.3's `right`
        assert f"自检 {ex_id} 通过" in run_check(namespace, checks, ex_id)
    after = {name: value for name, value in namespace.items() if not name.startswith("_")}
    assert after.keys() == before.keys(), f"a self-check defined {sorted(after.keys() - before.keys())}"
    changed = [name for name in before if after[name] is not before[name]]
    assert not changed, f"a self-check overwrote {changed}"


# float32 versions of right answers: a learner who computes in float32 must pass
CH10_FLOAT32 = {
    "10.1": """
prev_scores = previous_token_score(attention_weights(model, windows)).float()
uniform_score = torch.tensor([1 / (i + 1) for i in range(1, 32)]).mean().item()
best_ratio = (prev_scores.max() / torch.tensor(uniform_score)).item()
""",
    "10.2": """
ind_scores = ind_scores.float()
ind_uniform = torch.tensor([1 / (i + 1) for i in range(16, 32)]).mean().item()
copy_accuracy = (guesses[:, 16:-1] == repeated[:, 17:]).float().mean().item()
""",
    "10.4": """
loss_increase = loss_increase.float()
layer_increase = torch.tensor(layer_increase).tolist()
base_loss = torch.tensor(base_loss, dtype=torch.float32)
most_important = list(most_important)
""",
    # right answers in other types: numpy arrays, tuples, tensors instead of ints and lists
    "10.3": """
first = first.numpy()
first_counts = tuple(first_counts)
lost_later = torch.tensor(lost_later)
""",
}

# (exercise, code that turns a right answer into a wrong one, the message the self-check must give)
CH10_WRONG = [
    ("10.1", "prev_scores = None", "compute them first"),
    (
        "10.1",
        "def previous_token_score(weights):\n"
        "    return weights.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1).mean(1) / 32",
        "previous_token_score is wrong on a made-up case",
    ),
    ("10.1", "prev_scores = previous_token_score(attention_weights(model, windows[:20]))", "prev_scores:"),
    ("10.1", "best_head = best_head[::-1] if best_head[0] != best_head[1] else (1 - best_head[0], 0)", "best_head"),
    ("10.1", "uniform_score = sum(1 / (i + 1) for i in range(32)) / 32", "uniform_score"),
    ("10.1", "uniform_score = uniform_score * (1 + 1e-3)", "uniform_score"),
    ("10.1", "best_ratio = uniform_score / prev_scores.max().item()", "best_ratio"),
    (
        "10.1",
        "def previous_token_score(weights):\n"
        "    return weights.diagonal(offset=1, dim1=-2, dim2=-1).double().mean(dim=(1, 3))",
        "previous_token_score is wrong on a made-up case",
    ),
    ("10.1", "prev_scores = prev_scores * (1 + 1e-3)", "prev_scores:"),
    ("10.1", "best_ratio = best_ratio * 1.01", "best_ratio"),
    ("10.2", "copy_accuracy = None", "parts 4 and 5 are missing"),
    ("10.2", "ind_scores = ind_scores * 1.01", "ind_scores"),
    ("10.2", "has_induction_head = 'False'", "has_induction_head"),
    (
        "10.2",
        "def repeated_tokens(n, batch, seed):\n"
        "    vocab = torch.unique(zen_ids)\n"
        "    g = torch.Generator().manual_seed(seed)\n"
        "    return vocab[torch.randint(len(vocab), (batch, 2 * n), generator=g)]",
        "write the n tokens twice",
    ),
    (
        "10.2",
        "def repeated_tokens(n, batch, seed):\n"
        "    half = torch.randint(50257, (batch, n), generator=torch.Generator().manual_seed(seed))\n"
        "    return torch.cat([half, half], dim=1)",
        "poem's vocabulary",
    ),
    (
        "10.2",
        "def repeated_tokens(n, batch, seed):\n"
        "    vocab = torch.unique(zen_ids)\n"
        "    half = vocab[torch.randint(len(vocab), (batch, n))]\n"
        "    return torch.cat([half, half], dim=1)",
        "the same seed must give the same tokens",
    ),
    (
        "10.2",
        "def induction_score(weights, n):\n"
        "    return weights.diagonal(offset=-n, dim1=-2, dim2=-1).double().mean(dim=(1, 3))",
        "induction_score is wrong on a made-up case",
    ),
    ("10.2", "ind_scores = induction_score(attention_weights(model, repeated_tokens(16, 8, 1)), 16)", "ind_scores"),
    ("10.2", "ind_uniform = sum(1 / (i + 1) for i in range(15, 31)) / 16", "ind_uniform"),
    (
        "10.2",
        "copy_accuracy = (guesses[:, 15:-1] == repeated[:, 16:]).double().mean().item()",
        "copy_accuracy",
    ),
    ("10.2", "has_induction_head = not has_induction_head", "has_induction_head"),
    (
        "10.3",
        "def first_correct_depth(right):\n"
        "    last = right.shape[0] - 1 - right.flip(0).int().argmax(dim=0)\n"
        "    return torch.where(right.any(dim=0), last, torch.full_like(last, -1))",
        "first_correct_depth",
    ),
    ("10.3", "right = top1_right(model, inputs, torch.roll(targets, 1, dims=1))", "right"),
    (
        "10.3",
        "def top1_right(model, inputs, targets, batch_size=8):\n"
        "    lens = logit_lens(model, inputs[:batch_size])\n"
        "    return lens.argmax(dim=-1) == targets[:batch_size]",
        "top1_right with batch_size=2",
    ),
    ("10.3", "first_counts = first_counts[:-1]", "first_counts"),
    ("10.3", "lost_later = int((~right[-1]).sum())", "lost_later"),
    ("10.3", "first = first.clone(); first[0, 0] = 3", "first is not the first depth"),
    ("10.3", "first_counts = first_counts[::-1]", "first_counts"),
    ("10.3", "lost_later = lost_later + 1", "lost_later"),
    ("10.4", "layer_increase = [base_loss + v for v in layer_increase]", "layer_increase"),
    ("10.4", "base_loss = base_loss + 1e-3", "base_loss"),
    ("10.4", "loss_increase = loss_increase.roll(1, dims=1)", "loss_increase"),
    ("10.4", "loss_increase = loss_increase.clone(); loss_increase[0, 3] += 1e-3", "loss_increase"),
    (
        "10.4",
        "_right_without = loss_without_heads\n"
        "def loss_without_heads(model, loader, layer, heads):\n"
        "    return _right_without(model, loader, layer, heads[:1])",
        "loss_without_heads(model, loader, 0, [0, 2]) is off",
    ),
    ("10.4", "layer_increase = [0.0, layer_increase[1]]", "layer_increase"),
    ("10.4", "most_important = (1 - most_important[0], most_important[1])", "most_important"),
    (
        "10.4",
        "def loss_without_heads(model, loader, layer, heads):\n"
        "    att = model.trf_blocks[layer].att\n"
        "    def zero_heads(module, args):\n"
        "        ctx = args[0].clone()\n"
        "        for head in heads:\n"
        "            ctx[..., head * att.head_dim : (head + 1) * att.head_dim] = 0.0\n"
        "        return (ctx,)\n"
        "    handle = att.out_proj.register_forward_pre_hook(zero_heads)\n"
        "    loss = calc_loss_loader(loader, model)  # no finally: an error leaves the hook on\n"
        "    handle.remove()\n"
        "    return loss",
        "a hook was left on the model",
    ),
]


@pytest.mark.parametrize("ex_id", sorted(CH10_FLOAT32))
def test_ch10_checks_accept_float32_answers(ch10_solved, ex_id):
    namespace, checks = ch10_solved
    namespace = dict(namespace)
    run_source(CH10_FLOAT32[ex_id], namespace)
    assert f"自检 {ex_id} 通过" in run_check(namespace, checks, ex_id)


@pytest.mark.parametrize(
    ("ex_id", "wrong", "message"), CH10_WRONG, ids=[f"{w[0]}-{i}" for i, w in enumerate(CH10_WRONG)]
)
def test_ch10_checks_reject_wrong_answers(ch10_solved, ex_id, wrong, message):
    import copy

    namespace, checks = ch10_solved
    namespace = dict(namespace)
    namespace["model"] = copy.deepcopy(namespace["model"])  # a wrong answer may leave a hook on it
    run_source(wrong, namespace)
    error_class = namespace["SelfCheckError"]
    with pytest.raises(error_class, match=re.escape(message)):
        run_check(namespace, checks, ex_id)


def test_ch10_blank_checks_show_only_their_message():
    """The stored blank notebook shows each failed self-check as one line: no traceback."""
    for cell in load("ch10", "exercises").cells:
        if cell.cell_type == "code" and CHECK.match(first_line(cell)):
            (error,) = [o for o in cell.outputs if o.output_type == "error"]
            assert error.ename == "SelfCheckError"
            assert error.traceback == [f"SelfCheckError: {error.evalue}"], error.traceback
