"""Per-room seqs from Redis: one INCRBY per room per batch, not a database round trip per message.

A room's counter starts (or starts again, after Redis lost it) from the store's newest seq. The
store's unique `(room, seq)` index stays the final guard: after a failover to a replica that
had not seen the latest INCRBY, or a restart that kept an old snapshot, a batch may be handed
seqs that are already stored; the store refuses them, `raise_past` lifts the counter above the
refused seq, and the batch takes new ones. When Redis cannot be reached at all, seqs come from
the store (its newest seq, then up), so sending goes on without Redis, more slowly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from chatd.redis_conn import RedisClient, by_slot

log = logging.getLogger(__name__)

# INCRBY only counters that exist, one per key, all in one call: a missing one answers 0 and
# must be seeded from the store first, or a restarted Redis would hand out seqs from 1 again.
_TAKE = """
local tops = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then
    tops[i] = 0
  else
    tops[i] = redis.call('INCRBY', key, ARGV[i])
  end
end
return tops
"""
# Set the counter to at least ARGV[1] (seeding, or lifting it past a refused seq). A missing
# counter is created even at 0: a new room's counter is seeded with 0.
_RAISE = """
local found = redis.call('GET', KEYS[1])
local current = tonumber(found or '0')
if found == false or current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
return current
"""

StoredMax = Callable[[str], Awaitable[int]]


class Seqs:
    def __init__(self, redis: RedisClient, prefix: str, stored_max: StoredMax) -> None:
        self._redis = redis
        self._prefix = prefix
        self._stored_max = stored_max
        self._take = redis.register_script(_TAKE)
        self._raise = redis.register_script(_RAISE)
        # Used while Redis is unreachable: the next seq this worker may take, per room.
        self._local: dict[str, int] = {}
        self._seeding: dict[str, asyncio.Future[None]] = {}

    def _key(self, room: str) -> str:
        # The hash tag keeps a room's keys on one slot of a Redis Cluster.
        return f"{self._prefix}:seq:{{{room}}}"

    async def take(self, counts: dict[str, int]) -> dict[str, int]:
        """Reserve counts[room] consecutive seqs in each room; return the first of each."""
        try:
            tops = await self._take_all(counts)
        except (RedisError, OSError) as exc:
            log.warning("seqs from the store: Redis unreachable (%s)", type(exc).__name__)
            return await self._take_locally(counts)
        if self._local:
            await self._hand_back_local()
        return {room: tops[room] - n + 1 for room, n in counts.items()}

    async def _hand_back_local(self) -> None:
        """Redis is back: lift its counters past the seqs taken without it, so the next
        batches do not run into them one refusal at a time."""
        local, self._local = self._local, {}
        try:
            for room, following in local.items():
                await self._raise(keys=[self._key(room)], args=[following - 1])
        except (RedisError, OSError):
            self._local.update(local)

    async def _take_all(self, counts: dict[str, int]) -> dict[str, int]:
        rooms = list(counts)
        results: dict[str, int] = {}
        # One call for the batch on one Redis; one per hash slot, at once, on a cluster.
        groups = by_slot(self._redis, rooms, self._key)

        def take(group: list[str]) -> Awaitable[list[int]]:
            return self._take(keys=[self._key(r) for r in group], args=[counts[r] for r in group])

        if len(groups) == 1:
            answers = [await take(groups[0])]
        else:
            answers = list(await asyncio.gather(*(take(g) for g in groups)))
        for group, tops_of_group in zip(groups, answers, strict=True):
            results.update(zip(group, tops_of_group, strict=True))
        tops: dict[str, int] = {}
        for room in rooms:
            top = results[room]
            if not top:
                await self._seed(room)
                [top] = await self._take(keys=[self._key(room)], args=[counts[room]])
                if not top:
                    raise RedisError("seq counter vanished while seeding")
            tops[room] = int(top)
        return tops

    async def _seed(self, room: str) -> None:
        """Start the room's counter at the store's newest seq, once however many ask."""
        pending = self._seeding.get(room)
        if pending is not None:
            await pending
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seeding[room] = done
        try:
            top = await self._stored_max(room)
            await self._raise(keys=[self._key(room)], args=[top])
            done.set_result(None)
        except BaseException as exc:
            done.set_exception(exc)
            done.exception()  # retrieved here; waiters re-raise it
            raise
        finally:
            del self._seeding[room]

    async def _take_locally(self, counts: dict[str, int]) -> dict[str, int]:
        first: dict[str, int] = {}
        for room, n in counts.items():
            start = self._local.get(room)
            if start is None:
                start = await self._stored_max(room) + 1
            first[room] = start
            self._local[room] = start + n
        return first

    async def raise_past(self, room: str, seq: int) -> None:
        """The store refused `seq` as taken: never hand it (or anything below) out again."""
        self._local[room] = max(self._local.get(room, 0), seq + 1)
        with contextlib.suppress(RedisError, OSError):  # the local counter holds it meanwhile
            await self._raise(keys=[self._key(room)], args=[seq])
