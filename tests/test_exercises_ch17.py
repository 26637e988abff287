"""Chapter 17's exercises: the notebooks' shape (the checks of tests/test_exercises.py, for ch17), and self-checks
that accept right float32 answers, reject wrong ones and leave the learner's names alone."""

import re

import pytest
import test_exercises as shape_checks
from exercise_harness import code_and_checks, run_source, solve
from test_exercises import (  # noqa: F401  (collected here with this module's `chapter` fixture: ch17)
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

CHAPTER = "ch17"


@pytest.fixture
def chapter():
    return CHAPTER


def test_exercises_are_numbered_in_order():
    ids = [ex_id for ex_id, _ in cells_matching(load(CHAPTER, "exercises"), STATEMENT, "markdown")]
    assert ids == [f"17.{i}" for i in range(1, len(ids) + 1)] and len(ids) >= 4, ids


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
    for ex_id in ["17.4", "17.2", "17.3", "17.1"]:
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
    "17.1": """
def my_lr_at(step, max_lr, warmup, total_steps, min_lr=0.0):
    if step < warmup:
        return float(torch.tensor(max_lr) * (step + 1) / warmup)
    p = torch.tensor(min(1.0, (step - warmup) / (total_steps - warmup)))
    return float(min_lr + 0.5 * (max_lr - min_lr) * (1 + torch.cos(torch.pi * p)))

lr_300 = torch.tensor(lr_300, dtype=torch.float64).item()
""",
    "17.3": "fewest_devices_8gib = int(torch.tensor(fewest_devices_8gib))",
    "17.4": """
def accumulate(model, micro_batches):
    n_tokens = torch.tensor(0.0)
    for _, y in micro_batches:
        n_tokens += (y != -100).float().sum()
    total = torch.tensor(0.0)
    for x, y in micro_batches:
        losses = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="none")  # 0 at ignored targets
        (losses.sum() / n_tokens).backward()
        total += losses.detach().sum()
    return (total / n_tokens).item()
""",
}


