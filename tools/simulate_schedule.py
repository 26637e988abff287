"""Predict when two xdist workers finish a `--dist loadfile` run, from the CPU seconds per file of a measured run.

Files are handed out whole, in a given order, each to the worker that runs out of work first (greedy list
scheduling; xdist's two-item prefetch is ignored). Two orders are compared: xdist's default (files with more
tests first) and the root conftest.py's (files with more measured CPU seconds first). The figures are a model of
the schedule on an idle machine where a worker gets one core, not a measurement.

Usage: python tools/simulate_schedule.py DIR [--workers 2] [--extra 180]
(DIR holds tools/pytest_cputime.py's records; --extra adds a file of that many CPU seconds per new notebook, e.g.
to see the effect of notebooks that are not measured yet.)
"""

from __future__ import annotations

import argparse
import heapq
from pathlib import Path

from cputime_report import load, per_file


def makespan(order: list[tuple[str, float]], workers: int) -> tuple[float, list[float]]:
    """The time the last worker finishes, and each worker's busy seconds, for files handed out in `order`."""
    free_at = [(0.0, w) for w in range(workers)]
    heapq.heapify(free_at)
    busy = [0.0] * workers
    for _, cost in order:
        start, w = heapq.heappop(free_at)
        busy[w] += cost
        heapq.heappush(free_at, (start + cost, w))
    return max(t for t, _ in free_at), busy


def main() -> None:
    """Print the predicted finish time of both orders."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--extra", type=float, nargs="*", default=[], help="CPU seconds of files not measured")
    args = parser.parse_args()
    files = per_file(load(args.directory))
    entries = [(name, f["cpu"], f["items"]) for name, f in files.items()]
    entries += [(f"new-{i}.ipynb", cost, 30) for i, cost in enumerate(args.extra)]
    total = sum(cost for _, cost, _ in entries)
    by_count = [(n, c) for n, c, _ in sorted(entries, key=lambda e: -e[2])]
    by_cost = [(n, c) for n, c, _ in sorted(entries, key=lambda e: -e[1])]
    even = total / args.workers
    print(f"{len(entries)} files, {total:.0f} CPU s; an even split on {args.workers} workers: {even:.0f} s each")
    for label, order in [("xdist default (most tests first)", by_count), ("conftest.py (most CPU first)", by_cost)]:
        end, busy = makespan(order, args.workers)
        print(f"  {label:34}: last worker done at {end:5.0f} s; busy " + ", ".join(f"{b:.0f}" for b in busy))


if __name__ == "__main__":
    main()
