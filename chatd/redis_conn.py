"""The command client for one Redis or a Redis Cluster, and redis-py's cluster quirks.

Every key chatd keeps is single-slot per command (a room's keys share the hash tag `{room}`),
so the rest of the code calls the same methods on either client. What differs lives here: a
cluster pipeline cannot load scripts on the nodes it reaches (`EVALSHA` in it fails with
NOSCRIPT on a node that never saw the script, and on a replica just promoted), so queued
scripts go as `EVAL`; a script that serves several rooms at once on one Redis runs once per
slot on a cluster (`by_slot`); and the cluster client closes without `close_connection_pool`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeAlias, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.commands.core import AsyncScript

from chatd.config import Settings

RedisClient: TypeAlias = "aioredis.Redis | RedisCluster"
Item = TypeVar("Item", bound=Hashable)
Pipeline: TypeAlias = "aioredis.client.Pipeline | ClusterPipeline"

# A cluster client keeps a pool per node and fails at once (it does not wait) when one is
# exhausted; per node it sees a share of the load, so the same size per node leaves room.
CLUSTER_RETRY_ATTEMPTS = 3


def make_client(
    settings: Settings,
    *,
    max_connections: int,
    timeout_secs: float,
    client_name: str,
    decode_responses: bool = False,
) -> RedisClient:
    """A client for `redis.url`: a blocking pool on one Redis (in a storm of joins commands
    wait for a connection, up to the timeout, instead of failing with "Too many
    connections"), or a cluster client starting from the URL's node and `cluster_nodes`."""
    if settings.redis_cluster:
        return RedisCluster.from_url(
            settings.redis_url,
            startup_nodes=[ClusterNode(host, port) for host, port in settings.cluster_nodes],
            max_connections=max_connections,
            socket_timeout=timeout_secs,
            socket_connect_timeout=timeout_secs,
            client_name=client_name or None,
            decode_responses=decode_responses,
            cluster_error_retry_attempts=CLUSTER_RETRY_ATTEMPTS,
        )
    return aioredis.Redis(
        connection_pool=aioredis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=max_connections,
            timeout=timeout_secs,
            socket_timeout=timeout_secs,
            socket_connect_timeout=timeout_secs,
            decode_responses=decode_responses,
            client_name=client_name or None,
        )
    )


async def queue_script(
    pipe: Pipeline, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]
) -> None:
    """Queue `script` on `pipe`. One Redis: as redis-py does (EVALSHA, loaded once at
    execute); a cluster pipeline: as EVAL, which every node runs without loading."""
    if isinstance(pipe, ClusterPipeline):
        pipe.eval(str(script.script), len(keys), *keys, *args)
    else:
        await script(keys=keys, args=args, client=pipe)


def is_cluster(client: RedisClient) -> bool:
    return isinstance(client, RedisCluster)


def by_slot(
    client: RedisClient, items: Sequence[Item], key: Callable[[Item], str]
) -> list[list[Item]]:
    """`items` in groups whose keys one script call may touch: all of them on one Redis, those
    of one hash slot each on a cluster (in the order they first appear)."""
    if not isinstance(client, RedisCluster):
        return [list(items)] if items else []
    groups: dict[int, list[Item]] = {}
    for item in items:
        groups.setdefault(client.keyslot(key(item)), []).append(item)
    return list(groups.values())


async def close(client: RedisClient) -> None:
    """Close the client and every connection it holds."""
    if isinstance(client, RedisCluster):
        await client.aclose()
    else:
        await client.aclose(close_connection_pool=True)