# right answers written another way, each must pass its self-check
OTHER_RIGHT = [
    (
        "17.1",
        "def my_lr_at(step, max_lr, warmup, total_steps, min_lr=0.0):\n"
        "    if step < warmup:\n"
        "        return (step + 1) / warmup * max_lr\n"
        "    p = min(step - warmup, total_steps - warmup) / (total_steps - warmup)\n"
        "    return max_lr - (max_lr - min_lr) * (1 - math.cos(math.pi * p)) / 2",
    ),
    (
        "17.2",
        "def decayed_names(model):\n"
        "    skip = {'tok_emb.weight', 'pos_emb.weight', 'emb.weight'}\n"
        "    return {n for n, p in model.named_parameters() if p.ndim == 2 and n not in skip}",
    ),
    ("17.2", "n_decayed_124m = 124_439_808 - 50257 * 768 - 1024 * 768 - 121_344"),
    (
        "17.3",
        "def bytes_per_device(model, n_devices, strategy):\n"
        "    total = 0\n"
        "    for p in model.parameters():\n"
        "        rows = p.shape[0] if strategy == 'ddp' else math.ceil(p.shape[0] / n_devices)\n"
        "        total += rows * p[0].numel() * 16\n"
        "    return total",
    ),
    (
        "17.4",
        "def accumulate(model, micro_batches):\n"
        "    counts = [int((y != -100).sum()) for _, y in micro_batches]\n"
        "    total = 0.0\n"
        "    for (x, y), count in zip(micro_batches, counts):\n"
        "        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())\n"  # each micro-batch's mean,
        "        (loss * count / sum(counts)).backward()\n"  # weighted by its share of the valid targets
        "        total += loss.item() * count / sum(counts)\n"
        "    return total",
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
    (
        "17.1",
        "_right = my_lr_at\n"
        "def my_lr_at(step, max_lr, warmup, total_steps, min_lr=0.0):\n"
        "    return max_lr * step / warmup if step < warmup else _right(step, max_lr, warmup, total_steps, min_lr)",
        "my_lr_at(0, max_lr=0.0006",  # warmup from 0: the first step wasted
    ),
    (
        "17.1",
        "def my_lr_at(step, max_lr, warmup, total_steps, min_lr=0.0):\n"
        "    if step < warmup:\n"
        "        return max_lr * (step + 1) / warmup\n"
        "    p = (step - warmup) / (total_steps - warmup)\n"  # not clipped: the rate climbs again after the end
        "    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * p))",
        "total_steps=1100",
    ),
    (
        "17.1",
        "def my_lr_at(step, max_lr, warmup, total_steps, min_lr=0.0):\n"
        "    if step < warmup:\n"
        "        return max_lr * (step + 1) / warmup\n"
        "    p = min(1.0, (step - warmup) / (total_steps - warmup))\n"
        "    return 0.5 * max_lr * (1 + math.cos(math.pi * p))",  # min_lr forgotten
        "min_lr=6e-05",
    ),
    (
        "17.1",
        "def my_lr_at(step, max_lr, warmup, total_steps, min_lr=0.0):\n"
        "    if step < warmup:\n"
        "        return max_lr * (step + 1) / warmup\n"
        "    p = min(1.0, step / total_steps)\n"  # progress counted from step 0, not from the end of warmup
        "    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * p))",
        "my_lr_at(100, max_lr=0.0006",
    ),
    (
        "17.1",
        "def my_lr_at(step, max_lr, warmup, total_steps, min_lr=0.0):\n"
        "    if step < warmup:\n"
        "        return max_lr * (step + 1) / warmup\n"
        "    p = min(1.0, (step - warmup) / (total_steps - warmup))\n"
        "    return min_lr + (max_lr - min_lr) * (1 - p)",  # linear decay
        "my_lr_at(",
    ),
    (
        "17.1",
        "def my_lr_at(step, max_lr, warmup, total_steps, min_lr=0.0):\n"
        "    if step < warmup:\n"
        "        return max_lr * (step + 1) / warmup\n"
        "    p = min(1.0, (step - warmup) / (total_steps - warmup))\n"
        "    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi / 2 * p))",  # a quarter of a cosine
        "my_lr_at(",
    ),
    (
        "17.1",
        "def my_lr_at(step, max_lr, warmup, total_steps, min_lr=0.0):\n"
        "    if step <= warmup:\n"  # one warmup step too many: above max_lr at step `warmup`
        "        return max_lr * (step + 1) / warmup\n"
        "    p = min(1.0, (step - warmup) / (total_steps - warmup))\n"
        "    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * p))",
        "my_lr_at(100, max_lr=0.0006",
    ),
    (
        "17.1",
        "def my_lr_at(step, max_lr, warmup, total_steps, min_lr=0.0):\n"
        "    if step < warmup:\n"
        "        return max_lr * (step + 1) / warmup\n"
        "    p = min(1.0, (step - warmup) / (total_steps - 1 - warmup))\n"  # min_lr at the last step, not at total
        "    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * p))",
        "total_steps=1100",
    ),
    ("17.1", "lr_300 = 6e-4", "lr_300 is wrong"),
    ("17.1", "lr_300 = my_lr_at(299, 6e-4, 100, 1100, 6e-5)", "lr_300 is wrong"),  # one step off
    ("17.1", "first_below_half = 0", "the first step after warmup"),  # forgot the warmup
    ("17.1", "first_below_half = 600", "the first step after warmup"),  # halfway between max and min
    ("17.1", "first_below_half = 637", "the first step after warmup"),
    ("17.1", "first_below_half = 636.0", "should be an int"),
    ("17.1", "first_below_half = None", "parts 2 and 3 are missing"),
    (
        "17.2",
        "def decayed_names(model):\n    return {n for n, p in model.named_parameters() if p.dim() >= 2}",
        "these should not get weight decay: ['pos_emb.weight', 'tok_emb.weight']",  # embeddings decayed
    ),
    (
        "17.2",
        "def decayed_names(model):\n    return {n for n, p in model.named_parameters() if n.endswith('weight')}",
        "these should not get weight decay",  # Llama's RMSNorm weights (and the embeddings)
    ),
    (
        "17.2",
        "def decayed_names(model):\n"
        "    return {n for n, p in model.named_parameters() if p.dim() >= 2 and 'emb' not in n and 'head' not in n}",
        "these should get weight decay: ['out_head.weight']",  # the (untied) output head left out
    ),
    (
        "17.2",
        "def decayed_names(model):\n"
        "    return [n for n, p in model.named_parameters() if p.dim() >= 2 and 'emb' not in n]",
        "should return a set",
    ),
    (
        "17.2",
        "def decayed_names(model):\n"
        "    return {p for n, p in model.named_parameters() if p.dim() >= 2 and 'emb' not in n}",
        "should hold names (str), not parameters",  # the parameters themselves, not their names
    ),
    (
        "17.2",
        "def decayed_names(model):\n"
        "    return {f'{name}.weight' for name, m in model.named_modules() if isinstance(m, nn.Linear)}",
        "these should not get weight decay: ['out_head.weight']",  # a tied head is listed as tok_emb.weight
    ),
    (
        "17.2",
        "with torch.device('meta'):\n"
        "    _untied = GPTModel(GPTConfig.from_preset('124M', qkv_bias=True))\n"  # not the released, tied config
        "n_decayed_124m = sum(p.numel() for n, p in _untied.named_parameters() if n in decayed_names(_untied))",
        "off by +38,597,376",
    ),
    ("17.2", "n_decayed_124m = 124_439_808 - 50257 * 768", "off by +907,776"),  # position embedding, biases, norms
    ("17.2", "n_decayed_124m = 124_439_808 - 50257 * 768 - 1024 * 768", "off by +121,344"),  # biases and norms
    ("17.2", "n_decayed_124m = float(n_decayed_124m)", "should be an int"),
    ("17.2", "n_decayed_124m = None", "part 2 is missing"),
    (
        "17.3",
        "def bytes_per_device(model, n_devices, strategy):\n"
        "    n = sum(p.numel() for p in model.parameters())\n"
        "    return 16 * n if strategy == 'ddp' else 16 * n // n_devices",  # no padding
        "2 devices, fsdp",
    ),
    (
        "17.3",
        "def bytes_per_device(model, n_devices, strategy):\n"
        "    n = sum(-(-p.shape[0] // n_devices) * (p.numel() // p.shape[0]) for p in model.parameters())\n"
        "    return 16 * n",  # DDP sharded too
        "2 devices, ddp",
    ),
    (
        "17.3",
        "def bytes_per_device(model, n_devices, strategy):\n"
        "    rows = lambda p: p.shape[0] if strategy == 'ddp' else -(-p.shape[0] // n_devices)\n"
        "    return 8 * sum(rows(p) * (p.numel() // p.shape[0]) for p in model.parameters())",  # no AdamW state
        "1 devices, ddp",
    ),
    (
        "17.3",
        "def bytes_per_device(model, n_devices, strategy):\n"
        "    rows = lambda t: t.shape[0] if strategy == 'ddp' else -(-t.shape[0] // n_devices)\n"
        "    return 16 * sum(rows(t) * (t.numel() // t.shape[0]) for t in model.state_dict().values() if t.dim())",
        "GPT-2 124M, 1 devices, ddp",  # the tied head counted twice (and the mask buffers)
    ),
    (
        "17.3",
        "def bytes_per_device(model, n_devices, strategy):\n"
        "    rows = lambda p: p.shape[0] if strategy == 'ddp' else p.shape[0] // n_devices\n"  # rounded down
        "    return 16 * sum(rows(p) * (p.numel() // p.shape[0]) for p in model.parameters())",
        "2 devices, fsdp",
    ),
    (
        "17.3",
        "def bytes_per_device(model, n_devices, strategy):\n"
        "    n = lambda p: p.numel() if strategy == 'ddp' else math.ceil(p.numel() / n_devices)\n"  # flattened, as
        "    return 16 * sum(n(p) for p in model.parameters())",  # FSDP1 did, not FSDP2's rows
        "2 devices, fsdp",
    ),
    ("17.3", "fewest_devices_8gib = 3.0", "should be an int"),
    ("17.3", "fewest_devices_8gib = 2", "is not the fewest"),
    ("17.3", "fewest_devices_8gib = 4", "is not the fewest"),
    ("17.3", "fewest_devices_8gib = None", "part 2 is missing"),
    (
        "17.4",
        "def accumulate(model, micro_batches):\n"
        "    k, total = len(micro_batches), 0.0\n"
        "    for x, y in micro_batches:\n"
        "        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())\n"
        "        (loss / k).backward()\n"  # every micro-batch weighs the same: wrong with padding
        "        total += loss.item() / k\n"
        "    return total",
        "micro-batches (1, 5)",
    ),
    (
        "17.4",
        "def accumulate(model, micro_batches):\n"
        "    n = sum(y.numel() for _, y in micro_batches)\n"  # padding counted as tokens
        "    total = 0.0\n"
        "    for x, y in micro_batches:\n"
        "        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction='sum')\n"
        "        (loss / n).backward()\n"
        "        total += loss.item()\n"
        "    return total / n",
        "micro-batches (1, 5)",
    ),
    (
        "17.4",
        "def accumulate(model, micro_batches):\n"
        "    total = 0.0\n"
        "    for x, y in micro_batches:\n"
        "        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction='sum')\n"
        "        loss.backward()\n"  # never divided
        "        total += loss.item()\n"
        "    return total",
        "micro-batches (1, 5)",
    ),
    (
        "17.4",
        "_right = accumulate\n"
        "def accumulate(model, micro_batches):\n"
        "    _right(model, micro_batches)\n"
        "    n = sum(int((y != -100).sum()) for _, y in micro_batches)\n"
        "    return sum(F.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction='sum').item()\n"
        "               for x, y in micro_batches)",  # the gradients right, the loss a sum (not divided by n)
        "the returned loss should be",
    ),
    (
        "17.4",
        "_right = accumulate\n"
        "def accumulate(model, micro_batches):\n"
        "    _right(model, micro_batches)\n"
        "    means = [F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item() for x, y in micro_batches]\n"
        "    return sum(means) / len(means)",  # the gradients right, the loss the mean of the micro-batch means
        "the returned loss should be",
    ),
    (
        "17.4",
        "_right = accumulate\n"
        "def accumulate(model, micro_batches):\n"
        "    for batch in micro_batches:\n"
        "        model.zero_grad()\n"  # the gradients cleared before each micro-batch: only the last one is left
        "        loss = _right(model, [batch])\n"
        "    return loss",
        "is off by",
    ),
    (
        "17.4",
        "_right = accumulate\n"
        "def accumulate(model, micro_batches):\n"
        "    _right(model, micro_batches)\n"
        "    return None",  # the gradients right, the loss not returned
        "the returned loss should be",
    ),
    (
        "17.4",
        "def accumulate(model, micro_batches):\n"
        "    return float(F.cross_entropy(model(micro_batches[0][0]).flatten(0, 1), micro_batches[0][1].flatten()))",
        "has no gradient",  # no backward at all
    ),
]


@pytest.mark.parametrize(("ex_id", "wrong", "message"), WRONG, ids=[f"{e}-{i}" for i, (e, _, _) in enumerate(WRONG)])
def test_wrong_answers_are_rejected(solved, ex_id, wrong, message):
    namespace, checks = solved
    namespace = dict(namespace)
    run_source(wrong, namespace)
    with pytest.raises(AssertionError, match=re.escape(message)):
        run_source(checks[ex_id], namespace)
