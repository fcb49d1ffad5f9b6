"""Server-side gap repair: every stored message of a room reaches this worker's members of it,
once, even when the bus lost it.

Per room with members here, a `Ledger` records which seqs this worker delivered. Seqs are
taken across workers, so one worker's own message can go out before another's older one
arrives from Redis; a gap is therefore only repaired after `GRACE_SECS`, from the store, which
holds every acked message. When the Redis subscription comes back after being lost, every
followed room is read after its last contiguous seq at once: what was published meanwhile never
arrives. A message is dropped only if this worker already delivered that very seq.

Repair is bounded: at most `max_per_room` messages per room per repair (what a join may
replay), and one repair at a time per worker. A room further behind gets `resync` {room}: its
members re-join with `since` (the browser client does so by itself).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from chatd.metrics import Metrics
from chatd.store.base import Store

log = logging.getLogger(__name__)

GRACE_SECS = 1.5
# Seqs remembered per room to drop a second delivery of the same message.
WINDOW = 4096
# Messages held per room behind a gap; past it they go out at once, out of turn.
HELD_MAX = 1000
# While the store is unsure (it is writing again what Redis did not take), a gap its read
# leaves open is read again every GRACE_SECS rather than skipped, for at most this long.
UNSURE_WAIT_SECS = 20.0

Deliver = Callable[[str, list[Any]], None]
Resync = Callable[[str], Awaitable[None]]


class Ledger:
    """What one worker delivered of one room, and what it holds back behind a gap."""

    __slots__ = (
        "contiguous",
        "delivered",
        "held",
        "name",
        "order",
        "timer",
        "top",
        "unsure_since",
    )

    def __init__(self, name: str, start: int) -> None:
        self.name = name  # the chat room's name, for the store
        self.contiguous = start  # every seq up to here was delivered, or is known not stored
        self.top = start  # the highest seq delivered
        self.delivered: set[int] = set()
        self.order: deque[int] = deque()
        self.held: dict[int, Any] = {}  # seq -> payload, waiting for the seqs before it
        self.timer: asyncio.TimerHandle | None = None
        self.unsure_since: float | None = None  # when a repair first waited for the store

    def admit(self, seq: int, payload: Any) -> list[Any] | None:
        """What to deliver now, in order, for a message of this room: None if this worker
        already has it (delivered or held); [] if it waits behind a gap."""
        if seq in self.delivered or seq in self.held:
            return None
        if seq > self.contiguous + 1 and len(self.held) < HELD_MAX:
            self.held[seq] = payload
            return []
        self.mark(seq)
        return [payload, *self.release()]

    def mark(self, seq: int) -> None:
        self.delivered.add(seq)
        self.order.append(seq)
        if len(self.order) > WINDOW:
            self.delivered.discard(self.order.popleft())
        self.top = max(self.top, seq)
        while self.contiguous + 1 in self.delivered:
            self.contiguous += 1

    def release(self) -> list[Any]:
        """What was held and is next in line now, in seq order."""
        out = []
        while self.contiguous + 1 in self.held:
            seq = self.contiguous + 1
            out.append(self.held.pop(seq))
            self.mark(seq)
        return out

    def skip_to(self, seq: int) -> list[Any]:
        """Seqs up to `seq` are known not stored: stop waiting for them."""
        self.contiguous = max(self.contiguous, seq)
        while self.contiguous + 1 in self.delivered:
            self.contiguous += 1
        return self.release()

    def release_all(self) -> list[Any]:
        """Everything held, in seq order, whatever is still missing before it."""
        out = []
        for seq in sorted(self.held):
            payload = self.held.pop(seq)
            if seq not in self.delivered:
                self.contiguous = max(self.contiguous, seq - 1)
                self.mark(seq)
                out.append(payload)
        return out

    @property
    def gap(self) -> bool:
        return bool(self.held) or self.top > self.contiguous


class GapRepair:
    def __init__(
        self,
        store: Store,
        deliver: Deliver,
        resync: Resync,
        metrics: Metrics,
        max_per_room: int,
    ) -> None:
        self._store = store
        self._deliver = deliver
        self._resync = resync
        self._metrics = metrics
        self._max = max_per_room
        self._rooms: dict[str, Ledger] = {}
        self._lock = asyncio.Lock()  # one repair at a time: bounded reads per worker
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False  # repairs start only between start() and close()

    # -- what the bus and the join path tell it ----------------------------------------------
    async def joined(self, room: str, name: str, last_seq: int | None) -> None:
        """A member joined `room` (the chat room `name`) here and got its history up to
        `last_seq` (None: it got none)."""
        if room in self._rooms:
            return
        if last_seq is None:
            last_seq = await self._store.max_seq(name)
        self._rooms.setdefault(room, Ledger(name, last_seq))

    def unfollowed(self, room: str) -> None:
        ledger = self._rooms.pop(room, None)
        if ledger is not None and ledger.timer is not None:
            ledger.timer.cancel()

    def admit(self, room: str, seq: int, payload: Any) -> list[Any]:
        """A message of `room` is about to reach this worker's members: what to deliver now,
        in order. A message after a gap waits (at most GRACE_SECS, then the store fills the
        gap); a second delivery of a seq is dropped."""
        ledger = self._rooms.get(room)
        if ledger is None:
            return [payload]
        now = ledger.admit(seq, payload)
        if now is None:
            self._metrics.repair_duplicates.inc()
            return []
        if ledger.held and ledger.timer is None:
            loop = asyncio.get_running_loop()
            ledger.timer = loop.call_later(GRACE_SECS, self._spawn, room)
        return now

    def resubscribed(self) -> None:
        """The bus was lost and is back: whatever was published meanwhile never arrives."""
        for room in list(self._rooms):
            self._spawn(room, everything=True)

    # -- repairing --------------------------------------------------------------------------
    def _again(self, ledger: Ledger, room: str, everything: bool) -> bool:
        """The store is unsure and left a gap: read again soon instead of skipping it (True),
        unless this gap has waited UNSURE_WAIT_SECS already."""
        now = asyncio.get_running_loop().time()
        if ledger.unsure_since is None:
            ledger.unsure_since = now
        if now - ledger.unsure_since > UNSURE_WAIT_SECS:
            ledger.unsure_since = None
            return False
        loop = asyncio.get_running_loop()
        ledger.timer = loop.call_later(GRACE_SECS, self._spawn, room, everything)
        return True

    def _spawn(self, room: str, everything: bool = False) -> None:
        ledger = self._rooms.get(room)
        if ledger is not None and ledger.timer is not None:
            ledger.timer.cancel()
            ledger.timer = None
        if not self._running:
            return
        task = asyncio.get_running_loop().create_task(self._repair(room, everything))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _repair(self, room: str, everything: bool) -> None:
        """Read the room after its last contiguous seq and deliver, in order, what is missing
        and what waited behind it. Unless `everything`, only while a gap is open."""
        async with self._lock:
            ledger = self._rooms.get(room)
            if ledger is None or not (everything or ledger.gap):
                return
            unsure = self._store.unsure()
            try:
                stored, more = await self._store.read_after(
                    ledger.name, ledger.contiguous, self._max
                )
            except Exception as exc:  # the store is away: the next gap or reconnect retries
                log.warning("gap repair of %s failed (%s)", room, type(exc).__name__)
                if not (unsure and self._again(ledger, room, everything)):
                    self._deliver(room, ledger.release_all())
                return
            if self._rooms.get(room) is not ledger:
                return  # unfollowed meanwhile
            out: list[Any] = []
            repaired = 0
            for message in stored:
                if message.seq in ledger.delivered:
                    continue
                if (
                    unsure
                    and message.seq > ledger.contiguous + 1
                    and self._again(ledger, room, everything)
                ):
                    # A hole the store may fill in a moment: deliver what is in order only.
                    self._deliver(room, out)
                    return
                # The store returns seqs in order: any below this one it lacks were never stored.
                out += ledger.skip_to(message.seq - 1)
                if message.seq in ledger.delivered:
                    continue  # released just now
                payload = ledger.held.pop(message.seq, None)
                if payload is None:
                    payload = message.to_wire()
                    repaired += 1
                ledger.mark(message.seq)
                out.append(payload)
                out += ledger.release()
            if more:
                self._metrics.resyncs.inc()
                log.warning("room %s: over %d messages behind; asking to re-join", room, self._max)
                newest = await self._store.max_seq(ledger.name)
                out += ledger.release_all()
                ledger.skip_to(max(ledger.top, newest))
                self._deliver(room, out)
                await self._resync(room)
                return
            if unsure and ledger.held and self._again(ledger, room, everything):
                self._deliver(room, out)
                return
            ledger.unsure_since = None
            # What still waits comes after seqs the store does not hold: taken and never
            # stored, or still being written (delivered when it comes, out of turn).
            out += ledger.release_all()
            ledger.skip_to(ledger.top)
            if repaired:
                self._metrics.repaired.inc(repaired)
                log.info("room %s: delivered %d messages the bus did not bring", room, repaired)
            self._deliver(room, out)

    def start(self) -> None:
        self._running = True

    async def close(self) -> None:
        """Stop repairing: the members are gone, and so is what a repair would send them."""
        self._running = False
        for ledger in self._rooms.values():
            if ledger.timer is not None:
                ledger.timer.cancel()
                ledger.timer = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
