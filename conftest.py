"""Root pytest configuration: the course's nbval plugin, and a fast parallel run of the README's test command.

- Loads the nbval plugin that forgives one unit in a float's last printed digit (tests/nbval_float_tolerance.py).
- Under xdist (`-n 2`), each worker and the Jupyter kernels it starts run torch on cpu_count // workers threads
  (one each on two cores) unless OMP_NUM_THREADS is set: two workers with two threads each would put four busy
  threads on two cores, and OpenMP threads that wait for a descheduled peer burn CPU for nothing. Stored
  outputs hold on any thread count (tools/check_cpu_variants.sh checks 1, 2 and 4), and cells or tests that
  call torch.set_num_threads themselves still get what they ask for.
- Under `--dist loadfile`, files start in order of their measured CPU cost (tools/test_durations.json, longest
  first), so that no long notebook starts last and keeps one worker busy while the other idles.
"""

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).parent
sys.path.insert(0, str(ROOT / "tests"))

import nbval_float_tolerance  # noqa: E402, F401  (patches nbval's output comparison on import)

DURATIONS = ROOT / "tools" / "test_durations.json"  # CPU seconds per test file (tools/cputime_report.py writes it)


def _threads_per_worker() -> int | None:
    """Torch threads for one xdist worker, or None when not in a worker or when OMP_NUM_THREADS is set."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers is None or "OMP_NUM_THREADS" in os.environ:
        return None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cpus // max(1, int(workers)))


# At import, before any test module (or tests/conftest.py) imports torch; kernels inherit the variable.
_THREADS = _threads_per_worker()
if _THREADS is not None:
    os.environ["OMP_NUM_THREADS"] = str(_THREADS)
    if "torch" in sys.modules:  # a plugin imported it first: set the running pool too
        sys.modules["torch"].set_num_threads(_THREADS)


def pytest_configure(config):
    """Let the cost order below decide which file starts first (xdist would sort files by test count)."""
    if getattr(config.option, "dist", "no") in ("loadfile", "loadscope") and DURATIONS.is_file():
        config.option.loadscopereorder = False


def _estimated_cost(path: str, known: dict[str, float]) -> float:
    """Measured CPU seconds of a file; for a file not measured yet, the mean of files of its kind."""
    if path in known:
        return known[path]
    same_kind = [cost for name, cost in known.items() if Path(name).suffix == Path(path).suffix]
    return sum(same_kind) / len(same_kind) if same_kind else 0.0


def pytest_collection_modifyitems(config, items):
    """In xdist workers, order whole files by cost, most expensive first (tests within a file keep their order)."""
    if "PYTEST_XDIST_WORKER" not in os.environ or not DURATIONS.is_file():
        return
    known = json.loads(DURATIONS.read_text(encoding="utf-8"))
    by_file: dict[str, list] = {}
    for item in items:
        by_file.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    # sorted() is stable: files of equal cost keep their collection order, the same in every worker
    order = sorted(by_file, key=lambda path: -_estimated_cost(path, known))
    items[:] = [item for path in order for item in by_file[path]]
