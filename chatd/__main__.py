"""`python -m chatd`: the command-line entry point."""

from __future__ import annotations

import sys

from chatd.cli import main

sys.exit(main())
