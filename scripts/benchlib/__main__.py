"""`python -m benchlib` is scripts/bench."""

import sys

from benchlib.cli import main

sys.exit(main())
