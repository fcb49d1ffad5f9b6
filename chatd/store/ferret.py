"""The FerretDB 1.24 layout: MongoDB's schema to write into, plus what FerretDB needs to read.

Measured with pymongo on FerretDB 1.24 (SQLite), 2 cores: `insert_many` of 100 documents
stores ~7,400 a second, but every read and update scans its whole collection, ~55 µs a
document with a filter (a find by room and seq among 50,000 messages: 2.7 s). So:

- writes go into `messages` exactly as on MongoDB (`MongoStore.append`): one insert per batch,
  and its two unique indexes refuse a reused seq and a second copy of a client key;
- reads never touch `messages`: joins, replays and recent pages come from the room's hot tail
  in Redis (`chatd/store/tail.py`), older pages from the archive, a copy of each room's
  messages in collections of 1,000 seqs (`messages_<hash>`, `_1`, ...), so a read costs at
  most two small collections whatever the room's age or the number of rooms;
- the archive is written behind the ack by the worker that stored the messages, one insert
  per room for up to ARCHIVE_BATCH waiting messages or after ARCHIVE_AFTER_SECS (at once
  while Redis is unreachable or after it restarted empty); Redis keeps a copy of what waits,
  from which any worker archives what a stopped worker left behind.

A tail lost with Redis is loaded again from the archive on the next read. The one loss this
cannot cover: Redis losing its data while the worker that stored the waiting messages stops
too; those stay in `messages` but are missing from history reads. The embedded Redis runs
with an append-only file, so a restart alone loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError

from chatd.models import DELETE, EDIT, MESSAGE, Message, Room, utc_now
from chatd.shared_run import SharedRuns
from chatd.store import legacy
from chatd.store.amendments import Amendments
from chatd.store.base import Appended, NewMessage, Outcome, mongo_errors
from chatd.store.mongo import MongoStore, message_doc, to_message, to_room
from chatd.store.roomlist import RoomList
from chatd.store.tail import Tail, encode
from chatd.store.wedge import WriteWatch

log = logging.getLogger(__name__)

# What a Redis call answers when Redis cannot be reached (None is a real answer: a cold tail).
AWAY = object()
ARCHIVE_IDLE_SECS = 0.2
# After Redis failed this worker, reads are "unsure" this long (gap repair waits rather than
# skipping): other workers write again, within a pass of their archiver (ARCHIVE_IDLE_SECS),
# what their tail writes missed.
SETTLE_SECS = 5.0
ARCHIVE_ROOMS_PER_PASS = 64
ARCHIVE_LOCK_SECS = 30.0
ARCHIVE_RETRY_SECS = 1.0
ARCHIVE_BATCH = 100
CLOSE_FLUSH_SECS = 1.0
ROOM_DOC_EVERY_SECS = 600.0
# Reads of a room whose tail is being trimmed at that very moment start again this often.
TAIL_READ_ATTEMPTS = 4
ROOM_DOCS_TRACKED = 100_000
# An insert costs FerretDB about 1 ms plus 50 µs a document: copying a room every 10 s rather
# than every 2 s takes a third of the archive's cost off a room with 10 messages a second.
ARCHIVE_AFTER_SECS = 10.0
# Messages left unarchived this long in Redis are taken by any worker: theirs has stopped.
STALE_SECS = 10.0 + ARCHIVE_AFTER_SECS
# Writes refused with a lock error this long, while FerretDB answers, make the store wedged
# (docs/design.md, "FerretDB's wedge"): longer than a burst of contention (SQLite's busy
# timeout in FerretDB is 10 s, but a stuck connection refuses at once, again and again).
WEDGED_AFTER_SECS = 5.0
WEDGE_CHECK_SECS = 1.0
# While the wedge lasts, it is reported again this often (each report may restart FerretDB).
WEDGE_REPORT_EVERY_SECS = 60.0
PROBE_ID = "write-probe"


def archive_doc(m: NewMessage) -> dict[str, Any]:
    """The message as `messages` has it, keyed by room and seq, its id kept as `mid`."""
    return {**message_doc(m), "_id": f"{m.room}#{m.seq}", "mid": m.id}


def from_archive(doc: dict[str, Any]) -> NewMessage:
    return NewMessage(
        id=doc["mid"],
        room=doc["room"],
        seq=int(doc["seq"]),
        user=doc["user"],
        text=doc["message"],
        timestamp=doc["timestamp"],
        client_id=doc["client_id"],
        client_key=doc.get("client_key", ""),
        user_id=doc.get("user_id", ""),
        kind=doc.get("kind", MESSAGE),
        target=doc.get("target", ""),
        target_seq=int(doc.get("target_seq", 0)),
    )


def merged(*runs: list[NewMessage]) -> list[NewMessage]:
    """Oldest first, one per seq."""
    by_seq = {m.seq: m for run in runs for m in run}
    return [by_seq[s] for s in sorted(by_seq)]


class FerretStore(MongoStore):
    layout = "blocks"

    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        tail: Tail,
        rooms: RoomList,
        amendments: Amendments,
        watch: WriteWatch | None = None,
        on_wedged: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(db)
        self.tail = tail
        self.amendments = amendments
        self.room_list = rooms
        self._owner = f"{os.getpid()}-{ObjectId()}"
        self._archiver: asyncio.Task[None] | None = None
        self._blocks: dict[str, int] = {}  # room -> its highest archive block known to exist
        self._listing: SharedRuns[None, list[str]] = SharedRuns()
        self._loading: SharedRuns[str, int | None] = SharedRuns()  # cold tails, by room
        self._indexed: set[str] = set()
        # What this worker stored and has not archived yet, by room and seq. The archive is
        # written from here; Redis's copy (`unarchived`) is for workers that stop first.
        self._mine: dict[str, dict[int, NewMessage]] = {}
        self._since: dict[str, float] = {}  # room -> when its oldest entry in _mine came
        self._urgent = False  # archive everything in _mine at once: Redis lost or missed some
        # Tail entries whose write failed or may have been lost in a failover, to write again;
        # until then a read of such a room does not trust its tail.
        self._rewrite: dict[str, dict[int, NewMessage]] = {}
        self._trouble_at = -SETTLE_SECS  # when Redis last failed this worker (monotonic)
        self._room_doc_written: dict[str, float] = {}
        self._epoch: bytes | None = None
        # Archive writes wait while a batch of messages is being stored: SQLite takes one
        # writer, and a writer refused the lock sleeps in growing steps (up to 100 ms) before
        # it tries again, so a batch competing with a run of archive copies from its own worker
        # waited hundreds of milliseconds. The batch itself never waits for the archive.
        self._appending = 0
        self._no_batch = asyncio.Event()
        self._no_batch.set()
        self.watch = watch
        self._on_wedged = on_wedged
        self._watcher: asyncio.Task[None] | None = None

    async def prepare(self) -> None:
        # Watching first: a database wedged before this worker started refuses `prepare`.
        if self.watch is not None and self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch_loop())
        await super().prepare()
        if self._archiver is None:
            self._archiver = asyncio.get_running_loop().create_task(self._archive_loop())

    async def close(self) -> None:
        for task in (self._watcher, self._archiver):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # What is left goes to the archive now; whatever does not make it in time is taken
        # from Redis by another worker.
        waiting = [m for room in self._mine.values() for m in room.values()]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._write_archive(waiting), CLOSE_FLUSH_SECS)

    async def adopt(self, previous: str) -> None:
        """Coming from the canonical layout: build the archive from `messages`, once."""
        chunk: list[NewMessage] = []
        async for doc in self.messages.find({}):
            chunk.append(from_archive({**doc, "mid": str(doc["_id"])}))
            # What edits and deletions did in place, the overlay holds in this layout.
            if doc.get("deleted") or doc.get("edit_seq"):
                message = to_message(doc)
                change = Message(
                    id="", room=message.room, user="", message=message.message,
                    timestamp=message.edited_at or message.timestamp, seq=message.edit_seq,
                    client_id="", user_id=message.deleted_by,
                    kind=DELETE if message.deleted else EDIT,
                )  # fmt: skip
                await self.amendments.record(message, change)
            if len(chunk) >= legacy.COPY_CHUNK:
                await self._write_archive(chunk)
                chunk = []
        await self._write_archive(chunk)

    # ---- the wedge ----------------------------------------------------------------------------

    def wedged(self) -> bool:
        return self.watch is not None and self.watch.refused_for() >= WEDGED_AFTER_SECS

    async def ping(self) -> bool:
        """Not ready while wedged: FerretDB answers, but refuses every write."""
        return not self.wedged() and await super().ping()

    async def _watch_loop(self) -> None:
        """While writes are refused, write a probe each tick (so that the end of the wedge is
        seen without waiting for a sender), and report a wedge once it lasts."""
        reported: float | None = None
        while True:
            await asyncio.sleep(WEDGE_CHECK_SECS)
            try:
                assert self.watch is not None
                if self.watch.refused_for() > 0:
                    with contextlib.suppress(PyMongoError):
                        await self.meta.update_one(
                            {"_id": PROBE_ID}, {"$set": {"at": utc_now()}}, upsert=True
                        )
                if not self.wedged():
                    reported = None
                    continue
                now = time.monotonic()
                due = reported is None or now - reported >= WEDGE_REPORT_EVERY_SECS
                # Refused writes while FerretDB does not answer at all are an outage instead.
                if due and await super().ping():
                    reported = now
                    log.error(
                        "FerretDB refuses every write (database is locked) for %.0f s",
                        self.watch.refused_for(),
                    )
                    if self._on_wedged is not None:
                        await self._on_wedged()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watching the store's writes")

    # ---- writes --------------------------------------------------------------------------

    async def _insert_room(self, name: str, owner: str) -> bool:
        """A new room is complete in its (empty) tail from the first seq: warmed before the
        joins that wait for its creation go on to read it, or each would load a cold tail."""
        created = await super()._insert_room(name, owner)
        if created:
            await self._redis(self.tail.warm(name, [], 0))
            await self._redis(self.room_list.created(Room(name, utc_now(), None, 0)))
        return created

    async def list_rooms(self, limit: int) -> list[Room]:
        """From Redis; rebuilt from `rooms` when Redis has lost it (a scan, once)."""
        complete = await self._redis(self.room_list.complete())
        if complete is AWAY:
            return await super().list_rooms(limit)
        if not complete:
            async with mongo_errors("list rooms"):
                docs = await self.rooms.find({}).to_list(None)
            await self.room_list.fill([(to_room(d), d["last_activity"]) for d in docs])
        return await self.room_list.newest(limit)

    async def note_activity(self, room: str, seq: int, at: datetime) -> None:
        """The list in Redis follows every message. The room's document, the copy a lost list
        is rebuilt from, at most every ROOM_DOC_EVERY_SECS: an update on FerretDB scans all of
        `rooms` while holding the database's write lock (60 ms with 1,200 rooms), and every
        message insert waits behind it."""
        await self._redis(self.room_list.active(room, seq, at, at))
        now = time.monotonic()
        if now - self._room_doc_written.get(room, -ROOM_DOC_EVERY_SECS) < ROOM_DOC_EVERY_SECS:
            return
        if len(self._room_doc_written) >= ROOM_DOCS_TRACKED:
            self._room_doc_written.clear()
        self._room_doc_written[room] = now
        await super().note_activity(room, seq, at)

    async def append(self, batch: list[NewMessage]) -> list[Appended]:
        self._appending += 1
        self._no_batch.clear()
        try:
            answers = await super().append(batch)
        finally:
            self._appending -= 1
            if not self._appending:
                self._no_batch.set()
        stored = [m for m, a in zip(batch, answers, strict=True) if a.outcome is Outcome.STORED]
        now = time.monotonic()
        for m in stored:
            self._mine.setdefault(m.room, {})[m.seq] = m
            self._since.setdefault(m.room, now)
        if stored and await self._redis(self.tail.add(stored)) is AWAY:
            # Redis is away: the tail goes cold (it is loaded from the archive when Redis is
            # back), so these must reach the archive now, not after ARCHIVE_AFTER_SECS. Or
            # only some of it is (one master of a cluster): then the tail stays warm without
            # them, and they are written into it again.
            self._urgent = True
            for m in stored:
                self._rewrite.setdefault(m.room, {})[m.seq] = m
        return answers

    def unsure(self) -> bool:
        return bool(self._rewrite) or time.monotonic() - self._trouble_at < SETTLE_SECS

    def redis_trouble(self) -> None:
        """A failover may have lost the newest writes: write what waits for the archive into
        the tails again (other workers' reads trust them)."""
        self._trouble_at = time.monotonic()
        for room, waiting in self._mine.items():
            self._rewrite.setdefault(room, {}).update(waiting)

    async def _rewrite_tails(self, only: str | None = None) -> bool:
        """Write again what the tails may lack; False if some room is still not done."""
        for room in [only] if only is not None else list(self._rewrite):
            waiting = self._rewrite.get(room)
            if not waiting:
                continue
            batch = sorted(waiting.values(), key=lambda m: m.seq)
            if await self._redis(self.tail.rewrite(room, batch)) is AWAY:
                return False
            for m in batch:
                waiting.pop(m.seq, None)
            if not waiting:
                del self._rewrite[room]
        return True

    async def _redis(self, call: Awaitable[Any]) -> Any:
        """The call's answer, or AWAY when Redis cannot be reached."""
        try:
            return await call
        except Exception as exc:
            self._trouble_at = time.monotonic()
            log.warning("hot tail unavailable (%s)", type(exc).__name__)
            return AWAY

    # ---- the archive -----------------------------------------------------------------------

    async def _archive_loop(self) -> None:
        while True:
            try:
                if self._rewrite:
                    await self._rewrite_tails()
                wrote = await self._archive_mine()
                rooms = await self.tail.due(ARCHIVE_ROOMS_PER_PASS, STALE_SECS)
                for room in rooms:
                    await self._archive_room(room)
                if not wrote and not rooms:
                    await asyncio.sleep(ARCHIVE_IDLE_SECS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("archiving paused (%s)", type(exc).__name__)
                await asyncio.sleep(ARCHIVE_RETRY_SECS)

    async def _archive_mine(self) -> bool:
        """Copy what this worker stored into the archive, one insert per room block, for
        rooms with ARCHIVE_BATCH messages waiting or one waiting ARCHIVE_AFTER_SECS: an
        insert costs FerretDB about as much for one message as for a hundred, and the tail
        serves reads meanwhile."""
        now = time.monotonic()
        if await self._redis(self._check_epoch()) is AWAY:
            self._urgent = True
        urgent, self._urgent = self._urgent, False
        rooms = [
            room
            for room, waiting in self._mine.items()
            if urgent
            or len(waiting) >= ARCHIVE_BATCH
            or now - self._since[room] >= ARCHIVE_AFTER_SECS
        ]
        if not urgent:
            rooms = rooms[:ARCHIVE_ROOMS_PER_PASS]
        if not rooms:
            return False
        for room in rooms:
            waiting = list(self._mine[room].values())
            try:
                await self._write_archive(waiting)
            except BaseException:
                self._urgent = self._urgent or urgent
                raise
            left = self._mine[room]
            for m in waiting:
                left.pop(m.seq, None)
            if left:
                self._since[room] = now
            else:
                del self._mine[room], self._since[room]
            await self._redis(self.tail.archived(room, [encode(m).encode() for m in waiting]))
        return True

    async def _check_epoch(self) -> None:
        """Redis restarted empty (its epoch changed): the tails are gone, so whatever this
        worker has not archived is readable from nowhere else; archive it now."""
        epoch = await self.tail.epoch(self._owner)
        if self._epoch is not None and epoch != self._epoch:
            log.warning("Redis lost its data: archiving every message waiting")
            self._urgent = True
        self._epoch = epoch

    async def _archive_room(self, room: str) -> None:
        """A room whose messages waited too long: the worker that stored them stopped."""
        if not await self.tail.lock(room, self._owner, ARCHIVE_LOCK_SECS):
            return  # another worker is copying it
        try:
            waiting = await self.tail.unarchived(room, STALE_SECS)
            await self._write_archive([m for _, m in waiting])
            await self.tail.archived(room, [raw for raw, _ in waiting])
        finally:
            await self.tail.unlock(room)

    async def _write_archive(self, messages: list[NewMessage]) -> None:
        by_block: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for m in messages:
            by_block.setdefault((m.room, legacy.block_of(m.seq)), []).append(archive_doc(m))
        for (room, block), docs in by_block.items():
            collection = await self._block(room, block)
            try:
                await self._no_batch.wait()
                await collection.insert_many(docs, ordered=False)
            except BulkWriteError as exc:  # copied before by a worker that then stopped
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise
            self._blocks[room] = max(self._blocks.get(room, 0), block)

    async def _block(self, room: str, block: int) -> Any:
        name = legacy.block_collection(room, block)
        collection = self.db.get_collection(name, write_concern=self.messages.write_concern)
        if name not in self._indexed:
            await self._no_batch.wait()
            await collection.create_index([("seq", ASCENDING)], name="seq")
            self._indexed.add(name)
        return collection

    async def _newest_block(self, room: str) -> int:
        known = self._blocks.get(room)
        if known is not None:
            return known
        prefix = legacy.block_collection(room, 0)
        pattern = re.compile(re.escape(prefix) + r"(?:_([0-9]+))?")
        newest = 0
        for name in await self._collection_names():
            match = pattern.fullmatch(name)
            if match:
                newest = max(newest, int(match.group(1) or 0))
        self._blocks[room] = newest
        return newest

    async def _collection_names(self) -> list[str]:
        """One listing at a time, shared by every room that asks meanwhile: the joins of a
        storm into rooms this worker has not read yet all ask at once."""
        return await self._listing.run(None, self._list_collections)

    async def _list_collections(self) -> list[str]:
        async with mongo_errors("list archive"):
            return await self.db.list_collection_names()

    async def _archive_block(
        self, room: str, block: int, first: int, last: int
    ) -> list[NewMessage]:
        collection = self.db[legacy.block_collection(room, block)]
        async with mongo_errors("read archive"):
            cursor = collection.find({"seq": {"$gte": first, "$lte": last}})
            docs = await cursor.to_list(None)
        return sorted((from_archive(d) for d in docs), key=lambda m: m.seq)

    async def _archive_newer(
        self, room: str, since: int, count: int, below: int | None
    ) -> list[NewMessage]:
        """Oldest first: up to `count` archived messages with since < seq (< below)."""
        top = await self._newest_block(room)
        if below is not None:
            top = min(top, legacy.block_of(below - 1))
        found: list[NewMessage] = []
        for block in range(legacy.block_of(since + 1), top + 1):
            last = (block + 1) * legacy.BLOCK_SEQS if below is None else below - 1
            found += await self._archive_block(room, block, since + 1, last)
            if len(found) >= count:
                break
        return found[:count]

    async def _archive_older(self, room: str, below: int | None, count: int) -> list[NewMessage]:
        """Oldest first: the `count` newest archived messages with seq < below."""
        top = await self._newest_block(room)
        if below is not None:
            if below <= 1:
                return []
            top = min(top, legacy.block_of(below - 1))
        found: list[NewMessage] = []
        for block in range(top, -1, -1):
            last = (block + 1) * legacy.BLOCK_SEQS if below is None else below - 1
            found = await self._archive_block(room, block, 1, last) + found
            if len(found) >= count:
                break
        return found[-count:]

    # ---- reads -------------------------------------------------------------------------------

    async def _floor(self, room: str) -> int | None:
        """From which seq the tail holds every stored message; None when it cannot be
        trusted (Redis away, or lost with nothing to go by): reads then come from the archive
        and this worker's unarchived messages. A tail found cold is loaded from the archive
        and trusted from its first message stored since (or above the archive's newest):
        below that, messages stored before Redis lost the tail may still be on their way to
        the archive."""
        if room in self._rewrite and not await self._rewrite_tails(room):
            return None
        floor = await self._redis(self.tail.floor(room))
        if floor is AWAY:
            return None
        if floor is not None:
            return int(floor)
        # One load per cold tail, however many reads find it cold at once (a storm of joins).
        return await self._loading.run(room, lambda: self._load_cold(room))

    async def _load_cold(self, room: str) -> int | None:
        since_lost = await self._redis(self.tail.all(room))
        if since_lost is AWAY:
            return None
        # Taken before the archive is read: a message leaves `_mine` only once it is in the
        # archive, so each one is in this copy or in what the read finds.
        unarchived = self._pending(room, 1, None)
        newest = await self._archive_older(room, None, self.tail.keep)
        if since_lost:
            start = since_lost[0].seq
        elif newest:
            start = newest[-1].seq + 1
        else:
            return None
        # What this worker stored and has not archived yet belongs in the tail too: from
        # `start` on, the tail is trusted to hold every stored message.
        mine = [m for m in unarchived if m.seq >= start]
        warmed = await self._redis(self.tail.warm(room, merged(newest, mine), start))
        return None if warmed is AWAY else int(warmed)

    def _pending(self, room: str, low: int, high: int | None) -> list[NewMessage]:
        """This worker's stored messages not yet archived, with low <= seq (< high)."""
        mine = self._mine.get(room, {})
        return sorted(
            (m for s, m in mine.items() if s >= low and (high is None or s < high)),
            key=lambda m: m.seq,
        )

    async def _read_tail(
        self, room: str, read: Callable[[], Awaitable[tuple[int | None, list[NewMessage]]]]
    ) -> tuple[int | None, list[NewMessage]]:
        """`read` (a tail range with its floor), loading a cold tail first; floor None when
        the tail cannot be trusted (then the entries are empty)."""
        got = await self._redis(read())
        if got is AWAY:
            return None, []
        floor, entries = got
        if floor is None:
            if await self._floor(room) is None:
                return None, []
            got = await self._redis(read())
            if got is AWAY or got[0] is None:
                return None, []
            floor, entries = got
        return floor, entries

    async def read_after(self, room: str, since: int, limit: int) -> tuple[list[Message], bool]:
        want = limit + 1
        got: list[NewMessage] = []
        for _ in range(TAIL_READ_ATTEMPTS):
            floor, got = await self._read_tail(room, lambda: self.tail.after(room, since, want))
            if floor is not None and since + 1 >= floor:
                break  # the tail holds all of it
            # Below the floor from the archive (and what this worker has not archived yet),
            # then on from the floor in the tail, if the floor has not moved meanwhile: the
            # archiver trims the tail only of what it archived, raising the floor past it.
            got = await self._archive_newer(room, since, want, floor)
            got = merged(got, self._pending(room, since + 1, floor))[:want]
            if floor is None or len(got) >= want:
                break
            moved, fresh = await self.tail.after(room, floor - 1, want - len(got))
            if moved == floor:
                got = merged(got, fresh)[:want]
                break
        read = await self.amendments.apply(room, [m.stored() for m in got[:limit]])
        return read, len(got) > limit

    async def read_before(
        self, room: str, before: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        want = limit + 1
        floor, got = await self._read_tail(room, lambda: self.tail.before(room, before, want))
        # Only what the tail holds from `floor` up is known complete; below, the archive.
        got = [m for m in got if floor is not None and m.seq >= floor]
        if len(got) < want and (floor is None or floor > 1):
            below = before if floor is None else min(floor, before or floor)
            older = await self._archive_older(room, below, want - len(got))
            older = merged(older, self._pending(room, 1, below))[-(want - len(got)) :]
            got = merged(older, got)
        read = await self.amendments.apply(room, [m.stored() for m in got[-limit:]])
        return read, len(got) > limit

    async def find_message(self, room: str, id: str) -> Message | None:
        """From the tail (edits come soon after their message), else the archive, else, for
        a message stored but not archived yet, the slow way."""
        found: Message | None = None
        recent = await self._redis(self.tail.all(room))
        for m in [] if recent is AWAY else reversed(recent):
            if m.id == id:
                found = m.stored()
                break
        if found is None:
            newest = await self._newest_block(room)
            async with mongo_errors("find message"):
                for block in range(newest, -1, -1):
                    collection = self.db[legacy.block_collection(room, block)]
                    doc = await collection.find_one({"mid": id})
                    if doc is not None:
                        found = from_archive(doc).stored()
                        break
        if found is None:
            found = next(
                (m.stored() for m in self._mine.get(room, {}).values() if m.id == id), None
            )
        if found is None:
            found = await super().find_message(room, id)
        if found is None or found.kind != MESSAGE:
            return None
        return (await self.amendments.apply(room, [found]))[0]

    async def amend(self, target: Message, change: Message) -> None:
        await self.amendments.record(target, change)

    async def find_by_client_key(self, room: str, client_key: str) -> Message | None:
        recent = await self._redis(self.tail.all(room))
        tail: list[NewMessage] = [] if recent is AWAY else recent
        for m in reversed(tail):
            if m.client_key == client_key:
                return m.stored()
        newest = await self._newest_block(room)
        async with mongo_errors("find message"):
            for block in range(newest, -1, -1):
                collection = self.db[legacy.block_collection(room, block)]
                doc = await collection.find_one({"client_key": client_key})
                if doc is not None:
                    return from_archive(doc).stored()
        for m in self._mine.get(room, {}).values():
            if m.client_key == client_key:
                return m.stored()
        # Stored by another worker, but neither in the tail nor archived yet: the slow way,
        # rarely (Redis lost the tail).
        return await super().find_by_client_key(room, client_key)

    async def max_seq(self, room: str) -> int:
        """From a warm tail when it has any message, or when it is warm and empty from the
        first seq (a room without messages: the joins of a storm into new rooms all ask);
        else the archive and this worker's unarchived messages (all a worker can know without
        scanning `messages`)."""
        floor = await self._redis(self.tail.floor(room))
        tail_top = await self._redis(self.tail.newest_seq(room))
        tail_top = 0 if tail_top is AWAY else int(tail_top)
        mine: int = max(self._mine.get(room, {}), default=0)
        if floor is not AWAY and floor is not None:
            if tail_top:
                return int(tail_top)
            if int(floor) <= 1:
                return mine
        newest = await self._archive_older(room, None, 1)
        return int(max(tail_top, newest[-1].seq if newest else 0, mine))
