"""How the bus reaches Redis: PUBLISH/SUBSCRIBE on one Redis, SPUBLISH/SSUBSCRIBE on a cluster.

`chatd/bus.py` decides what goes on which channel and in which order; a transport carries it.
Both transports answer the same calls: `open` (a new subscriber connection, subscribed to every
channel given, at once), `subscribe`/`unsubscribe` one channel, `events` (what Redis sends:
messages, subscription confirmations, and `ready` once every channel given to `open` is
subscribed), `publish` (a batch, in order per channel; what could not leave is handed back)
and `close`.

On a cluster a channel lives on the master owning its slot (docs/design.md, Redis Cluster).
The transport keeps the slot map (CLUSTER SLOTS), one subscriber connection per master
(`chatd/bus_link.py`) and one publishing client per master. Anything that says the map is
stale (a MOVED reply, a node gone, an owner changed in the map it reads every
TOPOLOGY_CHECK_SECS) ends the subscription as a whole: the bus opens it again on the new
owners and repairs every followed room from the store, as after losing one Redis.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any, NamedTuple
from urllib.parse import unquote, urlparse

import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import RedisError

from chatd.bus_link import Link, node_client

log = logging.getLogger(__name__)

# How often a cluster subscription re-reads the slot map to notice a failover or a slot moved
# while its own connections stay up (an old master coming back as a replica).
TOPOLOGY_CHECK_SECS = 2.0
SOCKET_TIMEOUT_SECS = 2.0


class Event(NamedTuple):
    kind: str  # "message", "subscribe" (one channel confirmed) or "ready"
    channel: str
    data: bytes


Item = tuple[float, str, str]  # (queued at, channel, payload)


class StaleTopology(RedisError):
    """The cluster's slot map changed under a subscription."""


class ServerTransport:
    """One Redis: one subscriber connection, one publishing connection (its pipelines keep
    the order of the publishes)."""

    def __init__(self, url: str, client_name: str | None) -> None:
        self._url = url
        self._client_name = client_name
        self._sub: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._pub: aioredis.Redis | None = None
        self._opening: str | None = None

    async def open(self, first: str, channels: list[str]) -> None:
        await self.close_subscriber()
        self._sub = aioredis.Redis.from_url(
            self._url,
            socket_connect_timeout=SOCKET_TIMEOUT_SECS,
            client_name=self._client_name,
        )
        self._pubsub = self._sub.pubsub()
        # One SUBSCRIBE of every channel: its first confirmation means Redis applied all.
        self._opening = first
        await self._pubsub.subscribe(first, *channels)

    async def subscribe(self, channel: str) -> None:
        if self._pubsub is not None:
            await self._pubsub.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        if self._pubsub is not None:
            await self._pubsub.unsubscribe(channel)

    async def events(self) -> AsyncIterator[Event]:
        async for message in self._pubsub.listen():
            kind = message["type"]
            if kind == "message":
                yield Event("message", "", message["data"])
            elif kind == "subscribe":
                channel = message["channel"].decode()
                yield Event("subscribe", channel, b"")
                if channel == self._opening:
                    self._opening = None
                    yield Event("ready", channel, b"")

    async def publish(self, batch: list[Item]) -> tuple[list[Item], Exception | None]:
        try:
            if self._pub is None:
                self._pub = aioredis.Redis.from_url(
                    self._url,
                    socket_connect_timeout=SOCKET_TIMEOUT_SECS,
                    socket_timeout=SOCKET_TIMEOUT_SECS,
                    client_name=self._client_name,
                )
            # One pipeline on one connection: Redis applies the publishes in this order.
            pipe = self._pub.pipeline(transaction=False)
            for _, channel, payload in batch:
                pipe.publish(channel, payload)
            await pipe.execute()
        except (RedisError, OSError) as exc:
            return batch, exc
        return [], None

    async def close_subscriber(self) -> None:
        pubsub, sub, self._pubsub, self._sub = self._pubsub, self._sub, None, None
        for connection in (pubsub, sub):
            if connection is not None:
                with contextlib.suppress(RedisError, OSError):
                    await connection.aclose()

    async def close(self) -> None:
        await self.close_subscriber()
        if self._pub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pub.aclose()
            self._pub = None


