"""Unsafe deployments are refused at start (docs/guarantees.md G8)."""

from __future__ import annotations

import pytest

from chatd.config import ConfigError, load_settings


def problems(**env: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    return info.value.problems


def test_redis_on_the_network_without_password_is_refused():
    (problem,) = problems(CHATD_REDIS_URL="redis://10.1.2.3:6379/0")
    assert problem.startswith("CHATD_REDIS_URL=") and "password" in problem


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://localhost/0",
        "redis://:secret@10.1.2.3:6379/0",
        "rediss://user:secret@redis.example:6380/0",
        "unix:///run/redis.sock",
    ],
)
def test_loopback_or_password_protected_redis_is_accepted(url):
    assert load_settings(environ={"CHATD_REDIS_URL": url}).redis_url == url


def test_wildcard_origin_and_oversized_frames_are_refused_together():
    found = problems(CHATD_SERVER_CORS_ORIGINS="*", CHATD_LIMITS_FRAME_BYTES="2000000")
    assert any(p.startswith("CHATD_SERVER_CORS_ORIGINS=") for p in found)
    assert any(p.startswith("CHATD_LIMITS_FRAME_BYTES=") for p in found)


def test_sentinel_url_is_refused_with_a_reason():
    [found] = problems(CHATD_REDIS_URL="redis+sentinel://:pw@s1:26379,s2:26379/mymaster/0")
    assert found.startswith("CHATD_REDIS_URL=") and "Sentinel is not supported" in found
