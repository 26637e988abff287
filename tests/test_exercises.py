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
        assert "assert" in code_cells[checks[0]].source, f"self-check {ex_id} asserts nothing"


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