class SlotMap:
    """Which master owns which slot, read with CLUSTER SLOTS from any node that answers."""

    def __init__(self, seeds: list[tuple[str, int]], options: dict[str, Any]) -> None:
        self._seeds = seeds
        self._options = options
        self._starts: list[int] = []
        self._owners: list[tuple[str, int]] = []
        self._clients: dict[tuple[str, int], aioredis.Redis] = {}

    def client(self, node: tuple[str, int]) -> aioredis.Redis:
        """The command (and publishing) client of one node, made once."""
        found = self._clients.get(node)
        if found is None:
            found = self._clients[node] = node_client(node, self._options)
        return found

    def owner(self, channel: str) -> tuple[str, int]:
        if not self._owners:
            raise StaleTopology("no slot map yet")
        slot = key_slot(channel.encode())
        return self._owners[bisect.bisect_right(self._starts, slot) - 1]

    def owners(self) -> set[tuple[str, int]]:
        return set(self._owners)

    async def refresh(self) -> bool:
        """Read the map again; True if an owner changed."""
        nodes = list(dict.fromkeys([*self._owners, *self._seeds, *self._clients]))
        problem: Exception | None = None
        for node in nodes:
            try:
                client = self.client(node)
                raw = await client.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
            except (RedisError, OSError) as exc:
                problem = exc
                continue
            ranges = sorted(
                (int(r[0]), (_text(r[2][0]) or node[0], int(r[2][1]))) for r in raw if len(r) > 2
            )
            if not ranges:
                continue
            starts = [start for start, _ in ranges]
            owners = [owner for _, owner in ranges]
            changed = (starts, owners) != (self._starts, self._owners)
            self._starts, self._owners = starts, owners
            return changed
        raise StaleTopology(f"no cluster node answered CLUSTER SLOTS ({problem!r})")

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()


