"""Redis is a trust boundary: whoever can PUBLISH on the bus can push events to every client,
so the Redis chatd runs (here, the test suite's) refuses commands without its password."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import redis

from tests.conftest import IN_CI, Services


def test_a_publish_without_the_password_is_refused(services: Services):
    url = urlsplit(services.redis_url)
    if not url.password:
        message = "this run's Redis has no password (scripts/test gives it one)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    stranger = redis.Redis(host=url.hostname, port=url.port or 6379, socket_connect_timeout=2)
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            stranger.publish(f"{services.redis_prefix}:socketio", '{"method": "emit"}')
    finally:
        stranger.close()
    trusted = redis.Redis.from_url(services.redis_url, socket_connect_timeout=2)
    try:
        assert trusted.ping()
    finally:
        trusted.close()
