"""Redis: the Socket.IO message bus between workers, and cluster-wide presence.

The stock AsyncRedisManager resubscribes after 1, 2, 4 ... 60 s and drops a publish after two
tries without telling anyone (docs/guarantees.md L2 and L3). ChatRedisManager resubscribes
within about a second, publishes through one ordered queue so a sender's messages keep their
order on every worker, and counts what it drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, NamedTuple

from redis.exceptions import RedisError
from socketio import AsyncRedisManager

from chatd import redis_conn
from chatd.bus_transport import make_transport
from chatd.engine import FastFanOut
from chatd.follows import Follows
from chatd.metrics import Metrics

log = logging.getLogger(__name__)

PUBLISH_QUEUE_MAX = 10_000
PUBLISH_BATCH_MAX = 200
# A publish that cannot reach Redis for this long is dropped; receivers fill the gap from
# MongoDB by seq, which stays the source of truth.
PUBLISH_GIVE_UP_SECS = 5.0
RECONNECT_MIN_SECS = 0.1
# Capped at 1 s (not 60 s) so the bus is back within about a second of Redis returning.
RECONNECT_MAX_SECS = 1.0
REDIS_SOCKET_TIMEOUT_SECS = 2.0
PRESENCE_POOL_SIZE = 32
# How long a join waits for Redis to confirm its room's subscription before reading history.
FOLLOW_WAIT_SECS = 2.0
# Rooms left empty by disconnects are unsubscribed this long after the first of them.
SWEEP_SECS = 2.0


def channel_name(prefix: str) -> str:
    return f"{prefix}:socketio"


class Member(NamedTuple):
    user_id: str
    name: str


def parse_member(raw: str) -> Member:
    """A presence entry's identity; entries written before identities hold a bare name."""
    entry = raw.split("|", 2)[-1]
    if entry.startswith("["):
        with contextlib.suppress(ValueError, TypeError):
            user_id, name = json.loads(entry)
            return Member(str(user_id), str(name))
    return Member("", entry)


def distinct(members: Iterable[Member]) -> list[Member]:
    """One entry per identity (its first name in order), sorted by name then user id; entries
    without an identity (written before identities) one per name."""
    by_id: dict[str, Member] = {}
    for m in sorted(members, key=lambda m: (m.name, m.user_id)):
        by_id.setdefault(m.user_id or "\x00" + m.name, m)
    return sorted(by_id.values(), key=lambda m: (m.name, m.user_id))


