"""Run the command line: python -m gpt_helpers generate "Hello, I am"."""

import sys

from .cli import main

sys.exit(main())
