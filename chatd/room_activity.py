"""Writes each room's newest message time and seq to its room document, off the send path.

The room list sorts by these fields, but a send need not wait for them: on FerretDB an update
reads its whole collection, so one per message in `rooms` made every message cost more as
rooms were added. One writer task takes rooms one at a time, and rests between writes so
that it spends at most a fifth of the time writing: with MongoDB that allows hundreds of rooms
a second, with FerretDB and thousands of rooms a few, so the list never competes with sends for
the database. Notes for a room that arrive meanwhile fold into one write of the newest values:
nothing queues beyond one entry per room, and the list lags by however many rooms are waiting.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from chatd.errors import Unavailable
from chatd.store.base import Store

log = logging.getLogger(__name__)

RETRY_SECS = 1.0
REST_PER_WRITE = 4  # rest this many times as long as the last write took


class RoomActivity:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: dict[str, tuple[int, datetime]] = {}
        self._writer: asyncio.Task[None] | None = None
        self._running = False  # notes are written only between start() and close()

    def start(self) -> None:
        self._running = True

    def note(self, room: str, seq: int, at: datetime) -> None:
        earlier = self._pending.get(room)
        if earlier is None or earlier[0] < seq:
            self._pending[room] = (seq, at)
        if self._running and (self._writer is None or self._writer.done()):
            self._writer = asyncio.create_task(self._write_all())

    async def _write_all(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            room = next(iter(self._pending))
            seq, at = self._pending.pop(room)
            started = loop.time()
            try:
                await self._store.note_activity(room, seq, at)
                await asyncio.sleep((loop.time() - started) * REST_PER_WRITE)
            except Unavailable:
                # MongoDB is away: keep the newest note and try again shortly.
                if room not in self._pending:
                    self._pending[room] = (seq, at)
                await asyncio.sleep(RETRY_SECS)
            except Exception:
                log.exception("room activity of %r not written", room)

    async def close(self, grace_secs: float) -> None:
        """Write what is pending, for at most `grace_secs` seconds; the room list may trail
        by what is left (docs/guarantees.md N5)."""
        self._running = False
        if self._writer is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._writer), grace_secs)
        except TimeoutError:
            log.warning("room activity of %d rooms not written at shutdown", len(self._pending))
        finally:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
