"""The Redis Cluster of scripts/benchlib/rediscluster.py for tests: on loopback ports
7101-7106 unless CHATD_TEST_CLUSTER_PORT names another first port, and skipped where
redis-server or redis-cli is missing."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchlib import rediscluster
from benchlib.rediscluster import RedisCluster

FIRST_PORT = int(os.environ.get("CHATD_TEST_CLUSTER_PORT", "7101"))

__all__ = ["FIRST_PORT", "RedisCluster", "redis_cluster"]


@contextlib.contextmanager
def redis_cluster(
    base: Path,
    first_port: int = FIRST_PORT,
    host: str = "127.0.0.1",
    password: str | None = None,
) -> Iterator[RedisCluster]:
    if not rediscluster.tools_present():
        pytest.skip("redis-server and redis-cli are needed for a Redis Cluster")
    with rediscluster.redis_cluster(base, first_port, host, password) as cluster:
        yield cluster
