"""Per-connection token bucket for chat messages (docs/guarantees.md, Limits)."""

from __future__ import annotations

import time


class TokenBucket:
    __slots__ = ("_capacity", "_rate_per_sec", "_stamp", "_tokens")  # three per connection

    def __init__(self, burst: int, per_minute: int) -> None:
        self._capacity = float(burst)
        self._tokens = float(burst)
        self._rate_per_sec = per_minute / 60.0
        self._stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate_per_sec)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
