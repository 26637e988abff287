"""Summarise the records of tools/pytest_cputime.py: CPU and wall seconds per test file, per worker.

Usage: python tools/cputime_report.py DIR [--top 20] [--json OUT] [--durations tools/test_durations.json]

--durations writes the CPU seconds per file that the root conftest.py uses to start the costliest files first
(measure with the README's command; files in the old table that this run did not measure are kept).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def load(directory: Path) -> list[dict]:
    """All records of one run (every worker's file)."""
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        hint = f"run pytest with CPUTIME_DIR={directory} PYTHONPATH=tools ... -p pytest_cputime"
        raise SystemExit(f"no *.jsonl records in {directory}: {hint}")
    return [json.loads(line) for path in files for line in path.read_text(encoding="utf-8").splitlines()]


def per_file(records: list[dict]) -> dict[str, dict]:
    """CPU seconds (self, children, total), wall seconds, item count, worker and start time per file."""
    files: dict[str, dict] = defaultdict(lambda: {"cpu_self": 0.0, "cpu_children": 0.0, "wall": 0.0, "items": 0})
    for r in records:
        f = files[r["file"]]
        f["cpu_self"] += r["cpu_self"]
        f["cpu_children"] += r["cpu_children"]
        f["wall"] += r["wall"]
        f["items"] += 1
        f.setdefault("start", r["start"])
        f["start"] = min(f["start"], r["start"])
        f["worker"] = r["worker"]
    for f in files.values():
        f["cpu"] = f["cpu_self"] + f["cpu_children"]
    return dict(files)


def main() -> None:
    """Print the per-file table and the per-worker totals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the per-file figures to this file")
    parser.add_argument("--durations", type=Path, help="update this table of CPU seconds per file")
    args = parser.parse_args()
    records = load(args.directory)
    files = per_file(records)
    t0 = min(r["start"] for r in records)
    print(f"{'file':58} {'cpu s':>7} {'kernel':>7} {'wall s':>7} {'items':>5} worker start")
    for name, f in sorted(files.items(), key=lambda kv: -kv[1]["cpu"])[: args.top]:
        print(
            f"{name:58} {f['cpu']:7.1f} {f['cpu_children']:7.1f} {f['wall']:7.1f} {f['items']:5d}"
            f" {f['worker']:>6} {f['start'] - t0:5.0f}"
        )
    workers: dict[str, dict] = defaultdict(lambda: {"cpu": 0.0, "end": 0.0})
    for r in records:
        w = workers[r["worker"]]
        w["cpu"] += r["cpu_self"] + r["cpu_children"]
        w["end"] = max(w["end"], r["start"] + r["wall"] - t0)
    total = sum(f["cpu"] for f in files.values())
    print(f"total: {len(records)} items, {total:.1f} CPU s in test items")
    for name, w in sorted(workers.items()):
        print(f"  worker {name}: {w['cpu']:.1f} CPU s, last item ended at {w['end']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(files, indent=1, sort_keys=True), encoding="utf-8")
    if args.durations:
        table = json.loads(args.durations.read_text(encoding="utf-8")) if args.durations.is_file() else {}
        table |= {name: round(f["cpu"], 1) for name, f in files.items()}
        args.durations.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