class ChatRedisManager(AsyncRedisManager, FastFanOut):  # type: ignore[misc]
    """python-socketio's Redis manager with per-room channels.

    A broadcast to a room whose name starts with `room_prefix` is published on that room's
    own channel; everything else (cross-worker disconnects and room changes, broadcasts to
    everyone) on the main channel. A worker subscribes to a room's channel while the room has
    members on it (`chatd/follows.py`), so it receives only its rooms' traffic.
    """

    def __init__(
        self,
        url: str,
        prefix: str,
        metrics: Metrics,
        room_prefix: str,
        client_name: str = "",
        cluster: bool = False,
        cluster_nodes: Iterable[tuple[str, int]] = (),
    ) -> None:
        super().__init__(
            url=url,
            channel=channel_name(prefix),
            redis_options={
                "socket_connect_timeout": REDIS_SOCKET_TIMEOUT_SECS,
                "client_name": client_name or None,
            },
        )
        self._metrics = metrics
        self._transport = make_transport(url, cluster, cluster_nodes, client_name or None)
        self._room_prefix = room_prefix
        self._follows = Follows()
        self._sweep: asyncio.TimerHandle | None = None
        self._was_up = False
        self._back = False  # resubscribed after losing Redis, until Redis confirms it
        self.on_unfollow: Callable[[str], None] = lambda room: None
        self.on_resubscribed: Callable[[], None] = lambda: None
        self.on_lost: Callable[[], None] = lambda: None
        self._queue: asyncio.Queue[tuple[float, str, str]] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self.listener_up = False
        self.thread: asyncio.Task[None] | None = None  # the listener, made by initialize()

    def room_channel(self, room: str) -> str:
        return f"{self.channel}:{room}"

    def _channel_for(self, data: dict[str, Any]) -> str:
        room = data.get("room")
        emit = data.get("method") == "emit"
        if emit and isinstance(room, str) and room.startswith(self._room_prefix):
            return self.room_channel(room)
        return str(self.channel)

    async def _publish(self, data: Any) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue(PUBLISH_QUEUE_MAX)
            self._publisher = asyncio.get_running_loop().create_task(self._publish_loop())
        try:
            self._queue.put_nowait(
                (time.monotonic(), self._channel_for(data), self.json.dumps(data))
            )
        except asyncio.QueueFull:
            self._metrics.bus_dropped.inc()
            log.warning("bus publish queue full (%d): dropped one publish", PUBLISH_QUEUE_MAX)

    # -- following rooms ----------------------------------------------------------------------
    async def enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        await super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        if isinstance(room, str) and room.startswith(self._room_prefix):
            await self._follow(room)

    async def leave_room(self, sid: str, namespace: str, room: Any) -> None:
        await super().leave_room(sid, namespace, room)
        await self._unfollow_if_empty(namespace, room)

    async def disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        await super().disconnect(sid, namespace, **kwargs)
        # Which rooms the client was in is not kept per client; one sweep soon after a burst
        # of disconnects looks at the followed rooms instead.
        if self._sweep is None and len(self._follows):
            loop = asyncio.get_running_loop()
            self._sweep = loop.call_later(SWEEP_SECS, self._start_sweep, namespace)

    def _start_sweep(self, namespace: str) -> None:
        self._sweep = None
        self.server.start_background_task(self._unfollow_empty_rooms, namespace)

    async def _unfollow_empty_rooms(self, namespace: str) -> None:
        prefix = self.room_channel("")
        for channel in self._follows.channels():
            await self._unfollow_if_empty(namespace, channel[len(prefix) :])

    async def _follow(self, room: str) -> None:
        """Subscribe to the room's channel, and wait until Redis has confirmed it: the
        caller reads the room's history next."""
        channel = self.room_channel(room)
        send, live = self._follows.want(channel)
        self._metrics.bus_rooms.set(len(self._follows))
        if send:
            try:
                await self._transport.subscribe(channel)
            except (RedisError, OSError) as exc:
                # The listener subscribes to every followed room when it is back.
                log.warning("subscribing to %s failed (%s)", channel, type(exc).__name__)
        if not live.is_set():
            try:
                await asyncio.wait_for(live.wait(), FOLLOW_WAIT_SECS)
            except TimeoutError:
                log.warning(
                    "Redis did not confirm the subscription to %s in %.0f s; going on",
                    channel,
                    FOLLOW_WAIT_SECS,
                )

    async def _unfollow_if_empty(self, namespace: str, room: Any) -> None:
        if not isinstance(room, str) or not room.startswith(self._room_prefix):
            return
        if room in self.rooms.get(namespace, {}):
            return  # members left on this worker
        channel = self.room_channel(room)
        if not self._follows.drop(channel):
            return
        self.on_unfollow(room)
        self._metrics.bus_rooms.set(len(self._follows))
        # On failure the subscription ends with the connection anyway.
        with contextlib.suppress(RedisError, OSError):
            await self._transport.unsubscribe(channel)

    async def _publish_loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        backoff = RECONNECT_MIN_SECS
        batch: list[tuple[float, str, str]] = []
        while True:
            if not batch:
                batch.append(await queue.get())
                while len(batch) < PUBLISH_BATCH_MAX and not queue.empty():
                    batch.append(queue.get_nowait())
            # What did not leave is retried first, so each channel keeps its order.
            batch, exc = await self._transport.publish(batch)
            if exc is None:
                backoff = RECONNECT_MIN_SECS
            else:
                now = time.monotonic()
                expired = [item for item in batch if now - item[0] > PUBLISH_GIVE_UP_SECS]
                if expired:
                    batch = batch[len(expired) :]
                    self._metrics.bus_dropped.inc(len(expired))
                    log.warning(
                        "Redis unreachable (%s): dropped %d publishes older than %.0f s",
                        type(exc).__name__,
                        len(expired),
                        PUBLISH_GIVE_UP_SECS,
                    )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_SECS)

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        backoff = RECONNECT_MIN_SECS
        while True:
            try:
                await self._transport.open(self.channel, self._follows.resubscribing())
                self._back = self._was_up
                self._was_up = True
                self._set_listener(True)
                backoff = RECONNECT_MIN_SECS
                async for event in self._transport.events():
                    yield event
            except asyncio.CancelledError:
                self._set_listener(False)
                raise
            except Exception as exc:
                self._set_listener(False)
                self._follows.lost()
                self.on_lost()
                log.warning(
                    "Redis subscription lost (%s: %s); retrying in %.1f s",
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                with contextlib.suppress(Exception):
                    await self._transport.close_subscriber()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_SECS)

    async def _listen(self) -> AsyncIterator[Any]:
        """What the bus brings: the main channel and every followed room's, in the order
        Redis delivers them."""
        received, received_bytes = self._metrics.bus_received, self._metrics.bus_received_bytes
        async for kind, channel, data in self._redis_listen_with_retries():
            if kind == "message":
                received.inc()
                received_bytes.inc(len(data))
                yield data
            elif kind == "subscribe":
                self._follows.confirmed(channel)
            elif kind == "ready" and self._back:
                # Every channel given to the new connection is subscribed: from here on
                # nothing more is lost.
                self._back = False
                self.on_resubscribed()

    def _set_listener(self, up: bool) -> None:
        if up != self.listener_up:
            log.info("bus listener %s", "up" if up else "down")
        self.listener_up = up
        self._metrics.bus_listener_up.set(1 if up else 0)

    def start(self) -> None:
        """Listen to the bus now rather than at the first connection, so the listener metric
        and cross-worker delivery are live from the start."""
        self.server.manager_initialized = True
        self.initialize()

    async def close(self) -> None:
        """Let queued publishes leave (for up to a second), then stop listening and
        publishing and close every connection of the bus."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        try:
            await self._let_publishes_leave(1.0)
        finally:
            for task in (self.thread, self._publisher):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            self.thread = self._publisher = None
            await self._transport.close()

    async def _let_publishes_leave(self, grace_secs: float) -> None:
        deadline = time.monotonic() + grace_secs
        while self._publisher is not None and self._queue is not None and not self._queue.empty():
            if time.monotonic() > deadline:
                log.warning("%d bus publishes not sent at shutdown", self._queue.qsize())
                return
            await asyncio.sleep(0.02)


class Presence:
    """Who is online in each room, across every worker of every machine.

    One sorted set per room; members are `host|sid|["user_id","name"]` scored by an expiry
    time that this worker pushes forward every ttl/3 seconds, so a crashed worker's users fade
    out within ttl.
    """

    def __init__(
        self, redis: redis_conn.RedisClient, prefix: str, host_id: str, ttl_secs: int
    ) -> None:
        self._redis = redis  # made with decode_responses
        self._prefix = prefix
        self._host_id = host_id
        self._ttl = ttl_secs
        self._local: dict[tuple[str, str], Member] = {}
        self._task: asyncio.Task[None] | None = None

    def _key(self, room: str) -> str:
        return f"{self._prefix}:presence:{room}"

    def _member(self, sid: str, member: Member) -> str:
        return f"{self._host_id}|{sid}|" + json.dumps(member, ensure_ascii=False)

    def _local_members(self, room: str) -> list[Member]:
        return distinct(m for (r, _), m in self._local.items() if r == room)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def add(self, room: str, sid: str, user_id: str, user: str) -> None:
        member = Member(user_id, user)
        self._local[(room, sid)] = member
        expiry = time.time() + self._ttl
        try:
            await self._redis.zadd(self._key(room), {self._member(sid, member): expiry})
        except (RedisError, OSError) as exc:
            log.warning("presence add failed (%s); the refresh loop will retry", exc)

    async def remove(self, room: str, sid: str) -> None:
        member = self._local.pop((room, sid), None)
        if member is None:
            return
        try:
            await self._redis.zrem(self._key(room), self._member(sid, member))
        except (RedisError, OSError) as exc:
            log.warning("presence remove failed (%s); it expires by itself", exc)

    async def members(self, room: str) -> list[Member]:
        """One (user_id, name) per identity online in the room, sorted by name then id; this
        worker's alone if Redis is down."""
        now = time.time()
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.zremrangebyscore(self._key(room), "-inf", now)
            pipe.zrangebyscore(self._key(room), now, "+inf")
            _, raw = await pipe.execute()
        except (RedisError, OSError):
            return self._local_members(room)
        return distinct(parse_member(m) for m in raw)

    async def counts(self, rooms: list[str]) -> dict[str, int]:
        """Identities online per room."""
        if not rooms:
            return {}
        now = time.time()
        try:
            pipe = self._redis.pipeline(transaction=False)
            for room in rooms:
                pipe.zrangebyscore(self._key(room), now, "+inf")
            results = await pipe.execute()
        except (RedisError, OSError):
            return {room: len(self._local_members(room)) for room in rooms}
        return {
            room: len(distinct(parse_member(m) for m in raw))
            for room, raw in zip(rooms, results, strict=True)
        }

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            if not self._local:
                continue
            expiry = time.time() + self._ttl
            try:
                pipe = self._redis.pipeline(transaction=False)
                for (room, sid), member in list(self._local.items()):
                    pipe.zadd(self._key(room), {self._member(sid, member): expiry})
                await pipe.execute()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("presence refresh failed (%s)", type(exc).__name__)

    async def close(self) -> None:
        """Remove this worker's entries (they would expire by themselves), then close the
        pool, also when the removal is cut short."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            pipe = self._redis.pipeline(transaction=False)
            for (room, sid), member in list(self._local.items()):
                pipe.zrem(self._key(room), self._member(sid, member))
            await pipe.execute()
        except (RedisError, OSError):
            log.info("presence not cleared at shutdown; it expires by itself")
        finally:
            self._local.clear()
            await redis_conn.close(self._redis)
