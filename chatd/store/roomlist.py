"""The room list of the FerretDB layout, kept in Redis: most recently active first.

On FerretDB 1.24 a sorted read of `rooms` scans and sorts every room document in Go (about half
a second with 10,000 rooms), so the layout keeps beside it a sorted set of rooms by last
activity and a hash of what the list shows. `rooms` stays the durable copy: when Redis has lost
the list (no `complete` marker), it is rebuilt from one read of `rooms`, then kept up to date
by room creation and by the activity writer.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from chatd.models import Room, iso_millis, parse_iso
from chatd.redis_conn import RedisClient


def _info(room: Room) -> str:
    return json.dumps(
        {
            "created_at": iso_millis(room.created_at),
            "last_message_at": iso_millis(room.last_message_at) if room.last_message_at else None,
            "last_seq": room.last_seq,
        }
    )


def _room(name: str, raw: Any) -> Room:
    d = json.loads(raw)
    last = d.get("last_message_at")
    return Room(
        name=name,
        created_at=parse_iso(d["created_at"]),
        last_message_at=parse_iso(last) if last else None,
        last_seq=int(d.get("last_seq", 0)),
    )


class RoomList:
    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self._redis = redis
        self._order = f"{prefix}:rooms:by_activity"
        self._info = f"{prefix}:rooms:info"
        self._complete = f"{prefix}:rooms:complete"

    async def complete(self) -> bool:
        return bool(await self._redis.exists(self._complete))

    async def fill(self, rooms: list[tuple[Room, datetime]]) -> None:
        """Rebuild from `rooms` (room, last activity), then mark the list complete."""
        pipe = self._redis.pipeline(transaction=False)
        for room, active in rooms:
            pipe.zadd(self._order, {room.name: active.timestamp()}, gt=True)
            pipe.hsetnx(self._info, room.name, _info(room))
        pipe.set(self._complete, 1)
        await pipe.execute()

    async def created(self, room: Room) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(self._order, {room.name: room.created_at.timestamp()}, nx=True)
        pipe.hsetnx(self._info, room.name, _info(room))
        await pipe.execute()

    async def active(self, name: str, seq: int, at: datetime, created_at: datetime) -> None:
        """A message with `seq` at `at`: the room moves up (never down, `GT`)."""
        current = await self._redis.hget(self._info, name)
        room = _room(name, current) if current else Room(name, created_at, None, 0)
        if room.last_seq < seq:
            room = Room(name, room.created_at, at, seq)
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(self._order, {name: at.timestamp()}, gt=True)
        pipe.hset(self._info, name, _info(room))
        await pipe.execute()

    async def newest(self, limit: int) -> list[Room]:
        names = [
            n.decode() if isinstance(n, bytes) else str(n)
            for n in await self._redis.zrevrange(self._order, 0, limit - 1)
        ]
        if not names:
            return []
        infos = await self._redis.hmget(self._info, names)
        return [_room(n, raw) for n, raw in zip(names, infos, strict=True) if raw is not None]
