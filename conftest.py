"""Root pytest configuration: load the course's nbval plugin for every run (tests and notebooks)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "tests"))

import nbval_float_tolerance  # noqa: E402, F401  (patches nbval's output comparison on import)
