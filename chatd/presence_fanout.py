"""Sends a room's online list to its members: at once, then at most once per interval.

Each join or leave changes the list, and the list goes to every member. Sent on every change,
a join storm into a room of N members would cost N lists of up to N names, O(N^2) bytes.

A change in a quiet room is sent at once, so a single join is seen without delay. Each send
is followed, one interval later, by a check that reads the list fresh from Redis and sends it
again if it differs from what this worker last sent. Changes during the interval are folded
into that check, and a list made stale by a concurrent change on another worker is corrected
by the worker that sent it. A room with no change for a whole interval leaves no state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from chatd.bus import Member, Presence

log = logging.getLogger(__name__)

Emit = Callable[[str, list[Member]], Awaitable[None]]


class PresenceFanout:
    def __init__(self, presence: Presence, emit: Emit, interval_secs: float) -> None:
        self._presence = presence
        self._emit = emit
        self._interval = interval_secs
        self._checks: dict[str, asyncio.Task[None]] = {}
        self._sent: dict[str, list[Member]] = {}  # while a check is pending: the list last sent
        self._dirty: set[str] = set()  # rooms changed while their check was reading
        self._closed = False

    async def changed(self, room: str, members: list[Member]) -> None:
        """`members` is the list as the caller saw it after the change."""
        if self._closed:
            return  # the worker is stopping: its members are gone
        if room in self._checks:
            self._dirty.add(room)  # the pending check reads the list fresh
            return
        self._checks[room] = asyncio.create_task(self._check_later(room))
        await self._publish(room, members)

    async def _publish(self, room: str, members: list[Member]) -> None:
        self._sent[room] = members
        await self._emit(room, members)

    async def _check_later(self, room: str) -> None:
        try:
            while True:
                await asyncio.sleep(self._interval)
                self._dirty.discard(room)
                members = await self._presence.members(room)
                if members != self._sent.get(room):
                    await self._publish(room, members)
                elif room not in self._dirty:
                    return
        except Exception:  # the bus is down: the next change sends the list again
            log.warning("presence list for room %r not sent", room, exc_info=True)
        finally:
            self._checks.pop(room, None)
            self._sent.pop(room, None)
            self._dirty.discard(room)

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._checks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
