"""Bounded logging of what clients get wrong: a flood of bad clients cannot flood the log."""

from __future__ import annotations

import logging
import time

# Lines of one kind logged per worker per LOG_WINDOW_SECS; beyond that they are only counted.
LOG_LINES_PER_WINDOW = 20
LOG_WINDOW_SECS = 10.0
LOG_LINE_MAX_CHARS = 200


def bounded(text: object) -> str:
    """`text` as a log field: its repr, cut to LOG_LINE_MAX_CHARS."""
    line = repr(text)
    return line if len(line) <= LOG_LINE_MAX_CHARS else line[:LOG_LINE_MAX_CHARS] + "..."


class LogBudget:
    """At most LOG_LINES_PER_WINDOW lines per window; the rest are counted in the next line."""

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self.what = what
        self._log = logger
        self._window_start = 0.0
        self._lines = 0
        self._silenced = 0

    def admit(self) -> bool:
        now = time.monotonic()
        if now - self._window_start > LOG_WINDOW_SECS:
            if self._silenced:
                self._log.info("%d more %s were not logged", self._silenced, self.what)
            self._window_start, self._lines, self._silenced = now, 0, 0
        if self._lines >= LOG_LINES_PER_WINDOW:
            self._silenced += 1
            return False
        self._lines += 1
        return True
