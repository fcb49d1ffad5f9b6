"""One subscriber connection of the cluster bus to one master, for sharded channels.

redis-py's pub/sub reconnects by itself and subscribes again without a word, which would hide
from the bus that messages were lost meanwhile; a link fails loudly instead (no retries), and
checks with ROLE, before its first SSUBSCRIBE, that its node is still a master: a replica
would accept the subscription and go on relaying its shard's messages only while it follows
that shard's master.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

# How long one read of a link waits before it looks again (it does not end the link).
READ_WAIT_SECS = 1.0


def node_client(node: tuple[str, int], options: dict[str, Any]) -> aioredis.Redis:
    """A client of one node that reports a lost connection instead of retrying it."""
    return aioredis.Redis(host=node[0], port=node[1], retry=Retry(NoBackoff(), 0), **options)


class NotMaster(RedisError):
    """The node a link was opened to is no longer a master."""


class Link:
    def __init__(self, node: tuple[str, int], options: dict[str, Any]) -> None:
        self.node = node
        self._client = node_client(node, options)
        self._pubsub = self._client.pubsub()
        self._checked = False

    async def subscribe(self, channel: str) -> None:
        if not self._checked:
            role = await self._client.execute_command("ROLE")  # type: ignore[no-untyped-call]
            if _text(role[0]) != "master":
                raise NotMaster(f"{self.node[0]}:{self.node[1]} is a {_text(role[0])}")
            self._checked = True
        await self._pubsub.ssubscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        with contextlib.suppress(RedisError, OSError):  # the subscription ends with the link
            await self._pubsub.sunsubscribe(channel)

    async def messages(self) -> AsyncIterator[tuple[str, str, bytes]]:
        """(type, channel, data) of what the node sends, until the connection fails."""
        while True:
            message = await self._pubsub.get_message(timeout=READ_WAIT_SECS)
            if message is None:
                continue
            data = message["data"] if isinstance(message["data"], bytes) else b""
            yield message["type"], _text(message["channel"]), data

    async def close(self) -> None:
        for connection in (self._pubsub, self._client):
            with contextlib.suppress(RedisError, OSError):
                await connection.aclose()


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
