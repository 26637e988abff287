"""Chapter 12's exercises: the notebooks keep test_exercises.py's shape, and every self-check rejects wrong answers.

The structural tests are test_exercises.py's own, run here for ch12. The self-checks are then executed outside
Jupyter, straight from the solutions notebook: with the reference solution (and float32 variants) they pass and
leave the learner's names alone; with each wrong answer below they raise AssertionError.
"""

from __future__ import annotations

import pytest
import test_exercises as base
from test_exercises import (  # noqa: F401 (collected here for ch12 with the fixture below)
    test_check_cells_are_identical,
    test_checks_fail_in_the_blank_state,
    test_every_exercise_has_one_check_after_its_code,
    test_execution_counts_run_in_order,
    test_exercises_are_numbered_in_order,
    test_learner_cells_are_blank,
    test_no_synced_cells,
    test_solutions_store_no_errors,
    test_statements_are_identical,
)

CHAPTER = "ch12"
base.MIN_EXERCISES.setdefault(CHAPTER, 5)  # the banded mask, global layers, cache bytes, receptive field, ring rows


@pytest.fixture
def chapter():
    return CHAPTER


def _cells():
    """(imports source, {exercise id: (solution source, check source)}) from the solutions notebook."""
    nb = base.load(CHAPTER, "solutions")
    code = [c for c in nb.cells if c.cell_type == "code"]
    solutions = dict(base.cells_matching(nb, base.SOLUTION, "code"))
    checks = dict(base.cells_matching(nb, base.CHECK, "code"))
    return code[0].source, {ex: (solutions[ex], checks[ex]) for ex in checks}


IMPORTS, EXERCISES = _cells()


def _namespace(answer: str) -> dict:
    namespace: dict = {}
    exec(IMPORTS, namespace)  # outside IPython: get_ipython() is None, the one-line error hook is skipped
    exec(answer, namespace)
    return namespace


def _run_check(exercise: str, answer: str) -> dict:
    namespace = _namespace(answer)
    exec(EXERCISES[exercise][1], namespace)
    return namespace


HEADER = {
    "12.1": "def band_mask(seq_len, window):\n"
    "    i = torch.arange(seq_len)[:, None]\n"
    "    j = torch.arange(seq_len)[None, :]\n",
}

WRONG = {
    "12.1": {
        "one too many (i - j <= window)": HEADER["12.1"] + "    return (i - j >= 0) & (i - j <= window)\n",
        "not causal (|i - j| < window)": HEADER["12.1"] + "    return (i - j).abs() < window\n",
        "plain causal mask": HEADER["12.1"] + "    return i >= j\n",
        "int instead of bool": HEADER["12.1"] + "    return ((i - j >= 0) & (i - j < window)).int()\n",
    },
    "12.2": {
        "counted from 1": "def global_layers(n, p=6):\n    return [i + 1 for i in range(n) if (i + 1) % p == 0]\n"
        "gemma3_1b_globals = global_layers(26)\ngemma3_1b_local_count = 22\n",
        "i % pattern == 0": "def global_layers(n, p=6):\n    return [i for i in range(n) if i % p == 0]\n"
        "gemma3_1b_globals = global_layers(26)\ngemma3_1b_local_count = 21\n",
        "last layer taken as global": "def global_layers(n, p=6):\n"
        "    return sorted({i for i in range(n) if (i + 1) % p == 0} | {n - 1})\n"
        "gemma3_1b_globals = global_layers(26)\ngemma3_1b_local_count = 21\n",
        "forgot the return (None)": "def global_layers(n, p=6):\n    [i for i in range(n) if (i + 1) % p == 0]\n"
        "gemma3_1b_globals = [5, 11, 17, 23]\ngemma3_1b_local_count = 22\n",
        "fractional indices": "def global_layers(n, p=6):\n"
        "    return [i + 0.5 for i in range(n) if (i + 1) % p == 0]\n"
        "gemma3_1b_globals = global_layers(26)\ngemma3_1b_local_count = 22\n",
        "right function, wrong local count": "def global_layers(n, p=6):\n"
        "    return [i for i in range(n) if (i + 1) % p == 0]\n"
        "gemma3_1b_globals = global_layers(26)\ngemma3_1b_local_count = 26 * 5 // 6\n",
    },
    "12.3": {
        "local layers not capped": "def cache_bytes(cfg, n, batch_size=1, bytes_per_value=2):\n"
        "    return 2 * batch_size * cfg.n_kv_heads * cfg.head_dim * bytes_per_value * n * cfg.n_layers\n"
        "saved_at_32k = 0.8333\n",
        "capped at window - 1 (transformers' count)": "def cache_bytes(cfg, n, batch_size=1, bytes_per_value=2):\n"
        "    rows = sum(min(cfg.sliding_window - 1, n) if k == 'local' else n for k in cfg.layer_types)\n"
        "    return 2 * batch_size * cfg.n_kv_heads * cfg.head_dim * bytes_per_value * rows\n"
        "saved_at_32k = 0.8333\n",
        "keys only, no values": "def cache_bytes(cfg, n, batch_size=1, bytes_per_value=2):\n"
        "    rows = sum(min(cfg.sliding_window, n) if k == 'local' else n for k in cfg.layer_types)\n"
        "    return batch_size * cfg.n_kv_heads * cfg.head_dim * bytes_per_value * rows\n"
        "saved_at_32k = 0.8333\n",
        "right function, the limit 22/26 instead of the 32k figure": "def cache_bytes(cfg, n, batch_size=1, "
        "bytes_per_value=2):\n"
        "    rows = sum(min(cfg.sliding_window, n) if k == 'local' else n for k in cfg.layer_types)\n"
        "    return 2 * batch_size * cfg.n_kv_heads * cfg.head_dim * bytes_per_value * rows\n"
        "saved_at_32k = 22 / 26\n",
    },
    "12.4": {
        "window steps per layer": "def earliest_reachable(p, n, w):\n    return max(0, p - n * w)\n",
        "no clamp at 0": "def earliest_reachable(p, n, w):\n    return p - n * (w - 1)\n",
        "one layer only": "def earliest_reachable(p, n, w):\n    return max(0, p - (w - 1))\n",
        "clamped at 1, not 0": "def earliest_reachable(p, n, w):\n    return max(1, p - n * (w - 1))\n",
    },
    "12.5": {
        "in position order": "def ring_contents(n, slots):\n"
        "    held = list(range(max(0, n - slots), n))\n    return held + [-1] * (slots - len(held))\n",
        "newest first": "def ring_contents(n, slots):\n"
        "    held = list(range(n - 1, max(-1, n - slots - 1), -1))\n    return held + [-1] * (slots - len(held))\n",
        "empty rows as 0": "def ring_contents(n, slots):\n    rows = [0] * slots\n"
        "    for p in range(n):\n        rows[p % slots] = p\n    return rows\n",
        "forgot the return (None)": "def ring_contents(n, slots):\n    rows = [-1] * slots\n"
        "    for p in range(n):\n        rows[p % slots] = p\n",
        "only the filled rows": "def ring_contents(n, slots):\n    return [p for p in range(max(0, n - slots), n)]\n",
    },
}

