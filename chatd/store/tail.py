"""The newest messages of each room, in Redis: what the FerretDB layout reads joins from.

Per room (keys hash-tagged by room, so each operation stays on one Redis Cluster slot):
`tail` is a sorted set of messages by seq; `floor` says from which seq the tail holds every
stored message of the room (a tail without it is cold: it is loaded from the archive before it
is read); `unarchived` holds the tail's messages not yet copied into the archive, by the time
they were stored, and `archive_due` (one set for all rooms) lists rooms that have some, by the
oldest one's time, so that messages a stopped worker left unarchived are found and copied by
another. The tail is trimmed to its newest `keep` messages,
never dropping one not yet archived, and vanishes after `ttl_secs` without a message.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from typing import Any

from chatd.models import MESSAGE, iso_millis, parse_iso
from chatd.redis_conn import RedisClient, by_slot, is_cluster
from chatd.store.base import NewMessage

# Lift `floor` to at least ARGV[1], creating it (with the tail's expiry) when missing.
_RAISE_FLOOR = """
local current = redis.call('GET', KEYS[1])
if current == false or tonumber(current) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return redis.call('GET', KEYS[1])
"""
# After archiving: forget the archived members; trim the tail to its newest ARGV[1] messages,
# stopping at the first one not archived yet; answer the time the oldest unarchived message
# has waited since, or -1 when none is left.
_ARCHIVED = """
for i = 2, #ARGV do redis.call('ZREM', KEYS[2], ARGV[i]) end
local n = redis.call('ZCARD', KEYS[1])
local keep = tonumber(ARGV[1])
if n > keep then
  local candidates = redis.call('ZRANGE', KEYS[1], 0, n - keep - 1, 'WITHSCORES')
  local cut = nil
  for j = 1, #candidates, 2 do
    if redis.call('ZSCORE', KEYS[2], candidates[j]) then break end
    cut = tonumber(candidates[j + 1])
  end
  if cut then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cut)
    local floor = redis.call('GET', KEYS[3])
    if floor ~= false and tonumber(floor) <= cut then
      redis.call('SET', KEYS[3], cut + 1, 'KEEPTTL')
    end
  end
end
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #oldest == 0 then return '-1' end
return oldest[2]
"""

# Put back entries whose first write may be missing (it failed, or a failover lost it), only
# into a warm tail and only from its floor up: a cold tail is filled from the archive and this
# worker's unarchived messages anyway, and entries below the floor are the archive's.
_REWRITE = """
local floor = redis.call('GET', KEYS[2])
if floor == false then return 0 end
floor = tonumber(floor)
for i = 1, #ARGV, 2 do
  if tonumber(ARGV[i]) >= floor then redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