class ClusterTransport:
    """A Redis Cluster: sharded pub/sub, one subscriber connection per master."""

    def __init__(self, url: str, nodes: list[tuple[str, int]], client_name: str | None) -> None:
        parsed = urlparse(url)
        options: dict[str, Any] = {
            "username": unquote(parsed.username) if parsed.username else None,
            "password": unquote(parsed.password) if parsed.password else None,
            "ssl": parsed.scheme == "rediss",
            "client_name": client_name,
            "socket_timeout": SOCKET_TIMEOUT_SECS,
            "socket_connect_timeout": SOCKET_TIMEOUT_SECS,
        }
        seeds = [(parsed.hostname or "127.0.0.1", parsed.port or 6379), *nodes]
        self._map = SlotMap(seeds, options)
        self._options = options
        self._links: dict[tuple[str, int], Link] = {}
        self._channel_link: dict[str, Link] = {}
        self._events: asyncio.Queue[Event | BaseException] = asyncio.Queue()
        self._readers: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._waiting: set[str] = set()  # given to open() and not confirmed yet
        self._unsubscribing: dict[str, int] = {}  # SUNSUBSCRIBEs sent, not confirmed
        self._open = False

    async def open(self, first: str, channels: list[str]) -> None:
        await self.close_subscriber()
        await self._map.refresh()
        wanted = list(dict.fromkeys([first, *channels]))
        self._waiting = set(wanted)
        self._open = True
        for channel in wanted:
            await self._subscribe(channel)

    async def _subscribe(self, channel: str) -> None:
        owner = self._map.owner(channel)
        link = self._links.get(owner)
        if link is None:
            link = self._links[owner] = Link(owner, self._options)
        # SSUBSCRIBE takes channels of one slot only: one command per channel.
        await link.subscribe(channel)
        self._channel_link[channel] = link
        if owner not in self._readers:
            self._readers[owner] = asyncio.get_running_loop().create_task(self._read(link))

    async def subscribe(self, channel: str) -> None:
        if not self._open:
            return
        try:
            await self._subscribe(channel)
        except Exception as exc:
            # Maybe a master this subscription has no link to yet, or one gone: open it all
            # again, or the channel would stay unsubscribed while the others go on.
            self._events.put_nowait(exc)
            raise

    async def unsubscribe(self, channel: str) -> None:
        link = self._channel_link.pop(channel, None)
        if link is not None:
            self._unsubscribing[channel] = self._unsubscribing.get(channel, 0) + 1
            await link.unsubscribe(channel)

    async def _read(self, link: Link) -> None:
        try:
            async for kind, channel, data in link.messages():
                if kind == "smessage":
                    self._events.put_nowait(Event("message", channel, data))
                elif kind == "ssubscribe":
                    self._events.put_nowait(Event("subscribe", channel, b""))
                    if channel in self._waiting:
                        self._waiting.discard(channel)
                        if not self._waiting:
                            self._events.put_nowait(Event("ready", channel, b""))
                elif kind == "sunsubscribe":
                    asked = self._unsubscribing.pop(channel, 0)
                    if asked > 1:
                        self._unsubscribing[channel] = asked - 1
                    elif not asked:
                        # Not asked for: its slot moved to another master.
                        raise StaleTopology(f"{channel} left {link.node}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._events.put_nowait(exc)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(TOPOLOGY_CHECK_SECS)
            try:
                changed = await self._map.refresh()
            except StaleTopology as exc:
                self._events.put_nowait(exc)
                return
            if changed and any(
                self._map.owner(channel) != link.node
                for channel, link in self._channel_link.items()
            ):
                self._events.put_nowait(StaleTopology("slot owners changed"))
                return

    async def events(self) -> AsyncIterator[Event]:
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        while True:
            event = await self._events.get()
            if isinstance(event, BaseException):
                raise event
            yield event

    async def publish(self, batch: list[Item]) -> tuple[list[Item], Exception | None]:
        """Each master gets its share in one pipeline, all at once; what a master did not
        take is handed back in order, and the map is read again before the next try."""
        by_node: dict[tuple[str, int], list[Item]] = {}
        try:
            for item in batch:
                by_node.setdefault(self._map.owner(item[1]), []).append(item)
        except StaleTopology as exc:
            await self._refresh_quietly()
            return batch, exc
        nodes = list(by_node)
        results = await asyncio.gather(
            *(self._send(node, by_node[node]) for node in nodes), return_exceptions=True
        )
        failed = {id(i) for node, r in zip(nodes, results, strict=True) if r for i in by_node[node]}
        if not failed:
            return [], None
        problem = next(r for r in results if isinstance(r, Exception))
        await self._refresh_quietly()
        return [item for item in batch if id(item) in failed], problem

    async def _send(self, node: tuple[str, int], items: list[Item]) -> Exception | None:
        try:
            pipe = self._map.client(node).pipeline(transaction=False)
            for _, channel, payload in items:
                pipe.spublish(channel, payload)
            await pipe.execute()
        except Exception as exc:  # whatever it was, the publisher goes on and retries
            return exc
        return None

    async def _refresh_quietly(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._map.refresh()

    async def close_subscriber(self) -> None:
        self._open = False
        tasks = list(self._readers.values())
        if self._watcher is not None:
            tasks.append(self._watcher)
        self._readers, self._watcher = {}, None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        links, self._links, self._channel_link = list(self._links.values()), {}, {}
        self._unsubscribing = {}
        for link in links:
            await link.close()
        self._events = asyncio.Queue()

    async def close(self) -> None:
        await self.close_subscriber()
        await self._map.close()


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def make_transport(
    url: str, cluster: bool, nodes: Iterable[tuple[str, int]], client_name: str | None
) -> ServerTransport | ClusterTransport:
    if cluster:
        return ClusterTransport(url, list(nodes), client_name)
    return ServerTransport(url, client_name)