# right answers written differently from the solutions: float32 tensors and numbers, other spellings
RIGHT_VARIANTS = {
    "12.1": "def band_mask(seq_len, window):\n"
    "    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril() & ~torch.ones(seq_len, seq_len, "
    "dtype=torch.bool).tril(-window)\n",
    "12.3": "def cache_bytes(cfg, n, batch_size=1, bytes_per_value=2):\n"
    "    rows = torch.tensor([min(cfg.sliding_window, n) if k == 'local' else n for k in cfg.layer_types])\n"
    "    return int(rows.sum()) * 2 * batch_size * cfg.n_kv_heads * cfg.head_dim * bytes_per_value\n"
    "_c = config_from_hf(GEMMA3_1B_CONFIG)\n"
    "saved_at_32k = torch.tensor(1 - cache_bytes(_c, 32768) / cache_bytes(_c.with_(layer_types=('global',) * 26), "
    "32768), dtype=torch.float32).item()\n",
    "12.4": "def earliest_reachable(p, n, w):\n    return int(torch.tensor(float(p - n * (w - 1))).clamp(min=0))\n",
    "12.2": "def global_layers(n, p=6):\n    return torch.arange(p - 1, n, p, dtype=torch.float32)\n"
    "gemma3_1b_globals = global_layers(26)\ngemma3_1b_local_count = torch.tensor(26.0) - len(gemma3_1b_globals)\n",
    "12.5": "def ring_contents(n, slots):\n"
    "    positions = torch.arange(max(0, n - slots), n, dtype=torch.float32)  # only the last `slots` stay\n"
    "    rows = torch.full((slots,), -1.0)\n"
    "    rows[(positions % slots).long()] = positions  # distinct rows: no write order to rely on\n"
    "    return rows\n",
}


def test_every_exercise_has_wrong_answers_here():
    assert sorted(EXERCISES) == sorted(WRONG) == [f"12.{i}" for i in range(1, 6)]


@pytest.mark.parametrize("exercise", sorted(EXERCISES))
def test_solution_passes_and_leaves_learner_names_alone(exercise, capsys):
    namespace = _namespace(EXERCISES[exercise][0])
    before = {name: value for name, value in namespace.items() if not name.startswith("__")}
    exec(EXERCISES[exercise][1], namespace)
    assert f"自检 {exercise} 通过" in capsys.readouterr().out
    after = {name: value for name, value in namespace.items() if not name.startswith("__")}
    assert set(after) - set(before) == {f"_self_check_{exercise.replace('.', '_')}"}
    assert all(after[name] is value for name, value in before.items()), "the self-check rebound a learner's name"


@pytest.mark.parametrize("exercise", sorted(RIGHT_VARIANTS))
def test_other_right_answers_pass(exercise, capsys):
    _run_check(exercise, RIGHT_VARIANTS[exercise])
    assert f"自检 {exercise} 通过" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("exercise", "label"), [(ex, label) for ex, answers in sorted(WRONG.items()) for label in answers]
)
def test_self_check_rejects_wrong_answer(exercise, label):
    with pytest.raises(AssertionError) as excinfo:
        _run_check(exercise, WRONG[exercise][label])
    message = str(excinfo.value)
    assert message and "\n" not in message.strip(), f"{exercise} ({label}): the rejection says nothing useful"


def test_blank_answers_fail_with_not_implemented():
    nb = base.load(CHAPTER, "exercises")
    for cell in nb.cells:
        if cell.cell_type == "code" and base.CHECK.match(base.first_line(cell)):
            (error,) = [o for o in cell.outputs if o.output_type == "error"]
            assert error.ename == "NotImplementedError" and len(error.traceback) == 1  # one line, no traceback