"""

# Stored messages enter their rooms' tails and wait in `unarchived`: one call for a whole
# batch. KEYS: per room its tail, unarchived and floor, then `archive_due` if ARGV[3] is 1
# (on a cluster it lives on another slot and gets its own ZADD); ARGV: now, ttl, that flag,
# then per room its name, its message count and that many (seq, message) pairs.
_ADD = """
local now, ttl, a = ARGV[1], ARGV[2], 4
local due = ARGV[3] == '1' and KEYS[#KEYS] or nil
local rooms = due and #KEYS - 1 or #KEYS
for k = 1, rooms, 3 do
  local room, n = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  local by_seq, by_time = {}, {}
  for i = 1, n do
    by_seq[#by_seq + 1] = ARGV[a]
    by_seq[#by_seq + 1] = ARGV[a + 1]
    by_time[#by_time + 1] = now
    by_time[#by_time + 1] = ARGV[a + 1]
    a = a + 2
  end
  redis.call('ZADD', KEYS[k], unpack(by_seq))
  redis.call('ZADD', KEYS[k + 1], unpack(by_time))
  redis.call('EXPIRE', KEYS[k], ttl)
  redis.call('EXPIRE', KEYS[k + 2], ttl)
  if due then redis.call('ZADD', due, 'NX', now, room) end
end
return 1
"""


# A range of the tail with the floor it was read under, in one step: the archiver may trim the
# tail (and raise the floor) at any moment, and a range read under an older floor would skip
# what was trimmed.
_AFTER = """
local floor = redis.call('GET', KEYS[2])
return {floor, redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'LIMIT', 0, ARGV[2])}
"""
_BEFORE = """
local floor = redis.call('GET', KEYS[2])
return {floor, redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], '-inf', 'LIMIT', 0, ARGV[2])}
"""


def encode(m: NewMessage) -> str:
    fields: dict[str, Any] = {
        "id": m.id,
        "seq": m.seq,
        "user": m.user,
        "user_id": m.user_id,
        "message": m.text,
        "timestamp": iso_millis(m.timestamp),
        "client_id": m.client_id,
        "client_key": m.client_key,
    }
    if m.kind != MESSAGE:
        fields.update(kind=m.kind, target=m.target, target_seq=m.target_seq)
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def decode(room: str, raw: Any) -> NewMessage:
    d: dict[str, Any] = json.loads(raw)
    return NewMessage(
        id=d["id"],
        room=room,
        seq=int(d["seq"]),
        user=d["user"],
        text=d["message"],
        timestamp=parse_iso(d["timestamp"]),
        client_id=d["client_id"],
        client_key=d["client_key"],
        user_id=d.get("user_id", ""),
        kind=d.get("kind", MESSAGE),
        target=d.get("target", ""),
        target_seq=int(d.get("target_seq", 0)),
    )


def _floor_of(raw: Any) -> int | None:
    return None if raw is None else int(raw)


class Tail:
    def __init__(self, redis: RedisClient, prefix: str, keep: int, ttl_secs: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self.keep = keep
        self._ttl = ttl_secs
        self._add = redis.register_script(_ADD)
        self._raise_floor = redis.register_script(_RAISE_FLOOR)
        self._archived = redis.register_script(_ARCHIVED)
        self._after = redis.register_script(_AFTER)
        self._before = redis.register_script(_BEFORE)
        self._rewrite = redis.register_script(_REWRITE)
        self.due_key = f"{prefix}:archive_due"

    def _keys(self, room: str) -> tuple[str, str, str]:
        tag = "{" + room + "}"
        return (
            f"{self._prefix}:tail:{tag}",
            f"{self._prefix}:unarchived:{tag}",
            f"{self._prefix}:floor:{tag}",
        )

    async def add(self, messages: list[NewMessage]) -> None:
        """Stored messages enter the tail, and wait in `unarchived` for the archive."""
        by_room: dict[str, list[NewMessage]] = {}
        for m in messages:
            by_room.setdefault(m.room, []).append(m)
        now = time.time()
        groups = by_slot(self._redis, list(by_room), lambda room: self._keys(room)[0])
        cluster = is_cluster(self._redis)

        def add(rooms: list[str]) -> Awaitable[Any]:
            keys: list[str] = []
            args: list[Any] = [now, self._ttl, 0 if cluster else 1]
            for room in rooms:
                keys += self._keys(room)
                args += [room, len(by_room[room])]
                for m in by_room[room]:
                    args += [m.seq, encode(m)]
            if not cluster:
                keys.append(self.due_key)
            return self._add(keys=keys, args=args)

        if not cluster:
            await add(groups[0])
            return
        await asyncio.gather(*(add(group) for group in groups))
        await self._redis.zadd(self.due_key, dict.fromkeys(by_room, now), nx=True)

    async def rewrite(self, room: str, messages: list[NewMessage]) -> None:
        """Write `messages` into the room's tail again, if it is warm, from its floor up."""
        tail, _, floor = self._keys(room)
        args: list[Any] = []
        for m in messages:
            args += [m.seq, encode(m)]
        await self._rewrite(keys=[tail, floor], args=args)

    async def floor(self, room: str) -> int | None:
        """None when the tail is cold; else every stored seq >= floor is in the tail."""
        value = await self._redis.get(self._keys(room)[2])
        return None if value is None else int(value)

    async def warm(self, room: str, messages: list[NewMessage], floor: int) -> int:
        """Fill a cold tail with `messages` (read from the archive), complete from `floor`."""
        tail, _, floor_key = self._keys(room)
        if messages:
            await self._redis.zadd(tail, {encode(m): m.seq for m in messages})
            await self._redis.expire(tail, self._ttl)
        raised = await self._raise_floor(keys=[floor_key], args=[floor, self._ttl])
        return int(raised)

    async def after(self, room: str, since: int, count: int) -> tuple[int | None, list[NewMessage]]:
        """The floor (None: cold) and up to `count` messages with seq > since, oldest first."""
        tail, _, floor = self._keys(room)
        got = await self._after(keys=[tail, floor], args=[f"({since}", count])
        return _floor_of(got[0]), [decode(room, r) for r in got[1]]

    async def before(
        self, room: str, before: int | None, count: int
    ) -> tuple[int | None, list[NewMessage]]:
        """The floor (None: cold) and, oldest first, up to `count` newest messages with
        seq < before."""
        tail, _, floor = self._keys(room)
        top = "+inf" if before is None else f"({before}"
        got = await self._before(keys=[tail, floor], args=[top, count])
        return _floor_of(got[0]), [decode(room, r) for r in reversed(got[1])]

    async def newest_seq(self, room: str) -> int:
        found = await self._redis.zrevrange(self._keys(room)[0], 0, 0, withscores=True)
        return int(found[0][1]) if found else 0

    async def all(self, room: str) -> list[NewMessage]:
        return [decode(room, r) for r in await self._redis.zrange(self._keys(room)[0], 0, -1)]

    async def due(self, count: int, older_than_secs: float) -> list[str]:
        """Rooms whose messages have waited for the archive longer than `older_than_secs`."""
        cutoff = time.time() - older_than_secs
        raw: list[Any] = await self._redis.zrangebyscore(
            self.due_key, "-inf", cutoff, start=0, num=count
        )
        return [r.decode() if isinstance(r, bytes) else str(r) for r in raw]

    async def unarchived(self, room: str, older_than_secs: float) -> list[tuple[bytes, NewMessage]]:
        cutoff = time.time() - older_than_secs
        raw: list[Any] = await self._redis.zrangebyscore(self._keys(room)[1], "-inf", cutoff)
        return [(r, decode(room, r)) for r in raw]

    async def epoch(self, candidate: str) -> bytes:
        """A token that stays the same while Redis keeps its data (made by the first caller)."""
        key = f"{self._prefix}:epoch"
        await self._redis.set(key, candidate, nx=True)
        value = await self._redis.get(key)
        return value if isinstance(value, bytes) else str(value).encode()

    async def lock(self, room: str, owner: str, secs: float) -> bool:
        key = f"{self._prefix}:archiving:{{{room}}}"
        return bool(await self._redis.set(key, owner, nx=True, px=int(secs * 1000)))

    async def unlock(self, room: str) -> None:
        await self._redis.delete(f"{self._prefix}:archiving:{{{room}}}")

    async def archived(self, room: str, members: list[bytes]) -> None:
        """`members` are in the archive now. The room stays in `archive_due`, by the time of
        its oldest unarchived message, while it has any; the check after removing it catches
        a message added meanwhile (its own `ZADD NX` found the room still listed)."""
        tail, unarchived, floor = self._keys(room)
        oldest = float(
            await self._archived(keys=[tail, unarchived, floor], args=[self.keep, *members])
        )
        if oldest >= 0:
            await self._redis.zadd(self.due_key, {room: oldest}, xx=True)
            return
        await self._redis.zrem(self.due_key, room)
        if await self._redis.zcard(unarchived):
            await self._redis.zadd(self.due_key, {room: time.time()}, nx=True)
