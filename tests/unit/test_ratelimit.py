"""TokenBucket: a burst, then a steady refill, at most the burst (docs/guarantees.md, Limits)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from chatd import ratelimit
from chatd.ratelimit import TokenBucket


class Clock:
    """A settable monotonic clock, so refill is checked without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


def take_all(bucket: TokenBucket, tries: int = 1000) -> int:
    return sum(bucket.take() for _ in range(tries))


def test_bucket_allows_the_burst_then_refuses(clock):
    bucket = TokenBucket(burst=20, per_minute=120)
    assert [bucket.take() for _ in range(20)] == [True] * 20
    assert bucket.take() is False
    assert bucket.take() is False


def test_bucket_refills_at_the_per_minute_rate(clock):
    bucket = TokenBucket(burst=20, per_minute=120)  # 2 per second
    take_all(bucket)
    clock.now += 0.49
    assert bucket.take() is False
    clock.now += 0.01
    assert bucket.take() is True
    assert bucket.take() is False
    clock.now += 5
    assert take_all(bucket) == 10


def test_bucket_never_holds_more_than_the_burst(clock):
    bucket = TokenBucket(burst=5, per_minute=60)
    clock.now += 3600
    assert take_all(bucket) == 5


def test_refused_takes_do_not_consume_tokens(clock):
    bucket = TokenBucket(burst=1, per_minute=60)
    assert bucket.take() is True
    for _ in range(100):
        assert bucket.take() is False
    clock.now += 1.0
    assert bucket.take() is True


def test_sustained_rate_over_a_minute_is_burst_plus_per_minute(clock):
    bucket = TokenBucket(burst=20, per_minute=120)
    allowed = 0
    for _ in range(600):  # one attempt every 0.1 s for 60 s
        allowed += bucket.take()
        clock.now += 0.1
    assert 20 + 118 <= allowed <= 20 + 120


def test_bucket_with_real_clock_allows_its_burst():
    bucket = TokenBucket(burst=3, per_minute=1)
    assert take_all(bucket, 10) == 3
